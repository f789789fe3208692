"""The Celery service with real worker, beat and flower processes, real Redis and real
PostgreSQL (one test on SQLite too): the original library's tests through Celery, lock
ownership and takeover, restarts with a pool, a paused holder, caller-side checks,
callers without the worker code, beat's refills and flower.

Processes come from :mod:`tests.harness`; every one of them is gone after its test.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError

from coder_ring import ALPHABET, ExtraConflict, InvalidInput, NoWorker, UnknownRing
from tests.harness import (
    TEST_LOCK_TTL,
    ProcessGroup,
    WorkerProcess,
    assert_distinct,
    caller_app,
    queue_length,
    ring_calls,
    wait_until,
    worker_env,
    write_rings,
)
from workers.names import DEFAULT_NAMESPACE, TASK_GET_CODE, TASK_GET_CODES, ring_queue

pytestmark = [pytest.mark.slow, pytest.mark.redis]

RING = "one"
QUEUE = ring_queue(DEFAULT_NAMESPACE, RING)
POOL = 8
RESULT_TIMEOUT = 10.0
#: Seconds beyond 2x the lock TTL a takeover may take on a busy machine (the lease
#: thread's period, process scheduling, reading the log line).
TAKEOVER_ALLOWANCE = 1.5


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Processes of one test; their logs' tails are printed (shown if the test fails)."""
    group = ProcessGroup(tmp_path / "processes")
    try:
        yield group
    finally:
        group.close()
        for process in group.processes:
            print(process.log_tail(60))


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


# --------------------------------------------------------------------------------------
# The original library's tests, through Celery, with a pool


@pytest.mark.parametrize("database", ["pg_url", "sqlite_url"])
def test_original_library_tests_through_celery(
    database: str, request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, group: Any
) -> None:
    env = one_ring_env(tmp_path, redis_url, str(request.getfixturevalue(database)))
    worker = group.worker("solo", env, rings=[RING])
    with caller_app(env) as app:
        worker.wait_for_lock(RING)

        first = [get(app) for _ in range(32)]
        assert sorted(first) == sorted(ALPHABET)  # 32 distinct single characters
        assert 0 < status(app)["pooled"] <= POOL  # served from a pool
        second = [get(app) for _ in range(32)]
        assert sorted(second) == sorted("X" + char for char in ALPHABET)

        app.ring_tasks.reset.delay(RING).get(timeout=RESULT_TIMEOUT)
        assert [len(get(app)), len(get(app)), len(get(app, bump=True))] == [1, 1, 2]

        with_extra = [get(app, extra="hi") for _ in range(32)]
        assert all(len(code) == 3 and code.startswith("hi") for code in with_extra)
        assert sorted(code[2:] for code in with_extra) == sorted(ALPHABET)
        wrapped = get(app, extra="hi")
        assert len(wrapped) == 4
        assert wrapped.startswith("hiX")

        report = status(app)
        assert report["holder"] == worker.hostname
        assert report["extra"] == "hi"
        assert [extra["extra"] for extra in report["extras"]] == ["hi", ""]
        assert report["cycle"] == 1 and report["uniquizer"] == "X"
    assert worker.tasks_received() == 32 + 32 + 3 + 33  # every get_code ran there


# --------------------------------------------------------------------------------------
# Ownership and takeover


@pytest.mark.postgres
def test_only_the_holder_consumes_and_the_standby_takes_over_a_killed_holder(
    tmp_path: Path, redis_url: str, pg_url: str, group: Any
) -> None:
    env = one_ring_env(tmp_path, redis_url, pg_url, ring={"base_length": 2})
    holder = group.worker("holder", env, rings=[RING])
    holder.wait_for_lock(RING)
    standby = group.worker("standby", env, rings=[RING])
    with caller_app(env) as app:
        standby.wait_ready()
        time.sleep(TEST_LOCK_TTL)  # the standby competed for the lock a few times
        assert holder.holds(RING)
        assert not standby.holds(RING)
        queues = queues_of(app, holder, standby)
        assert QUEUE in queues[holder.hostname]
        assert QUEUE not in queues[standby.hostname]

        codes = [get(app) for _ in range(20)]
        assert holder.tasks_received() == 20
        assert standby.tasks_received() == 0

        task = app.ring_tasks.get_code
        in_flight = [task.delay(RING) for _ in range(20)]
        holder.kill(signal.SIGKILL)
        killed = time.monotonic()
        holder.wait()
        # Sent while the dead holder is still registered (its record lives one TTL).
        fresh = task.delay(RING)
        standby.wait_for_lock(RING, timeout=10)
        lock_after = time.monotonic() - killed
        codes.append(fresh.get(timeout=max(0.1, 10 - (time.monotonic() - killed))))
        served_after = time.monotonic() - killed
        print(f"takeover after SIGKILL: lock {lock_after:.2f} s, first code {served_after:.2f} s")
        assert lock_after <= 2 * TEST_LOCK_TTL + TAKEOVER_ALLOWANCE

        # The request the holder had taken (unacknowledged) is restored to the queue after
        # the visibility timeout and served by the standby. One taken by kombu's BRPOP but
        # not yet recorded as unacknowledged when the holder died is lost: its caller gets
        # a timeout (and, expiring, it can never be served later).
        late, errors = collect(in_flight, timeout=15)
        codes += late + [get(app) for _ in range(10)]
        assert QUEUE in queues_of(app, standby)[standby.hostname]
    print(f"killed holder: {len(late)} in-flight answered, {len(errors)} lost")
    assert_distinct(codes)
    assert_distinct(logged_codes(holder, standby))
    assert len(late) + len(errors) == 20
    assert len(errors) <= 1, errors
    assert all(isinstance(error, CeleryTimeoutError) for error in errors), errors


