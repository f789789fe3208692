"""The Celery service with real worker, beat and flower processes, real Redis and real
PostgreSQL: checks in the caller and ``get_codes``, a caller without the worker code
asking by task name, beat's refills and flower.

Processes come from :mod:`tests.harness`; every one of them is gone after its test.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from coder_ring import ALPHABET, ExtraConflict, InvalidInput, NoWorker, UnknownRing
from coder_ring.celery.names import TASK_GET_CODE, TASK_GET_CODES, ring_queue
from coder_ring.settings import DEFAULT_NAMESPACE
from tests.harness import (
    assert_distinct,
    caller_app,
    queue_length,
    wait_until,
    worker_env,
    write_rings,
)
from tests.system.workers_support import (
    POOL,
    QUEUE,
    RESULT_TIMEOUT,
    RING,
    get,
    one_ring_env,
    status,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]


# --------------------------------------------------------------------------------------
# Callers


@pytest.mark.postgres
def test_get_codes_and_checks_in_the_caller(
    tmp_path: Path, redis_url: str, pg_url: str, group: Any
) -> None:
    rings = write_rings(tmp_path / "rings.toml", widget={"profanity_filter": True})
    env = worker_env(redis_url=redis_url, database_url=pg_url, rings_file=rings)
    with caller_app(env) as app:
        get_code, get_codes = app.ring_tasks.get_code, app.ring_tasks.get_codes
        # Checked in the caller: nothing is sent, no worker is needed.
        with pytest.raises(UnknownRing, match=r"'nope'.*widget"):
            get_code.delay("nope")
        for call, match in [
            (lambda: get_code.delay("widget", extra="a b"), "extra"),
            (lambda: get_code.delay("widget", extra=7), "extra"),
            (lambda: get_code.delay("widget", extra="x" * 33), "extra"),
            (lambda: get_code.delay("widget", bump="yes"), "bump"),
            (lambda: get_codes.delay("widget", 0), "count"),
            (lambda: get_codes.delay("widget", 10_001), "count"),
            (lambda: get_codes.delay("widget", "5"), "count"),
            (lambda: get_codes.delay("widget", 5, extra=" "), "extra"),
        ]:
            with pytest.raises(InvalidInput, match=match):
                call()
        # A good call with no worker alive fails at once, naming the ring and the fix.
        started = time.monotonic()
        with pytest.raises(NoWorker, match=r"'widget'.*coder-ring worker"):
            get_code.delay("widget")
        print(f"NoWorker after {time.monotonic() - started:.3f} s")
        assert queue_length(redis_url, "nope") == 0
        assert queue_length(redis_url, "widget") == 0

        worker = group.worker("many", env, rings=["widget"])
        worker.wait_for_lock("widget", timeout=30)
        codes = get_codes.delay("widget", 1000).get(timeout=30)
        assert len(codes) == len(set(codes)) == 1000
        assert all(len(code) == 4 and set(code) <= set(ALPHABET) for code in codes)
        more = get_codes.delay("widget", 3, extra="2026").get(timeout=RESULT_TIMEOUT)
        assert all(code.startswith("2026") and len(code) == 8 for code in more)
        # An extra of alphabet characters only could repeat codes of the empty extra: the
        # worker refuses it, and the error reaches the caller as itself.
        with pytest.raises(ExtraConflict, match="'26'"):
            get_codes.delay("widget", 3, extra="26").get(timeout=RESULT_TIMEOUT)
        assert_distinct([*codes, *more, *get_codes.delay("widget", 5).get(timeout=10)])


@pytest.mark.postgres
def test_a_caller_without_the_worker_code_asks_by_task_name(
    tmp_path: Path, redis_url: str, pg_url: str, group: Any
) -> None:
    rings = write_rings(tmp_path / "rings.toml", widget={"base_length": 2})
    env = worker_env(redis_url=redis_url, database_url=pg_url, rings_file=rings)
    worker = group.worker("named", env, rings=["widget"])
    worker.wait_for_lock("widget")
    # A plain Celery client: no coder_ring import, only the names.
    queue = "coder_ring.default.widget"
    assert queue == ring_queue(DEFAULT_NAMESPACE, "widget")
    caller = Celery("elsewhere", broker=redis_url, backend=redis_url, set_as_current=False)
    try:
        code = caller.send_task(TASK_GET_CODE, args=["widget"], queue=queue).get(
            timeout=RESULT_TIMEOUT
        )
        many = caller.send_task(TASK_GET_CODES, args=["widget", 5], queue=queue).get(
            timeout=RESULT_TIMEOUT
        )
    finally:
        caller.close()
    assert isinstance(code, str)
    assert len(code) == 2
    assert set(code) <= set(ALPHABET)
    assert len({code, *many}) == 6


# --------------------------------------------------------------------------------------
# Beat and flower


@pytest.mark.postgres
def test_beat_refills_the_pool(tmp_path: Path, redis_url: str, pg_url: str, group: Any) -> None:
    env = one_ring_env(tmp_path, redis_url, pg_url, ring={"base_length": 2}, refill_interval=1)
    worker = group.worker("refilled", env, rings=[RING])
    with caller_app(env) as app:
        worker.wait_for_lock(RING)
        get(app)  # the activation filled the pool; one code out of it
        # Down to half the pool: no refill by get_code itself (it refills below half).
        for _ in range(POOL // 2 - 1):
            get(app)
        assert status(app)["pooled"] == POOL // 2
        beat = group.beat(env)
        worker.wait_for_log(r"Task coder_ring\.refill\[[^\]]+\] received", timeout=15)
        wait_until(lambda: status(app)["pooled"] == POOL, 10, 0.2, "a refilled pool")
        worker.wait_for_log(r"Task coder_ring\.refill\[[^\]]+\] received", timeout=5, count=2)
        assert beat.alive()
        assert "Sending due task coder_ring.refill.one" in beat.log_text()


@pytest.mark.postgres
def test_flower_shows_the_ring_worker(
    tmp_path: Path, redis_url: str, pg_url: str, group: Any
) -> None:
    # Flower lists workers and tasks from task events, which are off unless asked for.
    env = one_ring_env(tmp_path, redis_url, pg_url, CODER_RING_TASK_EVENTS="true")
    worker = group.worker("watched", env, rings=[RING])
    flower = group.flower(env)
    worker.wait_for_lock(RING)

    def fetch(path: str) -> tuple[int, bytes]:
        with urllib.request.urlopen(flower.url + path, timeout=10) as response:
            return response.status, response.read()

    def listed() -> dict[str, Any] | None:
        if not flower.alive():
            raise RuntimeError(f"flower exited:\n{flower.log_tail()}")
        try:
            code, body = fetch("/api/workers?refresh=1")
        except OSError:
            return None  # not listening yet
        workers = json.loads(body) if code == 200 else {}
        entry = workers.get(worker.hostname)
        if not entry or not any(q["name"] == QUEUE for q in entry.get("active_queues") or []):
            return None
        return dict(entry)

    entry = wait_until(listed, 30, 0.5, "flower to list the worker with its ring queue")
    assert QUEUE in {queue["name"] for queue in entry["active_queues"]}
    with caller_app(env) as app:
        code = get(app)

    def task_seen() -> dict[str, Any] | None:
        tasks = json.loads(fetch("/api/tasks")[1])
        return next((task for task in tasks.values() if task.get("result") == repr(code)), None)

    task = wait_until(task_seen, 15, 0.5, "flower to show the get_code task")
    assert task["name"] == TASK_GET_CODE and task["state"] == "SUCCESS"
    assert task["worker"] == worker.hostname
    status_code, body = fetch("/metrics")
    assert status_code == 200
    assert b"flower_" in body
