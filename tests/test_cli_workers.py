"""The commands workers/cli.py adds, end to end: `worker`, `beat`, and `get`/`status`
through a running worker, on SQLite and PostgreSQL, with their bad arguments."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from coder_ring import ALPHABET
from tests.harness import HOSTNAME, ManagedProcess, ProcessGroup, worker_env, write_rings

CLI = [sys.executable, "-m", "workers.cli"]
COMMANDS = [
    "migrate",
    "populate",
    "get",
    "status",
    "reset",
    "rebuild",
    "worker",
    "beat",
    "demo",
]


def run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [*CLI, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def env(tmp_path: Path, redis_url: str, database_url: str) -> dict[str, str]:
    rings = write_rings(tmp_path / "rings.toml", one={"base_length": 1, "pool_size": 4})
    return worker_env(
        redis_url=redis_url, database_url=database_url, rings_file=rings, refill_interval=1
    )


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    with ProcessGroup(tmp_path / "processes") as processes:
        yield processes


def test_every_command_has_help() -> None:
    for command in COMMANDS:
        result = subprocess.run(
            [*CLI, command, "--help"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, (command, result.stderr)
        assert "Usage:" in result.stdout


@pytest.mark.slow
def test_worker_serves_get_and_status_through_celery(
    env: dict[str, str], group: ProcessGroup
) -> None:
    worker = group.worker("cli", env, ["one"], start=False)
    # Started the way a user starts it: the `coder-ring worker` command.
    worker.argv = [*CLI, "worker", "one", "--hostname", "cli@%h"]
    worker.start()
    worker.wait_for_lock("one", timeout=30)

    got = run(env, "get", "one", "-n", "3")
    assert got.returncode == 0, got.stderr
    codes = got.stdout.split()
    assert len(codes) == 3 and len(set(codes)) == 3 and all(c in ALPHABET for c in codes)

    bumped = run(env, "get", "one", "--bump")
    assert bumped.returncode == 0, bumped.stderr
    assert re.fullmatch(rf"X[{ALPHABET}]", bumped.stdout.strip())

    table = run(env, "status", "one")
    assert table.returncode == 0, table.stderr
    assert f"cli@{HOSTNAME}" in table.stdout
    report = json.loads(run(env, "status", "one", "--json").stdout)[0]
    assert report["lock_holder"] == f"cli@{HOSTNAME}"
    assert report["cycle"] == 1 and isinstance(report["pool"], int)

    assert_one_line_error(run(env, "get", "one", "--extra", "a b"), "'a b'")
    assert_one_line_error(run(env, "get", "nope"), "'nope'", "one")
    assert_one_line_error(run(env, "get", "one", "-n", "0"), "0")

    worker.kill(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert worker.gave_back("one") >= 1


def test_get_without_a_worker_times_out_clearly(env: dict[str, str]) -> None:
    assert run(env, "migrate").returncode == 0
    assert run(env, "populate").returncode == 0
    result = run(env, "get", "one", "--timeout", "1")
    assert_one_line_error(result, "no worker answered", "'one'", "1 s")


def test_worker_bad_arguments(env: dict[str, str]) -> None:
    assert_one_line_error(run(env, "worker", "nope"), "'nope'", "one")
    assert_one_line_error(run(env, "worker"), "--all")
    assert_one_line_error(run(env, "worker", "one", "--all"), "--all")


@pytest.mark.slow
def test_beat_sends_refills(env: dict[str, str], group: ProcessGroup, tmp_path: Path) -> None:
    beat = ManagedProcess(
        "beat",
        [*CLI, "beat", "--schedule", str(tmp_path / "schedule"), "--loglevel", "INFO"],
        env,
        tmp_path / "beat.log",
    )
    group.add(beat)
    beat.wait_for_log(r"Sending due task coder_ring\.refill\.one", timeout=20)


@pytest.mark.slow
def test_bench_quick_through_its_entry_point(tmp_path: Path, redis_url: str, pg_url: str) -> None:
    env = {
        "CODER_RING_DATABASE_URL": pg_url,
        "CODER_RING_BROKER_URL": redis_url,
        "CODER_RING_CONFIG": str(tmp_path / "unused.toml"),
    }
    output = tmp_path / "results"
    import os

    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "get_code p50 / no-op p50" in result.stdout
    figures = json.loads((output / "results.json").read_text())["figures"]
    assert figures and all(value > 0 for value in figures.values())
    assert (output / "results.png").stat().st_size > 0
