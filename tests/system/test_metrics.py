"""Ring metrics: the real endpoints (a worker's CODER_RING_METRICS_PORT and `coder-ring
metrics`) scraped over HTTP, parsed with prometheus_client's parser and checked against
`coder-ring status` after known draws (a cycle wrap, extras, a failover and a handoff);
series that stay constant over 1,000 CLI calls; flower quiet about beat's refills; and
the alert rules, the dashboard and compose naming only metrics that exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from click.testing import CliRunner
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from coder_ring.cli_support import AppContext
from coder_ring.service import RingService
from coder_ring.settings import Settings
from tests.conftest import require
from tests.harness import (
    ManagedProcess,
    ProcessGroup,
    WorkerProcess,
    caller_app,
    engine_settings,
    free_port,
    ring_calls,
    wait_until,
    worker_env,
    write_rings,
)
from workers.cli import build
from workers.membership import live_members
from workers.metrics import CATALOG, DATABASE, DEFAULT_EXTRAS_SHOWN, OTHER_EXTRAS, WORKER, names_of
from workers.names import DEFAULT_NAMESPACE
from workers.serving import CeleryLayer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CLI = [sys.executable, "-m", "workers.cli"]
RING = "one"
WEIRD = 'we"ird\\{x}'  # quotes, a backslash and braces survive the text format
get, _ = ring_calls(RING, 10.0)
Families = dict[str, Metric]


# --------------------------------------------------------------------------------------
# Helpers


class MetricsProcess(ManagedProcess):
    """``coder-ring metrics --port PORT --address 127.0.0.1``."""

    kind = "metrics"

    def __init__(self, env: dict[str, str], log_path: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        argv = [*CLI, "metrics", "--port", str(port), "--address", "127.0.0.1"]
        super().__init__("metrics", argv, env, log_path)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode())


def scrape(url: str, process: ManagedProcess | None = None) -> Families:
    """The families of one scrape of ``url`` (waiting until it answers)."""

    def answer() -> str | None:
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        try:
            return fetch(url)
        except OSError:
            return None

    text = wait_until(answer, 20, 0.1, f"metrics at {url}")
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: Families, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` with exactly ``labels`` (None when absent)."""
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def label_values(families: Families, name: str, label: str) -> dict[str, float]:
    """``label``'s value -> sample value, over every sample ``name``."""
    return {
        sample.labels[label]: float(sample.value)
        for family in families.values()
        for sample in family.samples
        if sample.name == name
    }


def series(families: Families) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in families.values()
        for sample in family.samples
    }


def served_names(view: str) -> set[str]:
    """Family names the parser gives for a view (an info family keeps ``_info``)."""
    kinds = {metric.name: metric.kind for metric in CATALOG}
    return {f"{name}_info" if kinds[name] == "info" else name for name in names_of(view)}


def status_json(env: dict[str, str]) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*CLI, "status", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: list[dict[str, Any]] = json.loads(result.stdout)
    return report


def wait_for_a_round(redis_url: str, worker: WorkerProcess) -> None:
    """Wait until ``worker`` heartbeated twice: its first lease round (which saw who
    holds each ring) has ended."""
    client = redis.Redis.from_url(redis_url)
    ages: list[float] = []

    def beat_again() -> bool:
        for member in live_members(client, DEFAULT_NAMESPACE):
            if member.node == worker.hostname and member.pid == worker.pid:
                ages.append(member.age or 0.0)
        return len(ages) >= 2 and ages[-1] < ages[-2]

    try:
        wait_until(beat_again, 15, 0.05, f"a lease round of {worker.name}")
    finally:
        client.close()


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    with ProcessGroup(tmp_path / "processes") as processes:
        yield processes


def ring_env(tmp_path: Path, redis_url: str, pg_url: str, **extra: str) -> dict[str, str]:
    rings = write_rings(tmp_path / "rings.toml", **{RING: {"base_length": 1, "pool_size": 4}})
    return worker_env(redis_url=redis_url, database_url=pg_url, rings_file=rings, **extra)


