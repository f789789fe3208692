"""The bad-input catalogue (see ``test_bad_inputs.py``): broken dependencies. The
broker, Redis or the database down must give a clear error at the caller, change
nothing, and, at the worker, heal by itself (private servers from :mod:`tests.servers`;
the shared ones are never stopped).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from coder_ring import ALPHABET, BrokerUnreachable, NoWorker, StoreUnavailable, Unreachable
from tests.harness import ProcessGroup, caller_app, free_port, wait_until, worker_env, write_rings
from tests.harness.cli import Cli, ScriptCli, assert_one_line_error
from tests.servers import private_postgres, private_redis
from tests.system.bad_inputs_catalogue import POOL, RING, RING_KEYS
from tests.system.bad_inputs_support import (
    assert_message,
    database_state,
    extra_boundary,
    finish_cycle,
    get,
    one_ring_env,
    served_or_none,
)

# --------------------------------------------------------------------------------------
# Broken dependencies


@pytest.mark.redis
def test_broker_down_at_the_caller(tmp_path: Path, sqlite_url: str, redis_url: str) -> None:
    rings = write_rings(tmp_path / "rings.toml", **{RING: RING_KEYS})
    dead = f"redis://127.0.0.1:{free_port()}/0"
    # A live result backend, a dead broker (and no registry to read: the request is sent).
    env = worker_env(
        redis_url=dead, broker_url=dead, result_backend=redis_url,
        database_url=sqlite_url, rings_file=rings,
    )  # fmt: skip
    direct = Cli(sqlite_url, rings)
    direct.ok("migrate")
    before = database_state(sqlite_url)
    with caller_app(env) as app, pytest.raises(BrokerUnreachable) as caught:
        app.ring_tasks.get_code.delay(RING)
    # A broker outage is not a database outage: both are Unreachable, only one a store's.
    assert isinstance(caught.value, Unreachable)
    assert not isinstance(caught.value, StoreUnavailable)
    assert_message(caught.value, "cannot reach the broker", dead, "Connection refused")
    assert_message(caught.value, "nothing was sent")
    assert database_state(sqlite_url) == before
    codes = direct.ok("get", RING, "--direct", "-n", "32").stdout.split()
    assert sorted(codes) == sorted(ALPHABET)  # the whole first cycle was still there


@pytest.mark.slow
@pytest.mark.redis
def test_broker_and_result_backend_down_at_the_caller(tmp_path: Path, sqlite_url: str) -> None:
    # The usual set-up: broker, results and locks on one Redis, which is down. The result
    # backend gives up after its retry policy (5 s): slow, hence not in the quick suite.
    rings = write_rings(tmp_path / "rings.toml", **{RING: RING_KEYS})
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = worker_env(redis_url=dead, database_url=sqlite_url, rings_file=rings)
    direct = Cli(sqlite_url, rings)
    direct.ok("migrate")
    before = database_state(sqlite_url)
    # The console script runs alongside the in-process caller.
    script = ScriptCli(sqlite_url, rings, more_env=env)
    finished: list[Any] = []
    background = threading.Thread(
        target=lambda: finished.append(script.run("get", RING, "--timeout", "5"))
    )
    background.start()
    with caller_app(env) as app, pytest.raises(BrokerUnreachable) as caught:
        app.ring_tasks.get_code.delay(RING)
    background.join(60)
    shown = ("cannot reach the result backend", dead, "nothing was sent")
    assert_message(caught.value, *shown)
    [done] = finished
    assert_one_line_error(done, *shown, code=1)
    assert database_state(sqlite_url) == before


@pytest.mark.slow
@pytest.mark.postgres
def test_redis_down_at_the_worker_stops_serving_and_heals(
    tmp_path: Path, pg_url: str, group: ProcessGroup
) -> None:
    with private_redis() as redis_server:
        env = one_ring_env(tmp_path, redis_server.url, pg_url)
        worker = group.worker("served", env, rings=[RING])
        with caller_app(env) as app:
            worker.wait_for_lock(RING)
            codes = [get(app) for _ in range(5)]
            pid = worker.pid

            redis_server.stop()
            worker.wait_for_log(rf"ring {RING}: lock unreachable .*; stop serving", timeout=15)
            worker.wait_for_log(rf"ring {RING}: lock lost; pool dropped", timeout=15)
            # The lock is gone, and the pool went back to the ring (the database is up).
            wait_until(
                lambda: extra_boundary(pg_url) == len(ALPHABET) - len(codes),
                15,
                what="the pool given back",
            )
            with pytest.raises(BrokerUnreachable) as caught:
                app.ring_tasks.get_code.delay(RING)
            assert_message(caught.value, redis_server.url, "nothing was sent")

            redis_server.start()
            # Served again by the same process: it healed by itself.
            code = wait_until(lambda: served_or_none(app), 60, 0.5, "the ring served again")
            print(f"redis down, then served again; caller's error meanwhile: {caught.value}")
            assert worker.alive() and worker.pid == pid
            assert worker.holds(RING)
            assert len(re.findall(rf"ring {RING}: lock won by", worker.log_text())) == 2
            finish_cycle(app, [*codes, code])


@pytest.mark.slow
@pytest.mark.redis
def test_database_down_at_the_worker_is_a_clear_error_and_heals(
    tmp_path: Path, redis_url: str, group: ProcessGroup
) -> None:
    with private_postgres() as database:
        env = one_ring_env(tmp_path, redis_url, database.url)
        worker = group.worker("served", env, rings=[RING])
        direct = ScriptCli(database.url, Path(env["CODER_RING_CONFIG"]), more_env=env)
        with caller_app(env) as app:
            worker.wait_for_lock(RING)
            codes = [get(app) for _ in range(5)]
            pid = worker.pid

            database.stop()
            # The pool holds codes already committed as issued: they are handed out, then
            # callers get the database's error (and, once the worker gave the ring up as
            # unhealthy, that no worker may serve it).
            error: StoreUnavailable | NoWorker | None = None
            for _ in range(POOL + 1):
                try:
                    codes.append(get(app))
                except (StoreUnavailable, NoWorker) as caught:
                    error = caught
                    break
            assert error is not None, "the worker kept serving without its database"
            where = f"postgresql+psycopg://postgres@127.0.0.1:{database.port}/postgres"
            if isinstance(error, StoreUnavailable):
                assert_message(error, f"database {where} failed")
            else:
                assert_message(error, "database unreachable")
            print(f"database down: {len(codes) - 5} pooled codes served, then: {error}")
            assert_one_line_error(direct.run("get", RING, "--direct"), f"database {where} failed")

            database.start()
            started = time.monotonic()
            code = wait_until(lambda: served_or_none(app), 120, 0.5, "the ring served again")
            print(f"served again {time.monotonic() - started:.1f} s after the database")
            assert worker.alive() and worker.pid == pid  # it healed by itself
            finish_cycle(app, [*codes, code])
