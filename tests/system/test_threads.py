"""Callers in threads and in asyncio code, through ``coder_ring.celery`` (the app configured
from the environment) and through an app made with ``create_app(settings)`` beside it.

The calls run in a caller process of their own (tests/system/thread_caller.py), because
the environment's app reads its settings when a caller first imports its tasks. The
ring tasks are bound to their app, so a thread that never called anything before (no
"current app" of its own) sends through the right broker, namespace and rings file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from coder_ring import ALPHABET
from tests.harness import REPO, ProcessGroup, assert_distinct, worker_env, write_rings

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

RING = "widget"
THREADS, CALLS, GATHER, OTHER_CALLS = 16, 100, 100, 100


def test_threads_and_asyncio_through_the_apps_of_one_process(
    tmp_path: Path, redis_url: str, pg_url: str, sqlite_url: str
) -> None:
    # Two deployments on one Redis, each with its own ring "widget": 3 characters in the
    # first (the environment's app), 2 in the second. A code's length says which
    # deployment's worker and database served it.
    env = worker_env(
        redis_url=redis_url,
        database_url=pg_url,
        rings_file=write_rings(tmp_path / "rings.toml", **{RING: {"base_length": 3}}),
    )
    other = worker_env(
        redis_url=redis_url,
        database_url=sqlite_url,
        rings_file=write_rings(tmp_path / "other.toml", **{RING: {"base_length": 2}}),
        namespace="other",
    )
    other_file = tmp_path / "other-env.json"
    other_file.write_text(json.dumps(other), encoding="utf-8")
    with ProcessGroup(tmp_path / "processes") as group:
        first = group.worker("first", env, [RING])
        second = group.worker("second", other, [RING])
        first.wait_for_lock(RING, timeout=30)
        second.wait_for_lock(RING, timeout=30)
        base = {k: v for k, v in os.environ.items() if not k.startswith("CODER_RING_")}
        caller = subprocess.run(
            [
                *(sys.executable, "-m", "tests.system.thread_caller", RING),
                *("--threads", str(THREADS), "--calls", str(CALLS), "--gather", str(GATHER)),
                *("--other-env", str(other_file), "--other-ring", RING),
                *("--other-calls", str(OTHER_CALLS)),
            ],
            env={**base, **env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert caller.returncode == 0, caller.stdout + caller.stderr
        report = json.loads(caller.stdout)
        received = (first.tasks_received(), second.tasks_received())

    threads, gathered, beside = report["threads"], report["gather"], report["other"]
    print(
        f"threads: {len(threads['codes'])} codes, {len(threads['errors'])} errors; "
        f"gather: {len(gathered['codes'])} codes, {len(gathered['errors'])} errors; "
        f"other app: {len(beside['codes'])} codes, {len(beside['errors'])} errors"
    )
    assert threads["errors"] == [] and gathered["errors"] == [] and beside["errors"] == []
    assert len(threads["codes"]) == THREADS * CALLS
    assert len(gathered["codes"]) == 2 * GATHER
    assert len(beside["codes"]) == OTHER_CALLS
    # Each call reached its own deployment: the environment's app the first, the other
    # app the second; and each worker received exactly its own callers' requests.
    mine = threads["codes"] + gathered["codes"]
    assert all(len(code) == 3 and set(code) <= set(ALPHABET) for code in mine)
    assert all(len(code) == 2 and set(code) <= set(ALPHABET) for code in beside["codes"])
    assert received == (THREADS * CALLS + 2 * GATHER, OTHER_CALLS)
    assert_distinct(mine)
    assert_distinct(beside["codes"])