# --------------------------------------------------------------------------------------
# The endpoints against `coder-ring status`


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_scrapes_match_status_after_a_wrap_extras_and_an_error(
    tmp_path: Path, redis_url: str, pg_url: str, group: ProcessGroup
) -> None:
    port = free_port()
    env = ring_env(tmp_path, redis_url, pg_url, CODER_RING_METRICS_PORT=str(port))
    worker = group.worker("served", env, rings=[RING])
    metrics = MetricsProcess(env, group.directory / "metrics.log", free_port())
    group.add(metrics)
    worker.wait_for_lock(RING)
    with caller_app(env) as app:
        plain = [get(app) for _ in range(40)]  # 32 codes per cycle: wraps into cycle 1
        hi = [get(app, extra="hi") for _ in range(3)]
        hi += app.ring_tasks.get_codes.delay(RING, 5, extra="hi").get(timeout=10)
        weird = [get(app, extra=WEIRD) for _ in range(2)]
        with pytest.raises(Exception, match="AB") as refused:
            get(app, extra="AB")  # only alphabet characters: ExtraConflict in the worker
    assert type(refused.value).__name__ == "ExtraConflict"
    assert sum(len(code) == 2 and code[0] == "X" for code in plain) == 8
    assert len(hi) == 8 and len(weird) == 2

    [report] = status_json(env)  # the status task settles the pool: figures hold still
    served = scrape(f"http://127.0.0.1:{port}/metrics", worker)
    database = scrape(metrics.url, metrics)
    assert set(served) - {"coder_ring_get_code_seconds_created"} == served_names(WORKER)
    assert set(database) == served_names(DATABASE)
    assert {extra["extra"] for extra in report["extras"]} == {"", "hi", WEIRD}
    assert report["holder"] == worker.hostname
    for families in (served, database):
        assert value(families, "coder_ring_codes_per_cycle", ring=RING) == 32
        assert value(families, "coder_ring_epoch", ring=RING) == report["epoch"]
        assert label_values(families, "coder_ring_holder_info", "holder") == {report["holder"]: 1}
        assert value(families, "coder_ring_database_up") == 1
        for extra in report["extras"]:
            labels = {"ring": RING, "extra": extra["extra"]}
            assert value(families, "coder_ring_cycle", **labels) == extra["cycle"]
            remaining = value(families, "coder_ring_remaining_in_cycle", **labels)
            assert remaining == extra["remaining_in_cycle"]
            ratio = value(families, "coder_ring_cycle_used_ratio", **labels)
            assert ratio == pytest.approx(extra["percent_used"] / 100)
            assert value(families, "coder_ring_drawn_codes", **labels) == extra["issued"]
    assert [extra["cycle"] for extra in report["extras"] if extra["extra"] == ""] == [1]
    for extra in report["extras"]:
        pooled = value(served, "coder_ring_pooled_codes", ring=RING, extra=extra["extra"])
        assert pooled == extra["pooled"]
    issued = label_values(served, "coder_ring_codes_issued_total", "extra")
    assert issued == {"": 40, "hi": 8, WEIRD: 2}
    assert value(served, "coder_ring_get_code_seconds_count", ring=RING) == 45
    assert value(served, "coder_ring_requests_total", ring=RING, task="get_code") == 46
    assert value(served, "coder_ring_requests_total", ring=RING, task="get_codes") == 1
    assert value(served, "coder_ring_requests_total", ring=RING, task="status") == 1
    kinds = label_values(served, "coder_ring_draw_errors_total", "kind")
    assert kinds == {"ExtraConflict": 1}
    assert value(served, "coder_ring_failovers_total", ring=RING) == 0
    assert value(database, "coder_ring_extras", ring=RING) == 3
    assert value(database, "coder_ring_stored_positions", ring=RING) == report["stored_positions"]
    assert value(database, "coder_ring_held", ring=RING) == 1
    assert value(database, "coder_ring_unheld_seconds", ring=RING) == 0
    assert value(database, "coder_ring_lock_ttl_seconds") == 2.0
    assert value(database, "coder_ring_live_workers") == 1
    assert value(database, "coder_ring_redis_up") == 1

    # Extras are callers' strings: the series per extra stay bounded.
    with caller_app(env) as app:
        for index in range(11):
            get(app, extra=f"k-{index:02}")
    served = scrape(f"http://127.0.0.1:{port}/metrics", worker)
    database = scrape(metrics.url, metrics)
    pooled = label_values(served, "coder_ring_pooled_codes", "extra")
    assert set(pooled) == {f"k-{index:02}" for index in range(3, 11)}  # the 8 latest
    issued = label_values(served, "coder_ring_codes_issued_total", "extra")
    assert set(issued) == set(pooled) | {OTHER_EXTRAS}
    assert issued[OTHER_EXTRAS] == 40 + 8 + 2 + 3 and sum(issued.values()) == 61
    # coder-ring metrics: the extras the status lists first (latest written first: an
    # evicted pool's give-back counts), once the give-backs of the evictions landed.
    service = RingService.from_settings(engine_settings(env))

    def latest_shown() -> bool:
        latest = {extra.extra for extra in service.status(RING).extras[:DEFAULT_EXTRAS_SHOWN]}
        families = scrape(metrics.url, metrics)
        return set(label_values(families, "coder_ring_cycle", "extra")) == latest

    try:
        wait_until(latest_shown, 10, 0.2, "the latest extras in the scrape")
    finally:
        service.close()
    database = scrape(metrics.url, metrics)
    assert len(label_values(database, "coder_ring_cycle", "extra")) == DEFAULT_EXTRAS_SHOWN
    assert value(database, "coder_ring_extras", ring=RING) == 14


