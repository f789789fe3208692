"""The deployment's monitoring: the alert rules, the dashboard and the alert cases name
only metrics that exist, compose scrapes the endpoints it runs and provisions the
dashboard, and promtool accepts the config and fires the alerts when it should.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from coder_ring.metrics.catalog import CATALOG, METRICS
from tests.harness.shared import require

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


# --------------------------------------------------------------------------------------
# Rules, dashboard, compose


KNOWN_SAMPLES = {name for metric in CATALOG for name in metric.samples()}
METRIC_NAME = re.compile(r"\bcoder_ring_[a-z0-9_]+\b")
ALERTS = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
RULES = [rule for rule_group in ALERTS["groups"] for rule in rule_group["rules"]]
DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboards" / "coder_ring.json").read_text())


def metric_names(expression: str) -> set[str]:
    """The coder_ring metric names ``expression`` uses (strings, e.g. job names, aside)."""
    return set(METRIC_NAME.findall(re.sub(r'"[^"]*"', '""', expression)))


def dashboard_expressions() -> list[str]:
    panels = [*DASHBOARD["panels"]]
    panels += [inner for panel in DASHBOARD["panels"] for inner in panel.get("panels", [])]
    expressions = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    return expressions + [var["definition"] for var in DASHBOARD["templating"]["list"]]


def test_alert_rules_and_dashboard_name_only_metrics_that_exist() -> None:
    alerts = {rule["alert"]: rule for rule in RULES}
    assert {
        "CoderRingCycleUsed80",
        "CoderRingCycleUsed95",
        "CoderRingWithoutHolder",
        "CoderRingFailoverStorm",
        "CoderRingDrawErrors",
    } <= set(alerts)
    for name, rule in alerts.items():
        used = metric_names(rule["expr"])
        assert used or name == "CoderRingMetricsDown", f"{name} names no coder_ring metric"
        assert used <= KNOWN_SAMPLES, f"{name}: no such metric {sorted(used - KNOWN_SAMPLES)}"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert {"summary", "description", "action"} <= set(rule["annotations"]), name
    expressions = dashboard_expressions()
    used = set().union(*(metric_names(expression) for expression in expressions))
    assert used <= KNOWN_SAMPLES, f"dashboard: no such metric {sorted(used - KNOWN_SAMPLES)}"
    # Fullness, throughput, latency and holders are on it.
    assert {
        "coder_ring_cycle_used_ratio",
        "coder_ring_codes_issued_total",
        "coder_ring_get_code_seconds_bucket",
        "coder_ring_holder_info",
    } <= used
    cases = yaml.safe_load((DEPLOY / "prometheus" / "alert_cases.yml").read_text())
    inputs = [entry["series"] for case in cases["tests"] for entry in case["input_series"]]
    used = set().union(*(metric_names(entry) for entry in inputs))
    assert used <= KNOWN_SAMPLES, f"alert_cases.yml: no such metric {used - KNOWN_SAMPLES}"
    tested = {test["alertname"] for case in cases["tests"] for test in case["alert_rule_test"]}
    assert tested == set(alerts)
    assert "0.95" in alerts["CoderRingCycleUsed95"]["expr"]
    assert "0.80" in alerts["CoderRingCycleUsed80"]["expr"]
    assert "2 * scalar" in alerts["CoderRingWithoutHolder"]["expr"]


def test_the_fullness_alerts_use_the_figure_the_readme_explains() -> None:
    """The README explains percent_used (the share drawn, codes pooled ahead included,
    beside received): the fullness alerts, their texts and the README's table of alerts
    name that figure, and received is in the metrics too."""
    readme = (ROOT / "README.md").read_text()
    model = readme.split("### The status model", 1)[1].split("\n## ", 1)[0]
    assert "`percent_used` is the rest of the cycle: the share drawn" in model
    assert "what the fullness alerts and the dashboard use" in model
    assert "coder_ring_cycle_used_ratio" in METRICS and "received" in model
    assert "percent used" in METRICS["coder_ring_cycle_used_ratio"].help
    assert "received column" in METRICS["coder_ring_received_codes"].help
    table = readme.split("| alert | fires when |", 1)[1]
    for rule in RULES:
        if not rule["alert"].startswith("CoderRingCycleUsed"):
            continue
        assert metric_names(rule["expr"]) == {"coder_ring_cycle_used_ratio"}, rule["expr"]
        row = next(line for line in table.splitlines() if f"`{rule['alert']}`" in line)
        assert "`percent_used`" in row, row
    [used80] = [rule for rule in RULES if rule["alert"] == "CoderRingCycleUsed80"]
    description = used80["annotations"]["description"]
    assert "percent_used" in description and "pooled ahead" in description, description


def test_the_name_check_catches_a_metric_that_is_gone() -> None:
    expression = 'sum(rate(coder_ring_codes_served_total{job="coder_ring_worker"}[5m]))'
    assert metric_names(expression) == {"coder_ring_codes_served_total"}
    assert not metric_names(expression) <= KNOWN_SAMPLES


def test_compose_scrapes_the_endpoints_it_runs_and_provisions_the_dashboard() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        image = services[name]["image"]
        assert re.fullmatch(r"[a-z/]+:v?\d+\.\d+\.\d+", image), f"{name}: unpinned {image}"
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    metrics_port = services["metrics"]["command"][
        services["metrics"]["command"].index("--port") + 1
    ]
    assert services["metrics"]["command"][:2] == ["coder-ring", "metrics"]
    assert jobs["coder_ring"]["static_configs"][0]["targets"] == [f"metrics:{metrics_port}"]
    worker_sd = jobs["coder_ring_worker"]["dns_sd_configs"][0]
    assert worker_sd["names"] == ["worker"]
    assert str(worker_sd["port"]) == services["worker"]["environment"]["CODER_RING_METRICS_PORT"]
    mounts = {
        volume.split(":")[1]: volume.split(":")[0]
        for name in ("prometheus", "grafana")
        for volume in services[name]["volumes"]
        if volume.startswith("./")
    }
    assert mounts["/etc/prometheus"] == "./deploy/prometheus"
    for target, source in mounts.items():
        assert (ROOT / source).is_dir(), (target, source)
    datasource = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    provider = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/coder_ring.yml").read_text()
    )["providers"][0]
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    assert datasource["url"] == "http://prometheus:9090"
    uids = {
        target["datasource"]["uid"]
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", [])
    }
    assert uids == {datasource["uid"]}


PROMTOOL = shutil.which("promtool")


def test_promtool_accepts_the_config_and_the_alerts_fire_when_they_should(tmp_path: Path) -> None:
    if PROMTOOL is None:  # .ci/run installs it (Debian's prometheus package)
        require("promtool", FileNotFoundError("promtool is not installed (apt: prometheus)"))
    assert PROMTOOL is not None
    checked = subprocess.run(
        [PROMTOOL, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # promtool compares annotations too: the cases check labels, on rules without them.
    bare = {"groups": [{**group, "rules": [{**rule, "annotations": {}} for rule in group["rules"]]}
                       for group in ALERTS["groups"]]}  # fmt: skip
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(bare))
    shutil.copy(DEPLOY / "prometheus" / "alert_cases.yml", tmp_path)
    tested = subprocess.run(
        [PROMTOOL, "test", "rules", "alert_cases.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
