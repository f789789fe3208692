"""The Celery service with real worker processes, real Redis and real PostgreSQL (one
test on SQLite too): the original library's tests through Celery, lock ownership and
takeover, restarts with a pool and a paused holder. Caller-side checks, callers without
the worker code, beat's refills and flower are in ``test_workers_callers.py``.

Processes come from :mod:`tests.harness`; every one of them is gone after its test.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import TimeoutError as CeleryTimeoutError

from coder_ring import ALPHABET
from tests.harness import TEST_LOCK_TTL, assert_distinct, caller_app
from tests.system.workers_support import (
    POOL,
    QUEUE,
    RESULT_TIMEOUT,
    RING,
    TAKEOVER_ALLOWANCE,
    codes_before_wrap,
    collect,
    get,
    logged_codes,
    one_ring_env,
    queues_of,
    status,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]


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
        # Resumed, it lets the ring go: its lock is lost, or, stopped inside a transaction
        # that PostgreSQL ended meanwhile, its database counts as failing since before the
        # pause and it gives every ring up (the probe met the dead connection).
        holder.wait_for_log(rf"ring {RING}: (lock lost|given up)", timeout=5)
        in_flight += [task.delay(RING) for _ in range(10)]
        late, errors = collect(in_flight, timeout=15)
        codes += late + [get(app) for _ in range(10)]
        assert standby.holds(RING)
        assert not holder.holds(RING)
        assert QUEUE not in queues_of(app, holder)[holder.hostname]
    print(f"paused holder: {len(late)} in-flight answered, {len(errors)} failed")
    assert_distinct(codes)
    assert_distinct(logged_codes(holder, standby))
