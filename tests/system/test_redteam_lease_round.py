"""Red team 3: what one lease round does with a database busy migrating and with one
failed Redis read (issue 20).

* F2: the worker's health probe was ``migrate``, which waits on the migration advisory
  lock whenever the schema is not this release's head. While a newer release migrates
  (the version row names a revision this one does not know, and the migration holds the
  lock), a standby's every round waited on that lock until its bound, so the standby
  reported itself unhealthy although its database answered, and took no ring when the
  holder went away. A probe is now a plain read; a worker migrates once, when it starts.
* F3: a round whose registry read failed followed "no assignment", and without one
  every free lock was fair game: one timed-out read at a cold start made the worker take
  every ring before the coordinator placed any. It now follows the last assignment read.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, text

from coder_ring import RingService, SqlStore
from coder_ring.celery.runtime import WorkerRuntime
from coder_ring.config import load_rings
from coder_ring.registry.keys import assignment_key
from coder_ring.registry.member_lease import lock_holders
from coder_ring.settings import Settings, WorkerSettings
from coder_ring.sql.migrations.heads import VERSION_TABLE
from coder_ring.sql.store import MIGRATION_LOCK_KEY
from tests.harness.shared import REDIS_TEST_URL
from tests.servers import private_postgres

pytestmark = [pytest.mark.redis]


@pytest.fixture
def shared_redis(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def runtime_of(url: str, rings: Path, namespace: str, ttl: float, node: str) -> WorkerRuntime:
    urls = dict.fromkeys(("redis_url", "broker_url", "result_backend"), REDIS_TEST_URL)
    engine = Settings(database_url=url, config_path=rings)
    settings = WorkerSettings(engine=engine, namespace=namespace, lock_ttl=ttl, **urls)
    return WorkerRuntime(settings, [], node, RingService(SqlStore(url), load_rings(rings)))


@contextlib.contextmanager
def started(*runtimes: WorkerRuntime, client: redis.Redis, namespace: str) -> Iterator[None]:
    try:
        for runtime in runtimes:
            runtime.start()
        yield
    finally:
        for runtime in runtimes:
            if not runtime._stopped.is_set():
                runtime.stop(give_back=True)
        for key in client.scan_iter(f"*{namespace}*"):
            client.delete(key)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.timeout(90)
def test_a_migration_under_way_leaves_a_standby_healthy(
    shared_redis: redis.Redis, tmp_path: Path
) -> None:
    ttl = 1.5
    rings = tmp_path / "rings.toml"
    rings.write_text("[rings.one]\nbase_length = 2\npool_size = 8\n")
    namespace = f"rt3{uuid.uuid4().hex[:10]}"
    with private_postgres() as server:  # the advisory lock is server-wide: not the shared one
        url = server.url
        first = runtime_of(url, rings, namespace, ttl, "first")
        second = runtime_of(url, rings, namespace, ttl, "second")
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with started(first, second, client=shared_redis, namespace=namespace):
            wait_for(lambda: any(r.seats["one"].can_serve() for r in (first, second)), 15, "one")
            holder, standby = (first, second) if first.seats["one"].can_serve() else (second, first)
            wait_for(lambda: standby.healthy, 10, "the standby to be healthy")
            with admin.connect() as migrating:
                # A newer release's migration: it recorded its revision, and another of
                # its processes holds the migration lock (a long ALTER, say).
                migrating.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00d'"))
                migrating.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
                time.sleep(3 * ttl)  # the standby's database check runs every round
                assert standby.healthy, (
                    "the standby reports itself unhealthy while its database answers: its "
                    "probe waited on the migration lock"
                )
                holder.stop(give_back=True)  # the holder leaves: the standby takes over
                wait_for(standby.seats["one"].can_serve, 4 * ttl, "the takeover")
        admin.dispose()


def test_a_failed_registry_read_takes_no_free_lock(
    shared_redis: redis.Redis, tmp_path: Path
) -> None:
    ttl = 3.0
    rings = tmp_path / "rings.toml"
    # More rings than one batch of moves: a cold start waits for the members to join.
    rings.write_text("".join(f"[rings.r{i}]\nbase_length = 2\n" for i in range(12)))
    namespace = f"rt3{uuid.uuid4().hex[:10]}"
    runtime = runtime_of(f"sqlite:///{tmp_path / 'rings.db'}", rings, namespace, ttl, "a")
    runtime.service.migrate()
    failed = threading.Event()
    hgetall = runtime.redis.hgetall

    def times_out_once(name: Any) -> Any:
        if name == assignment_key(namespace) and not failed.is_set():
            failed.set()
            raise redis.TimeoutError("Timeout reading from socket")  # as a slow link would
        return hgetall(name)

    runtime.redis.hgetall = times_out_once  # type: ignore[method-assign]
    with started(runtime, client=shared_redis, namespace=namespace):
        assert failed.wait(10), "the round never read the assignment"
        with runtime._in_round:  # that round is over
            held = lock_holders(shared_redis, namespace, list(runtime.seats))
        assert not held, (
            f"one failed read of the assignment made the worker take {len(held)} free "
            "locks that the coordinator had not placed"
        )
        # The coordinator places them once the members had time to join.
        wait_for(lambda: all(s.can_serve() for s in runtime.seats.values()), 5 * ttl, "rings")
