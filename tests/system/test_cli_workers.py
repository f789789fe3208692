"""The commands coder_ring/celery/cli.py adds, end to end: `worker`, `beat`, `workers`, and `get` /
`status` through a running worker; `get` with no worker; `worker`'s bad arguments. (Bad
arguments of `get` through a worker: tests/system/test_bad_inputs.py.)"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from coder_ring import ALPHABET
from coder_ring.celery.cli import build
from coder_ring.celery.cli_layer import DEFAULT_GET_TIMEOUT
from tests.harness import (
    CODER_RING,
    HOSTNAME,
    ManagedProcess,
    ProcessGroup,
    run_cli,
    worker_env,
    write_rings,
)
from tests.harness.cli import assert_one_line_error

ENGINE_COMMANDS = {"init", "migrate", "populate", "get", "status", "reset", "rebuild"}
WORKER_COMMANDS = {"worker", "beat", "workers", "demo"}


@pytest.fixture
def env(tmp_path: Path, redis_url: str, sqlite_url: str) -> dict[str, str]:
    rings = write_rings(tmp_path / "rings.toml", one={"base_length": 1, "pool_size": 4})
    return worker_env(
        redis_url=redis_url, database_url=sqlite_url, rings_file=rings, refill_interval=1
    )


def run_all(env: dict[str, str], *calls: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Independent ``coder-ring`` invocations at once (each pays the interpreter's start)."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda args: run_cli(env, *args), calls))


def test_every_command_has_help() -> None:
    group = build()
    assert set(group.commands) >= ENGINE_COMMANDS | WORKER_COMMANDS
    runner = CliRunner()
    for name in sorted(group.commands):
        result = runner.invoke(group, [name, "--help"], prog_name="coder-ring")
        assert result.exit_code == 0, (name, result.output)
        assert result.output.startswith(f"Usage: coder-ring {name}"), (name, result.output)
    # The entry point itself (a fresh interpreter: imports, the group, its help).
    top = run_cli({}, "--help")
    assert top.returncode == 0, top.stderr
    commands = top.stdout.split("\nCommands:\n", 1)[1]
    listed = set(re.findall(r"^  (\w+) ", commands, re.MULTILINE))
    assert listed == set(group.commands), top.stdout


@pytest.mark.slow
def test_worker_and_beat_serve_the_cli(env: dict[str, str], group: ProcessGroup) -> None:
    # Started the way a user starts them: `coder-ring worker RING` and `coder-ring beat`.
    worker = group.worker("cli", env, ["one"], cli=True)
    beat = ManagedProcess(
        "beat",
        [*CODER_RING, "beat", "--schedule", str(group.directory / "schedule")],
        env,
        group.directory / "beat.log",
    )
    group.add(beat)
    worker.wait_for_lock("one", timeout=30)

    got = run_cli(env, "get", "one", "-n", "3", "--bump")
    assert got.returncode == 0, got.stderr
    codes = got.stdout.split()
    assert len(set(codes)) == 3 and all(re.fullmatch(rf"X[{ALPHABET}]", c) for c in codes)

    table, as_json, workers = run_all(
        env, ["status", "one"], ["status", "one", "--json"], ["workers", "--json"]
    )
    assert table.returncode == 0, table.stderr
    assert f"cli@{HOSTNAME}" in table.stdout
    report = json.loads(as_json.stdout)[0]
    assert report["holder"] == f"cli@{HOSTNAME}"
    assert report["cycle"] == 1 and report["uniquizer"] == "X"
    assert isinstance(report["pooled"], int) and report["pooled"] > 0
    assert report["extras"][0]["pooled"] == report["pooled"]
    (member,) = json.loads(workers.stdout)
    assert member["node"] == f"cli@{HOSTNAME}" and member["pid"] == worker.pid
    assert member["healthy"] is True and member["holding"] == ["one"]

    # Beat's refills reach the worker through the ring's queue.
    beat.wait_for_log(r"Sending due task coder_ring\.refill\.one", timeout=20)
    worker.wait_for_log(r"Task coder_ring\.refill\[[^\]]+\] received", timeout=10)

    worker.kill(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert worker.gave_back("one") >= 1


def test_get_without_a_worker_fails_fast(env: dict[str, str]) -> None:
    started = time.monotonic()
    result = run_cli(env, "get", "one")  # the default --timeout: 30 s
    elapsed = time.monotonic() - started
    print(f"`coder-ring get` with no worker: failed after {elapsed:.2f} s")
    assert_one_line_error(result, "no live worker", "'one'", "`coder-ring worker")
    # It fails on what the registry says, not by waiting out the request's timeout.
    assert elapsed < DEFAULT_GET_TIMEOUT / 3


def test_worker_bad_arguments(env: dict[str, str]) -> None:
    # In this process: each is refused before anything starts.
    runner = CliRunner()
    for args, named in [
        (["worker", "nope"], ("'nope'", "one")),
        (["worker"], ("--all",)),
        (["worker", "one", "--all"], ("--all",)),
    ]:
        result = runner.invoke(build(), args, env=env, prog_name="coder-ring")
        assert_one_line_error(
            subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr),
            *named,
        )
