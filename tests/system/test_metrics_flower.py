"""Flower and 1,000 CLI calls: flower stays quiet about beat's refills and the callers
(its series name the worker only), and no series of the ring metrics' endpoints or of
flower grows over 1,000 ``coder-ring get`` calls.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder_ring.celery.cli import build
from coder_ring.celery.cli_layer import CeleryLayer
from coder_ring.cli_support import AppContext
from coder_ring.settings import Settings
from tests.harness import ProcessGroup, free_port, wait_until
from tests.system.metrics_scrape import (
    CLI,
    RING,
    MetricsProcess,
    fetch,
    flower_labels,
    flower_series,
    label_values_by,
    ring_env,
    scrape,
    series,
    value,
)

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
