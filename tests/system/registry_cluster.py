"""The cluster of worker processes of ``test_registry_cluster.py`` (100 small rings) and
what the test reads of it: holders, loads, the coordinator, ``coder-ring workers``,
takeovers and handoffs, and what went wrong with a request that got no code."""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from coder_ring.celery.names import ring_queue
from coder_ring.registry.keys import coordinator_key, lock_key, member_key
from coder_ring.settings import DEFAULT_NAMESPACE
from tests.harness import (
    HolderWatch,
    ProcessGroup,
    WorkerProcess,
    lock_holders,
    members,
    run_cli,
    wait_until,
)
from tests.system.registry_callers import Callers

RINGS = [f"r{index:03d}" for index in range(100)]
SMALL = {"base_length": 1, "pool_size": 4}
#: Time to converge after a join, a stop or a restart (generous: the machine is shared).
CONVERGE_TIMEOUT = 60.0


@dataclass
class Cluster:
    env: dict[str, str]
    group: ProcessGroup
    watch: HolderWatch
    workers: dict[str, WorkerProcess] = field(default_factory=dict)

    def start(self, name: str, **kwargs: Any) -> WorkerProcess:
        self.workers[name] = self.group.worker(name, self.env, **kwargs)
        return self.workers[name]

    def join(self, name: str, *others: str) -> dict[str, Any]:
        """Start ``name`` and wait until it shares the rings with ``others``: the seconds
        from its start and from its registration to convergence, the loads, the moves."""
        mark, started = self.watch.mark(), time.monotonic()
        worker = self.start(name)
        wait_until(
            lambda: any(m.pid == worker.pid for m in members(self.env)),
            CONVERGE_TIMEOUT,
            what=f"{name} to register",
        )
        registered = time.monotonic()
        _, loads = self.converge(name, *others)
        return {
            "from start s": round(time.monotonic() - started, 2),
            "from registration s": round(time.monotonic() - registered, 2),
            "loads": sorted(loads.values()),
            "moves": self.watch.moves_since(mark),
        }

    def member_id(self, name: str) -> str:
        worker = self.workers[name]
        found = [m.id for m in members(self.env) if m.pid == worker.pid]
        assert len(found) == 1, f"{name} is not a member"
        return found[0]

    def loads(self) -> dict[str, int] | None:
        """Rings held per worker name when every ring is held, else None."""
        latest = self.watch.latest
        if latest is None or any(holder is None for holder in latest.values()):
            return None
        names = {str(w.pid): name for name, w in self.workers.items()}
        counted = Counter(names.get(holder.split("|")[1], holder) for holder in latest.values())
        return dict(counted)

    def converge(self, *names: str) -> tuple[float, dict[str, int]]:
        """Wait until exactly ``names`` hold every ring, loads within one; (seconds, loads)."""
        started = time.monotonic()

        def balanced() -> dict[str, int] | None:
            loads = self.loads()
            if loads is None or set(loads) != set(names):
                return None
            return loads if max(loads.values()) - min(loads.values()) <= 1 else None

        loads = wait_until(balanced, CONVERGE_TIMEOUT, what=f"{names} to share the rings")
        return round(time.monotonic() - started, 2), loads

    def coordinator(self) -> str:
        """The name of the worker that coordinates now."""
        token = self.watch.client.get(coordinator_key(DEFAULT_NAMESPACE))
        assert token is not None, "no coordinator"
        pid = token.decode().split("|")[1]
        return next(name for name, w in self.workers.items() if str(w.pid) == pid)

    def holders_of(self, name: str) -> list[str]:
        pid = str(self.workers[name].pid)
        latest = self.watch.latest or {}
        return sorted(r for r, h in latest.items() if h and h.split("|")[1] == pid)


def workers_json(env: dict[str, str]) -> list[dict[str, Any]]:
    """``coder-ring workers --json``."""
    done = run_cli(env, "workers", "--json")
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def check_workers_command(env: dict[str, str], cluster: Cluster, *names: str) -> None:
    """``coder-ring workers --json`` lists ``names`` (one of them the coordinator), each
    with every ring it may serve, and what it holds: what it was assigned."""

    def published() -> bool:  # members publish what they hold at their next heartbeat
        holding = {m.pid: sorted(m.holding) for m in members(env)}
        return all(holding.get(cluster.workers[n].pid) == cluster.holders_of(n) for n in names)

    wait_until(published, 5, what="members to publish what they hold")
    rows = workers_json(env)
    by_pid = {row["pid"]: row for row in rows}
    assert sorted(by_pid) == sorted(cluster.workers[name].pid for name in names)
    assert sum(row["coordinator"] for row in rows) == 1
    for name in names:
        row = by_pid[cluster.workers[name].pid]
        assert sorted(row["holding"]) == sorted(row["assigned"]) == cluster.holders_of(name)
        assert row["rings"] == RINGS and row["healthy"]


def whole_takeover(cluster: Cluster, victim: str, survivors: tuple[str, ...]) -> float:
    """Seconds from now until every ring is held by one of ``survivors``."""
    started = time.monotonic()

    def taken() -> bool:
        loads = cluster.loads()
        return loads is not None and set(loads) <= set(survivors)

    wait_until(taken, CONVERGE_TIMEOUT, 0.02, what=f"the rings of {victim} to be taken over")
    return time.monotonic() - started


@contextlib.contextmanager
def printed(figures: dict[str, Any]) -> Iterator[None]:
    """Print ``figures`` at the end, whatever happened (a failure's report shows them)."""
    try:
        yield
    finally:
        print("\nregistry figures:")
        for name, figure in figures.items():
            print(f"  {name}: {figure}")


def unserved(redis_url: str, sweeper: Callers, group: ProcessGroup) -> str:
    """What went wrong with the requests that gave no code (for the failure's message):
    whether a worker served it (its log says so), who holds the ring, its queue."""
    failed = [r for r in sweeper.requests if r.error is not None]
    client = redis.Redis.from_url(redis_url)
    try:
        holders = lock_holders(client, [r.ring for r in failed])
        waiting = [client.llen(ring_queue(DEFAULT_NAMESPACE, r.ring)) for r in failed]
    finally:
        client.close()
    logs = "".join(process.log_text(whole=True) for process in group.processes)
    return "\n".join(
        f"{r.ring}: {type(r.error).__name__} {r.error} (task {r.task_id}, "
        f"{'served' if f'[{r.task_id}] succeeded' in logs else 'not served'}), "
        f"held by {holders[r.ring]}, {count} waiting in its queue"
        for r, count in zip(failed, waiting, strict=True)
    )


def check_leaves_before_letting_go(
    redis_url: str, member: str, rings: list[str], terminate: Callable[[], None]
) -> None:
    """``terminate`` the member after a first reading; until it has left the registry, it
    still holds every one of ``rings`` (each reading is one atomic transaction)."""
    client = redis.Redis.from_url(redis_url)
    readings, deadline = 0, time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            if readings == 1:
                terminate()  # after one reading: a quick leave cannot go unchecked
            pipe = client.pipeline(transaction=True)
            pipe.exists(member_key(DEFAULT_NAMESPACE, member))
            pipe.mget([lock_key(DEFAULT_NAMESPACE, ring) for ring in rings])
            present, holders = pipe.execute()
            if not present:
                assert readings, "it left before the first reading: nothing was checked"
                return
            assert all(holder == member.encode() for holder in holders)
            readings += 1
            time.sleep(0.005)
    finally:
        client.close()
    raise AssertionError(f"{member} still registered 30 s after SIGTERM")