# --------------------------------------------------------------------------------------
# Failover and handoff


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_a_failover_and_a_handoff_move_the_holder_and_count(
    tmp_path: Path, redis_url: str, pg_url: str, group: ProcessGroup
) -> None:
    ports = {"first": free_port(), "second": free_port()}
    env = ring_env(tmp_path, redis_url, pg_url)
    metrics = MetricsProcess(env, group.directory / "metrics.log", free_port())
    group.add(metrics)

    def worker(name: str, port: int) -> tuple[WorkerProcess, str]:
        started = group.worker(name, {**env, "CODER_RING_METRICS_PORT": str(port)}, [RING])
        return started, f"http://127.0.0.1:{port}/metrics"

    def holder() -> str:
        families = scrape(metrics.url, metrics)
        return next(iter(label_values(families, "coder_ring_holder_info", "holder")), "")

    first, _ = worker("first", ports["first"])
    first.wait_for_lock(RING)
    second, second_url = worker("second", ports["second"])
    wait_for_a_round(redis_url, second)
    assert holder() == first.hostname
    epoch = value(scrape(metrics.url), "coder_ring_epoch", ring=RING)

    first.kill(signal.SIGKILL)  # no handoff: its lock expires
    second.wait_for_lock(RING, timeout=20)
    wait_until(lambda: holder() == second.hostname, 10, 0.2, "the new holder in the scrape")
    after = scrape(second_url, second)
    assert value(after, "coder_ring_failovers_total", ring=RING) == 1
    assert value(after, "coder_ring_handoffs_total", ring=RING) == 0
    assert label_values(after, "coder_ring_holder_info", "holder") == {second.hostname: 1}
    assert value(scrape(metrics.url), "coder_ring_epoch", ring=RING) == (epoch or 0) + 1
    assert status_json(env)[0]["holder"] == second.hostname

    third, third_url = worker("third", ports["first"])  # the dead worker's port is free
    wait_for_a_round(redis_url, third)
    second.stop()  # SIGTERM: pool given back, lock released, RELEASED notice sent
    third.wait_for_lock(RING, timeout=20)
    wait_until(lambda: holder() == third.hostname, 10, 0.2, "the third holder in the scrape")
    taken = scrape(third_url, third)
    assert value(taken, "coder_ring_handoffs_total", ring=RING) == 1
    assert value(taken, "coder_ring_failovers_total", ring=RING) == 0


# --------------------------------------------------------------------------------------
# Flower and 1,000 CLI calls


