"""Helpers of ``test_metrics*.py``: the ``coder-ring metrics`` process, scrapes parsed
with prometheus_client's parser and read by sample name and labels, ``coder-ring status
--json``, a worker's lease rounds, and flower's own series."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import redis
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from coder_ring.metrics.catalog import CATALOG, names_of
from coder_ring.registry.membership import live_members
from coder_ring.settings import DEFAULT_NAMESPACE
from tests.harness import ManagedProcess, WorkerProcess, wait_until, worker_env, write_rings

CLI = [sys.executable, "-m", "coder_ring.celery.cli"]
RING = "one"
Families = dict[str, Metric]


class MetricsProcess(ManagedProcess):
    """``coder-ring metrics --port PORT`` (on 127.0.0.1, its default)."""

    kind = "metrics"

    def __init__(
        self, env: dict[str, str], log_path: Path, port: int, argv: list[str] | None = None
    ) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        argv = argv or [*CLI, "metrics", "--port", str(port)]
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


def ring_env(tmp_path: Path, redis_url: str, pg_url: str, **extra: str) -> dict[str, str]:
    rings = write_rings(tmp_path / "rings.toml", **{RING: {"base_length": 1, "pool_size": 4}})
    return worker_env(redis_url=redis_url, database_url=pg_url, rings_file=rings, **extra)


def flower_series(url: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Flower's own series (not its Python process's)."""
    families = scrape(url)
    return {entry for entry in series(families) if entry[0].startswith("flower_")}


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