@pytest.mark.postgres
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_restart_with_a_pool(
    sig: signal.Signals, tmp_path: Path, redis_url: str, pg_url: str, group: Any
) -> None:
    env = one_ring_env(tmp_path, redis_url, pg_url)
    worker = group.worker("restarted", env, rings=[RING])
    with caller_app(env) as app:
        worker.wait_for_lock(RING)
        before = [get(app) for _ in range(10)]
        pooled = status(app)["pooled"]
        assert pooled > 0
        worker.kill(sig)
        assert worker.wait() == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
        stopped = time.monotonic()
        worker.start()
        worker.wait_for_lock(RING, timeout=15)
        print(f"restart after {sig.name}: lock after {time.monotonic() - stopped:.2f} s")
        after = codes_before_wrap(app)
    first_cycle = before + after
    assert_distinct(first_cycle)
    assert set(first_cycle) <= set(ALPHABET)
    if sig == signal.SIGTERM:
        assert worker.gave_back(RING) == pooled
        assert len(first_cycle) == 32  # nothing lost
    else:
        assert worker.gave_back(RING) == 0
        assert 32 - POOL <= len(first_cycle) <= 32  # at most the pool lost


@pytest.mark.postgres
def test_a_paused_holder_never_hands_out_a_duplicate(
    tmp_path: Path, redis_url: str, pg_url: str, group: Any
) -> None:
    env = one_ring_env(tmp_path, redis_url, pg_url, ring={"base_length": 2})
    holder = group.worker("paused", env, rings=[RING])
    holder.wait_for_lock(RING)
    standby = group.worker("standby", env, rings=[RING])
    with caller_app(env) as app:
        standby.wait_ready()
        task = app.ring_tasks.get_code
        codes = [get(app) for _ in range(10)]

        # A burst the holder is working through when it is stopped.
        in_flight = [task.delay(RING) for _ in range(30)]
        holder.kill(signal.SIGSTOP)
        stopped = time.monotonic()
        in_flight += [task.delay(RING) for _ in range(10)]
        standby.wait_for_lock(RING, timeout=10)
        lock_after = time.monotonic() - stopped
        # The standby serves while the holder is stopped. If the holder was stopped inside
        # a transaction, the standby's claim waits for PostgreSQL to end that session
        # (idle_in_transaction_session_timeout, 5 s).
        codes.append(task.delay(RING).get(timeout=20))
        served_after = time.monotonic() - stopped
        print(f"takeover of a stopped holder: lock {lock_after:.2f} s, code {served_after:.2f} s")
        assert lock_after <= 2 * TEST_LOCK_TTL + TAKEOVER_ALLOWANCE
        codes += [get(app) for _ in range(5)]

        holder.kill(signal.SIGCONT)
        holder.wait_for_log(rf"ring {RING}: lock lost", timeout=5)
        in_flight += [task.delay(RING) for _ in range(10)]
        late, errors = collect(in_flight, timeout=15)
        codes += late + [get(app) for _ in range(10)]
        assert standby.holds(RING)
        assert not holder.holds(RING)
        assert QUEUE not in queues_of(app, holder)[holder.hostname]
    print(f"paused holder: {len(late)} in-flight answered, {len(errors)} failed")
    assert_distinct(codes)
    assert_distinct(logged_codes(holder, standby))


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
