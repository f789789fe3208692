"""Red team 4: relative link health (LinkHealth.round's ``quick_peer_since``) under a
Redis slow for everyone, evenly.

A worker degrades when its round's Redis calls took over the limit (TTL/6) twice while
another healthy member had a quick round. But the members' rounds do not make the same
number of calls: the coordinator renews its lease in one call, every other healthy
member bids for it in two (the renew script fails, then ``SET NX``), and an unhealthy
one does not bid at all (coder_ring/registry/coordinator.py ``Coordinator.round``,
coder_ring/registry/lease.py ``acquire_or_renew``). When every call is equally late,
the coordinator's round (7 calls) can be within the limit while every other member's
(8 calls) is not: every member but the coordinator declares itself degraded at once,
gives every ring up and drops its pools, although its link is no worse than anyone's.

The same rule reads a member that has not measured a round yet as a quick one: a
worker published ``redis_seconds=0.0`` in its first heartbeat (coder_ring/celery/runtime.py
``WorkerRuntime.__init__``), so a worker started (or restarted) while Redis is slow for
everyone makes every other member degrade at once: red team 3's outage, brought back by
any restart during it.

The delay is a proxy in front of a private Redis that holds each request of every
client the same time (a Redis host or path slow for all clients alike).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from coder_ring.celery.runtime import WorkerRuntime
from tests.harness.config import private_port
from tests.servers import private_redis
from tests.system.test_redteam_slow_redis import TTL, runtime_on

pytestmark = [pytest.mark.redis]


class DelayProxy:
    """A TCP proxy to ``target_port`` that forwards each request ``delay`` s late
    (answers go back at once); ``delay`` may change while it runs."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = private_port()
        self.delay = 0.0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, late: bool
        ) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    if late and self.delay:
                        await asyncio.sleep(self.delay)
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    @contextlib.contextmanager
    def running(self) -> Iterator[DelayProxy]:
        self._thread.start()
        self._ready.wait(10)
        try:
            yield self
        finally:
            self._loop.call_soon_threadsafe(self._shut)
            self._thread.join(10)

    def _shut(self) -> None:
        for task in asyncio.all_tasks(self._loop):
            task.cancel()
        self._loop.stop()


@contextlib.contextmanager
def cluster(tmp_path: Path, rings: int) -> Iterator[tuple[DelayProxy, list[WorkerRuntime]]]:
    """Workers a, b, c (not started) on ``rings`` rings, Redis behind a :class:`DelayProxy`."""
    rings_file = tmp_path / "rings.toml"
    rings_file.write_text("".join(f"[rings.r{i}]\nbase_length = 2\n" for i in range(rings)))
    database = f"sqlite:///{tmp_path / 'rings.db'}"
    namespace = f"rt4{uuid.uuid4().hex[:10]}"
    with private_redis() as server, DelayProxy(server.port).running() as proxy:
        workers = [runtime_on(proxy.url, database, rings_file, namespace, n) for n in "abc"]
        workers[0].service.migrate()
        try:
            yield proxy, workers
        finally:
            proxy.delay = 0.0
            for worker in workers:
                worker.stop(give_back=True)


def settle(workers: list[WorkerRuntime]) -> None:
    """Start ``workers``, wait until every ring is served and each is healthy, a TTL more."""
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 30
    while not all(
        any(worker.seats[ring].can_serve() for worker in workers) for ring in workers[0].seats
    ) or not all(worker.healthy for worker in workers):
        assert time.monotonic() < deadline, "the cluster never served every ring"
        time.sleep(0.05)
    time.sleep(TTL)  # rebalanced: every member has a few rings


