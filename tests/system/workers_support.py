"""Helpers of ``test_workers*.py``: workers of ring ``one`` (base_length 1, pool 8),
calls through a caller app, and what the results, the workers' logs and ``celery inspect``
say."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from coder_ring.celery.names import ring_queue
from coder_ring.settings import DEFAULT_NAMESPACE
from tests.harness import WorkerProcess, ring_calls, worker_env, write_rings

RING = "one"
QUEUE = ring_queue(DEFAULT_NAMESPACE, RING)
POOL = 8
RESULT_TIMEOUT = 10.0
#: Seconds beyond 2x the lock TTL a takeover may take on a busy machine (the lease
#: thread's period, process scheduling, reading the log line).
TAKEOVER_ALLOWANCE = 1.5


def one_ring_env(
    tmp_path: Path, redis_url: str, database_url: str, **overrides: Any
) -> dict[str, str]:
    """Env of workers serving ring ``one`` (base_length 1, pool 8 unless overridden)."""
    ring = {"base_length": 1, "pool_size": POOL}
    ring.update(overrides.pop("ring", {}))
    rings = write_rings(tmp_path / "rings.toml", **{RING: ring})
    return worker_env(redis_url=redis_url, database_url=database_url, rings_file=rings, **overrides)


get, status = ring_calls(RING, RESULT_TIMEOUT)


def collect(results: list[Any], timeout: float) -> tuple[list[str], list[BaseException]]:
    """Codes of ``results`` that came back within ``timeout`` (in total), and the errors."""
    deadline = time.monotonic() + timeout
    codes: list[str] = []
    errors: list[BaseException] = []
    for result in results:
        try:
            codes.append(result.get(timeout=max(0.1, deadline - time.monotonic())))
        except Exception as error:  # noqa: BLE001 - a lost request may fail or time out
            errors.append(error)
    return codes, errors


def logged_codes(*workers: WorkerProcess) -> list[str]:
    """Every code the workers' logs say they handed out (get_code and get_codes)."""
    return [code for worker in workers for code in worker.codes_served()]


def codes_before_wrap(app: Any, limit: int = 40) -> list[str]:
    """Codes of the first cycle (one character) until the first ``X`` code."""
    codes: list[str] = []
    for _ in range(limit):
        code = get(app)
        if len(code) == 2:
            assert code.startswith("X")
            return codes
        codes.append(code)
    raise AssertionError(f"no wrap within {limit} codes: {codes}")


def queues_of(app: Any, *workers: WorkerProcess) -> dict[str, set[str]]:
    """Queue names each worker consumes, asked with ``celery inspect active_queues``."""
    names = [worker.hostname for worker in workers]
    replies = app.control.inspect(destination=names, timeout=2.0).active_queues() or {}
    return {name: {queue["name"] for queue in replies.get(name, [])} for name in names}