def flower_series(url: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Flower's own series (not its Python process's)."""
    families = scrape(url)
    return {entry for entry in series(families) if entry[0].startswith("flower_")}


WARM_UP, CALLS, IN_PROCESS, PROCESSES = 5, 1000, 12, 3


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_flower_stays_quiet_and_no_series_grows_over_1000_cli_calls(
    tmp_path: Path,
    redis_url: str,
    pg_url: str,
    group: ProcessGroup,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    env = ring_env(
        tmp_path,
        redis_url,
        pg_url,
        CODER_RING_METRICS_PORT=str(port),
        CODER_RING_TASK_EVENTS="true",
        CODER_RING_REFILL_INTERVAL="0.5",
    )
    worker = group.worker("watched", env, rings=[RING])
    metrics = MetricsProcess(env, group.directory / "metrics.log", free_port())
    group.add(metrics)
    flower = group.flower(env)
    worker.wait_for_lock(RING)
    group.beat(env)
    urls = {"worker": f"http://127.0.0.1:{port}/metrics", "metrics": metrics.url}
    for name, setting in env.items():
        monkeypatch.setenv(name, setting)
    cli, runner = build(), CliRunner()

    def cli_get() -> None:  # `coder-ring get one`, in this process
        result = runner.invoke(cli, ["get", RING], catch_exceptions=False)
        assert result.exit_code == 0 and result.output.strip(), result.output

    def layer_get(_: int) -> str:
        # What `coder-ring get one` runs once its arguments are parsed: a context from
        # the environment, a new Celery app for the call, send, wait, close.
        [code] = CeleryLayer().get_codes(
            AppContext(Settings.from_env()), RING, 1, extra="", bump=False, timeout=30
        )
        return code

    def succeeded() -> float:
        events = label_values_by(flower.url + "/metrics", "flower_events_total", "type")
        return events.get("task-succeeded", 0.0)

    for _ in range(WARM_UP):
        cli_get()
    worker.wait_for_log(r"Task coder_ring\.refill\[[^\]]+\] received", timeout=15, count=3)
    wait_until(lambda: succeeded() >= WARM_UP, 30, 0.2, "flower to see the first calls")

    def heartbeats() -> bool:  # a worker-heartbeat event makes this series
        name = "flower_worker_number_of_currently_executing_tasks"
        return name in {entry[0] for entry in flower_series(flower.url + "/metrics")}

    wait_until(heartbeats, 30, 0.5, "a worker heartbeat in flower")
    before = {name: series(scrape(url)) for name, url in urls.items()}
    flower_before = flower_series(flower.url + "/metrics")

    # 1,000 calls: most through the get command's serving layer from 4 threads at once
    # (as a CLI's users would call), some through the whole command in this process, and
    # a few as `coder-ring get` processes (each its own pid: what sent events would name).
    with ThreadPoolExecutor(4) as callers:
        codes = list(callers.map(layer_get, range(CALLS - IN_PROCESS - PROCESSES)))
    assert len(set(codes)) == len(codes)
    for _ in range(IN_PROCESS):
        cli_get()
    for _ in range(PROCESSES):
        result = subprocess.run(
            [*CLI, "get", RING],
            env={**os.environ, **env},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    total = WARM_UP + CALLS
    wait_until(lambda: succeeded() >= total, 60, 0.5, "flower to see every call")

    after = {name: series(scrape(url)) for name, url in urls.items()}
    assert after == before
    assert flower_series(flower.url + "/metrics") == flower_before
    issued = value(scrape(urls["worker"]), "coder_ring_codes_issued_total", ring=RING, extra="")
    assert issued == total
    # Flower's series name the worker only: callers send no task-sent event (each would
    # add a worker="gen<pid>@host" series). Beat's refills send no event at all.
    assert {labels["worker"] for labels in flower_labels(flower.url)} == {worker.hostname}
    refills = len(re.findall(r"Task coder_ring\.refill\[[^\]]+\] received", worker.log_text()))
    assert refills >= 3
    tasks = json.loads(fetch(flower.url + "/api/tasks?limit=5000"))
    names = {task["name"] for task in tasks.values()}
    assert names == {"coder_ring.get_code"}, names
    assert len(tasks) == total


def flower_labels(url: str) -> list[dict[str, str]]:
    families = scrape(url + "/metrics")
    return [
        sample.labels
        for family in families.values()
        for sample in family.samples
        if sample.name.startswith("flower_") and "worker" in sample.labels
    ]


def label_values_by(url: str, name: str, label: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for family in scrape(url).values():
        for sample in family.samples:
            if sample.name == name:
                key = sample.labels.get(label, "")
                totals[key] = totals.get(key, 0.0) + float(sample.value)
    return totals


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