def degraded(
    workers: list[WorkerRuntime], seconds: float, samples: dict[str, set[float]] | None = None
) -> dict[str, float]:
    """Worker -> when (s from now) it was first seen degraded, watched for ``seconds``
    (``samples``: the Redis seconds of their rounds, as seen meanwhile; under "unserved",
    the longest time any ring had no worker serving it)."""
    sick: dict[str, float] = {}
    began = time.monotonic()
    unserved_since: float | None = None
    while time.monotonic() - began < seconds:
        now = time.monotonic()
        for worker in workers:
            # None: its last round was no fair figure (unhealthy, or failed).
            if samples is not None and worker.redis_seconds is not None:
                samples.setdefault(worker.node, set()).add(round(worker.redis_seconds, 2))
            if not worker.healthy:
                sick.setdefault(worker.node, round(now - began, 1))
        rings = workers[0].seats
        if all(any(w.seats[ring].can_serve() for w in workers) for ring in rings):
            unserved_since = None
        elif samples is not None:
            unserved_since = now if unserved_since is None else unserved_since
            gap = round(now - unserved_since, 1)
            samples["unserved"] = {max(gap, *samples.get("unserved", {0.0}))}
        time.sleep(0.1)
    return sick


@pytest.mark.timeout(120)
def test_an_evenly_slow_redis_degrades_no_member(tmp_path: Path) -> None:
    with cluster(tmp_path, rings=6) as (proxy, workers):
        settle(workers)
        # Every request 65 ms late: 7 calls (the coordinator's round) ~0.46 s, within
        # the limit (TTL/6 = 0.5 s); 8 calls (any other member's) ~0.53 s, over it.
        proxy.delay = 0.065
        samples: dict[str, set[float]] = {}
        sick = degraded(workers, 4 * TTL, samples)
        leader = [worker.node for worker in workers if worker.coordinator.leading]
        assert not sick, (
            f"every request to Redis equally late (65 ms, any client): members "
            f"{sorted(sick)} declared themselves degraded (s after the slowdown: {sick}) "
            f"and gave their rings up; coordinator {leader}; Redis seconds of their "
            f"rounds, sampled: { {node: sorted(s) for node, s in samples.items()} }"
        )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("delay", [0.1, 0.3])
def test_the_onset_of_a_slowdown_for_all_degrades_no_member(tmp_path: Path, delay: float) -> None:
    # Every request ``delay`` s late: every round (~8 calls) over the limit (0.5 s) for
    # every member alike, each call within the client's timeout (0.5 s). A peer's last
    # quick round (before the onset) is dated by its next heartbeat minus a period, and
    # that heartbeat reaches Redis (its time stamp) ``delay`` late: dated up to a
    # request's delay too late (tests/unit/test_redteam4_quick_peer.py). Rounds of all
    # members start together (any notice wakes every member), so it looks "after my slow
    # rounds began". Fails about every other run; with 0.3 s, once in three runs every
    # member degraded at once (red team 3's outage).
    with cluster(tmp_path, rings=6) as (proxy, workers):
        settle(workers)
        proxy.delay = delay
        samples: dict[str, set[float]] = {}
        sick = degraded(workers, 4 * TTL, samples)
        assert not sick, (
            f"Redis {delay} s late for every client alike: {sorted(sick)} declared "
            f"themselves degraded (s after the onset: {sick}) and gave their rings up; "
            f"longest time a ring had no worker serving it: {samples.get('unserved')} s"
        )


@pytest.mark.timeout(120)
def test_a_worker_started_while_redis_is_slow_for_all_degrades_no_other(tmp_path: Path) -> None:
    with cluster(tmp_path, rings=4) as (proxy, workers):
        settle(workers[:2])
        proxy.delay = 0.1  # every round over the limit, for every member alike
        time.sleep(2 * TTL)  # the onset may degrade one (the test above); not the last
        serving = [worker for worker in workers[:2] if worker.healthy]
        assert serving, "the last healthy member degraded (no quick peer to compare)"
        # A third worker starts (a restart, a scale-up) during the slowdown.
        workers[2].start()
        sick = degraded(serving, 2 * TTL)
        assert not sick, (
            f"Redis 100 ms late for every client: worker c started, and {sorted(sick)} "
            f"declared themselves degraded (s after c started: {sick}), giving their "
            f"rings up: c's first heartbeat says its last round took 0.0 s"
        )
