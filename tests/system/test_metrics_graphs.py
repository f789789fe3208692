"""The pieces of ``python -m deploy.graphs`` (its run takes minutes: not in the suite):
the Prometheus config it writes is valid and scrapes the deployment's jobs, every
panel's query parses and names only metrics of the catalog, and the graph page's URL
shows each panel over the run's minutes."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from deploy.graphs.panels import PANELS, graph_url, prometheus_config
from tests.harness.shared import require
from tests.system.test_metrics_deploy import DEPLOY, KNOWN_SAMPLES, metric_names


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:  # .ci/run installs it (Debian's prometheus package)
        require("promtool", FileNotFoundError("promtool is not installed (apt: prometheus)"))
    assert found is not None
    return subprocess.run([found, *args], capture_output=True, text=True, check=False)


def test_the_generated_scrape_config_is_valid_and_scrapes_the_deployments_jobs(
    tmp_path: Path,
) -> None:
    config = tmp_path / "prometheus.yml"
    workers = ["127.0.0.1:26602", "127.0.0.1:26603"]
    config.write_text(prometheus_config(2.0, "127.0.0.1:26601", workers))
    checked = promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    generated = yaml.safe_load(config.read_text())
    deployed = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = [job["job_name"] for job in generated["scrape_configs"]]
    assert jobs == [job["job_name"] for job in deployed["scrape_configs"]]
    assert generated["scrape_configs"][1]["static_configs"] == [{"targets": workers}]
    assert generated["global"]["scrape_interval"] == "2s"


def test_every_panel_query_parses_and_names_only_catalog_metrics(tmp_path: Path) -> None:
    assert [panel.name for panel in PANELS] == [
        "fullness", "codes", "latency", "holders", "failovers"
    ]  # fmt: skip
    # promtool parses each query as the expression of a recording rule.
    records = [{"record": f"graphs:{panel.name}", "expr": panel.expression} for panel in PANELS]
    rules = tmp_path / "panels.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "graphs", "rules": records}]}))
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for panel in PANELS:
        used = metric_names(panel.expression)
        assert used, f"{panel.name} names no coder_ring metric"
        assert used <= KNOWN_SAMPLES, f"{panel.name}: no such metric {used - KNOWN_SAMPLES}"


def test_the_graph_url_shows_the_panel_over_the_runs_minutes() -> None:
    end = datetime(2026, 12, 4, 22, 4, tzinfo=UTC)
    for panel in PANELS:
        url = urlsplit(graph_url("http://127.0.0.1:26600", panel, end, 5))
        assert url.path == "/classic/graph"  # Debian's package serves the classic page
        options = {key: values[0] for key, values in parse_qs(url.query).items()}
        assert options["g0.expr"] == panel.expression
        assert options["g0.tab"] == "0"  # the graph, not the table
        assert options["g0.range_input"] == "5m"
        assert options["g0.end_input"] == "2026-12-04 22:04"
        assert options["g0.stacked"] == ("1" if panel.stacked else "0")
