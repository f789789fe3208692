"""Red team: a worker's graceful stop while its lease thread is mid-round.

Before 0.3.0's change ``WorkerRuntime.stop`` joined the lease thread before leaving
the registry; now the thread keeps running (to renew locks during the give-backs), so
a round already under way when ``stop`` begins goes on after ``membership.leave``.
The round is held at its first step here (a hook on ``reload.round``, a file
stat in real life) until ``leave`` ran: the interleaving a stop meets whenever the
lease thread is mid-round, made certain.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
import redis

from coder_ring import RingService, SqlStore
from coder_ring.celery.runtime import WorkerRuntime
from coder_ring.config import load_rings
from coder_ring.registry.membership import live_members
from coder_ring.settings import Settings, WorkerSettings
from tests.harness.shared import REDIS_TEST_URL, require


@pytest.fixture
def shared_redis() -> str:
    """The shared test Redis, untouched: the test keeps to a namespace of its own."""
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except redis.RedisError as error:
        require("Redis", error)
    finally:
        client.close()
    return REDIS_TEST_URL


def one_ring_runtime(redis_url: str, tmp_path: Path) -> tuple[WorkerRuntime, RingService, str]:
    """An in-process worker runtime (not started) serving ring ``one`` (32 codes, pool 8)
    from an SQLite file, in a namespace of its own: the runtime, its service, the
    namespace."""
    rings = tmp_path / "rings.toml"
    rings.write_text("[rings.one]\nbase_length = 2\npool_size = 8\n")
    url = f"sqlite:///{tmp_path / 'rings.db'}"
    namespace = f"rt{uuid.uuid4().hex[:10]}"
    settings = WorkerSettings(
        engine=Settings(database_url=url, config_path=rings),
        redis_url=redis_url,
        broker_url=redis_url,
        result_backend=redis_url,
        namespace=namespace,
        lock_ttl=3.0,
    )
    service = RingService(SqlStore(url), load_rings(rings))
    service.migrate()
    return WorkerRuntime(settings, [], "node-a", service), service, namespace


def test_a_stopped_worker_is_not_a_member_after_stop(shared_redis: str, tmp_path: Path) -> None:
    """After ``stop()`` returns the worker must not be a live member: standbys take a
    ring only when its assigned member is not live, so a member re-registered by the
    round's heartbeat after ``leave`` keeps its rings unserved for up to a lock TTL
    (and a coordinator round after ``resign`` can even assign rings to it)."""
    runtime, _, namespace = one_ring_runtime(shared_redis, tmp_path)
    client = redis.Redis.from_url(shared_redis)
    try:
        runtime.start()
        deadline = time.monotonic() + 15
        while not runtime.seats["one"].can_serve() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runtime.seats["one"].can_serve(), "the worker never took ring one"

        left = threading.Event()
        in_round = threading.Event()
        leave, reload_round = runtime.membership.leave, runtime.reload.round

        def leave_then_signal(member_id: str) -> None:
            leave(member_id)
            left.set()

        def held_round() -> None:
            in_round.set()
            # The round goes on once stop() has left the registry, if stop() does not
            # wait for it (it must: then this gives up after 2 s).
            left.wait(2)
            reload_round()

        runtime.membership.leave = leave_then_signal  # type: ignore[method-assign]
        runtime.reload.round = held_round  # type: ignore[method-assign]
        runtime._wake.set()
        assert in_round.wait(10)
        runtime.stop(give_back=True)
        members = [member.id for member in live_members(client, namespace)]
        assert runtime.member_id not in members, (
            "the stopped worker is a live member again (its lease round heartbeated "
            "after stop() left the registry)"
        )
    finally:
        if not runtime._stopped.is_set():
            runtime.stop(give_back=True)
        for key in client.scan_iter(f"*{namespace}*"):
            client.delete(key)
        client.close()
