"""The global registry (issue 12): membership, the coordinator, placement and handoffs,
with real Redis and, in the last two tests, real worker processes and PostgreSQL.

The cluster test runs 100 small rings (base_length 1: 32 codes a cycle, so codes wrap
and a duplicate would show) over 3, then 2, 3, 4 and 3 workers, while caller threads
ask every ring for codes the whole time: a SIGKILL of the coordinator, two joins, a
SIGTERM, a SIGSTOP past the lock TTL and a restart of Redis. It prints what it
measured (convergence and takeover times, moves) and checks that every ring ends with
exactly one holder, that loads differ by at most one, that a graceful stop loses no
code, and that no code is issued twice.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from coder_ring.errors import NoWorker
from tests.harness import (
    TEST_LOCK_TTL,
    HolderWatch,
    ProcessGroup,
    WorkerProcess,
    assert_distinct,
    caller_app,
    lock_holders,
    members,
    run_cli,
    wait_until,
    worker_env,
    write_rings,
)
from tests.servers import private_redis
from workers.coordinator import Coordinator, read_assignment
from workers.membership import MemberInfo, Membership, live_members
from workers.names import (
    DEFAULT_NAMESPACE,
    coordinator_key,
    lock_key,
    member_key,
    ring_queue,
)
from workers.registry import MAX_AGE

pytestmark = [pytest.mark.redis]

RINGS = [f"r{index:03d}" for index in range(100)]
SMALL = {"base_length": 1, "pool_size": 4}
CALLERS = 4
REQUEST_TIMEOUT = 15.0
#: Time to converge after a join, a stop or a restart (generous: the machine is shared).
CONVERGE_TIMEOUT = 60.0
#: What a takeover may take beyond 2 x TTL on this busy 2-core machine.
ALLOWANCE = 1.5
#: What a caller may get instead of a code, and only while a fault is going on.
CLEAR_ERRORS = {
    # celery: the request was lost with Redis, or with a killed worker (kombu's Redis
    # transport pops a message before it records it as unacknowledged)
    "TimeoutError",
    "BrokerUnreachable",  # Redis was down when the request was sent
    "ConnectionError",  # redis: the result backend went down while the caller waited
    "NoWorker",  # Redis came back empty: no worker had registered again yet
}


def info(member_id: str, rings: list[str] = RINGS, healthy: bool = True) -> MemberInfo:
    return MemberInfo(member_id, member_id, 1, 0.0, tuple(rings), healthy, "sqlite://")


def spread(assignment: dict[str, str]) -> list[int]:
    return sorted(Counter(assignment.values()).values())


# --------------------------------------------------------------------------------------
# Membership and the coordinator, on a real Redis (no worker process)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def test_members_heartbeat_by_server_time_expire_and_leave(client: redis.Redis) -> None:
    membership = Membership(client, "reg", ttl=0.5)
    membership.heartbeat(info("a|1|x"))
    membership.heartbeat(info("b|2|y"))
    found = live_members(client, "reg")
    assert [member.id for member in found] == ["a|1|x", "b|2|y"]
    assert all(member.age is not None and 0 <= member.age < 0.5 for member in found)
    membership.leave("b|2|y")  # a graceful stop: gone at once
    assert [member.id for member in live_members(client, "reg")] == ["a|1|x"]
    # No heartbeat: gone after the TTL, by Redis's clock (and pruned from the id set).
    wait_until(lambda: not live_members(client, "reg"), 3.0, what="a to expire")
    assert not client.smembers("coder_ring:reg:members")


def test_one_coordinator_at_a_time_elected_by_lease(client: redis.Redis) -> None:
    first = Coordinator(client, "reg", "m1", 5.0, settle=0, max_moves=10)
    second = Coordinator(client, "reg", "m2", 5.0, settle=0, max_moves=10)
    both = [info("m1"), info("m2")]
    placed = first.round(both, {})
    assert placed is not None and spread(placed) == [50, 50]
    assert second.round(both, placed) is None and not second.leading
    assert read_assignment(client, "reg") == placed
    first.resign()  # a graceful stop: the next member to ask takes over at once
    assert second.round(both, placed) == placed  # and keeps every ring where it is
    assert first.round(both, placed) is None


def test_moves_on_their_way_count_against_the_cap(client: redis.Redis) -> None:
    coordinator = Coordinator(client, "reg", "m1", 5.0, settle=0, max_moves=10)
    three = [info("m1"), info("m2"), info("m3")]
    held = coordinator.round(three, {})
    assert held is not None and spread(held) == [33, 33, 34]
    four = [*three, info("m4")]
    assigned = coordinator.round(four, held)
    assert assigned is not None and Counter(assigned.values())["m4"] == 10
    # The ten have not moved yet (the holders still hold them): nothing more moves, however
    # many rounds run meanwhile (every notice runs one).
    for _ in range(3):
        assert coordinator.round(four, held) == assigned
    # Four arrived: four more may go.
    arrived = sorted(ring for ring, member in assigned.items() if member == "m4")[:4]
    held = {**held, **dict.fromkeys(arrived, "m4")}
    assigned = coordinator.round(four, held)
    assert assigned is not None and Counter(assigned.values())["m4"] == 14
    rounds = 0
    while True:  # every move completes at once from here on
        rounds += 1
        again = coordinator.round(four, assigned)
        assert again is not None
        if again == assigned:
            break
        assigned = again
    assert spread(assigned) == [25, 25, 25, 25] and rounds == 3  # +10, +1, then nothing


def test_the_assignment_of_thousands_of_rings_is_written(client: redis.Redis) -> None:
    many = [f"ring{index}" for index in range(5000)]
    coordinator = Coordinator(client, "reg", "m1", 5.0, settle=0, max_moves=10)
    placed = coordinator.round([info("m1", many), info("m2", many)], {})
    assert placed is not None and spread(placed) == [2500, 2500]
    assert read_assignment(client, "reg") == placed


def test_failovers_at_once_rebalancing_after_membership_settles(client: redis.Redis) -> None:
    coordinator = Coordinator(client, "reg", "m1", 5.0, settle=60, max_moves=10)
    three = [info("m1"), info("m2"), info("m3")]
    held = coordinator.round(three, {})
    assert held is not None
    # m3 died, m4 joined, m2 cannot reach its database: their rings go to the healthy
    # members now, nothing else moves before membership has been stable for `settle`.
    now = [info("m1"), info("m2", healthy=False), info("m4")]
    placed = coordinator.round(now, held)
    assert placed is not None and set(placed.values()) == {"m1", "m4"}
    assert all(placed[ring] == "m1" for ring, member in held.items() if member == "m1")
    assert spread(placed) == [50, 50]  # the failovers went to the least loaded
    # m5 joins: nothing moves while membership is settling.
    assert coordinator.round([*now, info("m5")], placed) == placed


# --------------------------------------------------------------------------------------
# Callers


@dataclass
class Request:
    ring: str
    started: float
    ended: float
    code: str | None = None
    error: BaseException | None = None
    task_id: str | None = None


@dataclass
class Callers:
    """Threads of this process asking every ring in turn for codes (``app.ring_tasks``)
    until stopped; every request is recorded (code or error, start and end)."""

    app: Any
    rings: list[str]
    requests: list[Request] = field(default_factory=list)
    _go: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _busy: Counter[int] = field(default_factory=Counter)
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, count: int = CALLERS) -> None:
        self._go.set()
        for index in range(count):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def ask(self, ring: str, timeout: float = REQUEST_TIMEOUT) -> str | None:
        """One request, recorded; its code (None if it failed)."""
        started, result = time.monotonic(), None
        try:
            result = self.app.ring_tasks.get_code.delay(ring)
            code = result.get(timeout=timeout)
        except Exception as error:  # noqa: BLE001 - recorded and judged at the end
            error = error.with_traceback(None)
            task_id = None if result is None else result.id
            self._add(Request(ring, started, time.monotonic(), error=error, task_id=task_id))
            if result is not None:
                # Celery keeps waiting for it otherwise, and says goodbye when it is
                # collected: after the test, to a Redis long gone.
                with contextlib.suppress(Exception):
                    result.backend.remove_pending_result(result)
            return None
        self._add(Request(ring, started, time.monotonic(), code=code))
        return str(code)

    def _add(self, request: Request) -> None:
        with self._mutex:
            self.requests.append(request)

    def _run(self, index: int) -> None:
        turn = index
        while not self._stop.is_set():
            if not self._go.wait(0.1):
                continue
            with self._mutex:
                self._busy[index] = 1
            if self._go.is_set() and not self._stop.is_set():
                self.ask(self.rings[(turn * 37) % len(self.rings)])
                turn += CALLERS
            with self._mutex:
                self._busy[index] = 0

    def pause(self) -> None:
        """Stop asking and wait for the requests in flight to end."""
        self._go.clear()
        wait_until(
            lambda: not any(self._busy.values()), REQUEST_TIMEOUT + 5, what="callers to pause"
        )

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> None:
        self._stop.set()
        self._go.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)

    def handed_out(self) -> Counter[str]:
        with self._mutex:
            return Counter(request.ring for request in self.requests if request.code)

    def since(self, moment: float) -> list[Request]:
        with self._mutex:
            return [request for request in self.requests if request.started >= moment]


def ledger(app: Any, callers: Callers, rings: list[str]) -> dict[str, dict[str, Any]]:
    """Each ring's status through its holder, plus ``lost``: codes the database issued
    that no caller got and no pool holds (callers paused, so none is in flight)."""
    pending = {ring: app.ring_tasks.status.delay(ring) for ring in rings}
    statuses = {ring: result.get(timeout=REQUEST_TIMEOUT) for ring, result in pending.items()}
    handed_out = callers.handed_out()
    for ring, status in statuses.items():
        issued = sum(extra["issued"] for extra in status["extras"])
        status["lost"] = issued - handed_out[ring] - (status["pooled"] or 0)
    return statuses


# --------------------------------------------------------------------------------------
# A cluster of worker processes


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


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(280)
def test_a_cluster_spreads_moves_and_survives(tmp_path: Path, pg_url: str) -> None:
    rings_file = write_rings(tmp_path / "rings.toml", **dict.fromkeys(RINGS, SMALL))
    figures: dict[str, Any] = {}
    faults: dict[str, tuple[float, float]] = {}  # when a request may fail, and why
    with private_redis() as server, _printed(figures):
        env = worker_env(redis_url=server.url, database_url=pg_url, rings_file=rings_file)
        group = ProcessGroup(tmp_path / "processes")
        with (
            group,
            caller_app(env) as app,
            HolderWatch(server.url, RINGS) as watch,
        ):
            cluster = Cluster(env, group, watch)
            callers = Callers(app, RINGS)

            # 3 workers: 33/33/34, every ring held once.
            for name in "abc":
                cluster.start(name)
            figures["start 3"] = cluster.converge("a", "b", "c")
            check_workers_command(env, cluster, "a", "b", "c")
            callers.start()
            time.sleep(1.0)

            # SIGKILL the coordinator: the other two elect another and hold every ring
            # within 2 x TTL, 50/50.
            victim = cluster.coordinator()
            first, second = survivors = tuple(sorted(set("abc") - {victim}))
            dead = cluster.member_id(victim)
            killed = time.monotonic()
            cluster.workers[victim].kill(signal.SIGKILL)
            takeover = whole_takeover(cluster, victim, survivors)
            wait_until(lambda: dead not in {m.id for m in members(env)}, 5, what="expiry")
            gone = time.monotonic() - killed
            faults["SIGKILL"] = (killed - 2, time.monotonic() + 1)
            figures["SIGKILL of the coordinator: takeover s"] = round(takeover, 2)
            figures["SIGKILL: member gone s"] = round(gone, 2)
            cluster.converge(*survivors)
            figures["SIGKILL: 50/50 s after the kill"] = round(time.monotonic() - killed, 2)
            assert takeover <= 2 * TEST_LOCK_TTL + ALLOWANCE, figures
            assert gone <= 2 * TEST_LOCK_TTL + ALLOWANCE, figures
            assert cluster.coordinator() in survivors

            # A replacement, then a fourth: the fourth takes 25, each moved once.
            figures["c2 joins"] = cluster.join("c2", *survivors)
            figures["d joins"] = joined = cluster.join("d", *survivors, "c2")
            assert joined["loads"] == [25, 25, 25, 25]
            assert 25 <= joined["moves"] <= 30, figures
            check_workers_command(env, cluster, *survivors, "c2", "d")

            # SIGTERM one: it leaves the registry first, then hands its rings over with
            # their pools: not one code lost, not one request failed.
            callers.pause()
            before = ledger(app, callers, RINGS)
            callers.resume()
            figures["codes lost so far (the SIGKILLed pools)"] = sum(
                status["lost"] for status in before.values()
            )
            leaving, its_rings = cluster.member_id(first), cluster.holders_of(first)
            assert sum(before[ring]["pooled"] for ring in its_rings) > 0
            mark, terminated = watch.mark(), time.monotonic()
            cluster.workers[first].kill(signal.SIGTERM)
            _check_leaves_before_letting_go(server.url, leaving, its_rings)
            figures["SIGTERM: 33/33/34"] = cluster.converge(second, "c2", "d")
            figures["SIGTERM: moves"] = watch.moves_since(mark)
            assert cluster.workers[first].wait(20) == 0
            callers.pause()
            after = ledger(app, callers, RINGS)
            callers.resume()
            figures["SIGTERM: codes given back"] = sum(
                cluster.workers[first].gave_back(ring) for ring in its_rings
            )
            lost = {r: after[r]["lost"] - before[r]["lost"] for r in RINGS}
            assert not any(lost.values()), {r: n for r, n in lost.items() if n}
            failed = [r for r in callers.since(terminated) if r.error is not None]
            assert not failed, failed

            # SIGSTOP another past its TTL: c2 and d take its rings over with new epochs,
            # so once resumed it is fenced (and rejoins).
            its_rings = cluster.holders_of(second)
            stopped = time.monotonic()
            cluster.workers[second].kill(signal.SIGSTOP)
            takeover = whole_takeover(cluster, second, ("c2", "d"))
            figures["SIGSTOP: takeover s"] = round(takeover, 2)
            figures["SIGSTOP: 50/50"] = cluster.converge("c2", "d")
            time.sleep(0.5)
            assert time.monotonic() - stopped > TEST_LOCK_TTL
            cluster.workers[second].kill(signal.SIGCONT)
            cluster.workers[second].wait_for_log(r"ring r\d+: lock lost", timeout=10)
            figures["SIGCONT: rejoins"] = cluster.converge(second, "c2", "d")
            epochs = ledger(app, callers, its_rings)
            fenced = [r for r in its_rings if epochs[r]["epoch"] > after[r]["epoch"]]
            assert fenced == its_rings

            # Redis restarts empty: the members register again and share every ring.
            crashed = time.monotonic()
            server.stop()
            time.sleep(0.5)
            server.start()
            figures["Redis restart"] = cluster.converge(second, "c2", "d")
            faults["Redis restart"] = (crashed - 1, time.monotonic() + 3)
            assert len(members(env)) == 3
            time.sleep(3)
            callers.stop()
            # Every ring serves again: one request each, from a caller that starts now
            # (the callers above went through the restart: a request or result they had
            # in flight was lost with Redis, as the fault windows allow).
            with caller_app(env) as fresh:
                sweeper = Callers(fresh, RINGS)
                sweep = [sweeper.ask(ring, timeout=20) for ring in RINGS]
            callers.requests += sweeper.requests
            assert all(sweep), _unserved(server.url, sweeper, group)

    _check_requests(callers.requests, faults)


@contextlib.contextmanager
def _printed(figures: dict[str, Any]) -> Iterator[None]:
    """Print ``figures`` at the end, whatever happened (a failure's report shows them)."""
    try:
        yield
    finally:
        print("\nregistry figures:")
        for name, figure in figures.items():
            print(f"  {name}: {figure}")


def _unserved(redis_url: str, sweeper: Callers, group: ProcessGroup) -> str:
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


def _check_leaves_before_letting_go(redis_url: str, member: str, rings: list[str]) -> None:
    """Until ``member`` has left the registry, it still holds every one of ``rings``
    (each reading is one atomic transaction)."""
    client = redis.Redis.from_url(redis_url)
    readings, deadline = 0, time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
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


def _check_requests(requests: list[Request], faults: dict[str, tuple[float, float]]) -> None:
    by_ring: dict[str, list[str]] = {}
    for request in requests:
        if request.code:
            by_ring.setdefault(request.ring, []).append(request.code)
    for codes in by_ring.values():
        assert_distinct(codes)
    errors = Counter(type(r.error).__name__ for r in requests if r.error is not None)
    wrapped = sum(any(len(code) > 1 for code in codes) for codes in by_ring.values())
    print(
        f"  rings whose codes wrapped to a second cycle: {wrapped} of {len(by_ring)}\n"
        f"  requests: {len(requests)}, codes: {sum(map(len, by_ring.values()))}, "
        f"errors: {dict(errors) or 'none'}, "
        f"longest: {max(r.ended - r.started for r in requests):.2f} s"
    )
    for fault, (start, end) in faults.items():
        failed = Counter(
            type(r.error).__name__ for r in requests if r.error and start <= r.started <= end
        )
        print(f"  failed requests sent during the {fault}: {dict(failed) or 'none'}")
        for r in requests:
            if r.error and start <= r.started <= end:
                name = type(r.error).__name__
                print(f"    {r.ring} {r.task_id} {name} sent at +{r.started - start:.2f} s")
    assert all(r.ended - r.started <= REQUEST_TIMEOUT + 5 for r in requests)
    assert set(errors) <= CLEAR_ERRORS, errors
    outside = [
        r
        for r in requests
        if r.error and not any(start <= r.started <= end for start, end in faults.values())
    ]
    assert not outside, outside


# --------------------------------------------------------------------------------------
# worker RING..., a ring added to the rings file, no worker for a ring


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_restricted_workers_new_rings_and_callers_failing_fast(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    names = [f"r{index}" for index in range(1, 7)]
    rings_file = write_rings(tmp_path / "rings.toml", **dict.fromkeys(names, SMALL))
    env = worker_env(redis_url=redis_url, database_url=pg_url, rings_file=rings_file)
    with (
        ProcessGroup(tmp_path / "processes") as group,
        caller_app(env) as app,
        HolderWatch(redis_url, [*names, "r7"]) as watch,
    ):
        get = app.ring_tasks.get_code.delay
        with pytest.raises(NoWorker, match="'r1'"):
            get("r1")  # nobody runs yet: at once, not after a timeout
        cluster = Cluster(env, group, watch)
        cluster.start("narrow", rings=["r1", "r2"], cli=True)  # coder-ring worker r1 r2
        cluster.start("wide")  # every ring, those added later included

        def settled() -> bool:
            narrow, wide = cluster.holders_of("narrow"), cluster.holders_of("wide")
            return narrow == ["r1", "r2"] and wide == names[2:]

        wait_until(settled, CONVERGE_TIMEOUT, what="narrow: r1, r2; wide: the rest")
        codes = {ring: get(ring).get(timeout=REQUEST_TIMEOUT) for ring in names}

        write_rings(rings_file, **dict.fromkeys([*names, "r7"], SMALL))
        wait_until(lambda: "r7" in cluster.holders_of("wide"), 20, what="r7 to be served")
        codes["r7"] = get("r7").get(timeout=REQUEST_TIMEOUT)
        assert len(codes["r7"]) == 1
        rows = {row["node"]: row for row in workers_json(env)}
        narrow, wide = cluster.workers["narrow"], cluster.workers["wide"]
        assert rows[narrow.hostname]["rings"] == ["r1", "r2"]
        assert rows[wide.hostname]["rings"] == [*names, "r7"]
        pid = str(narrow.pid)
        held_by_narrow = {
            ring
            for ring, seen in watch.history.items()
            if any(h.split("|")[1] == pid for h in seen)
        }
        assert held_by_narrow == {"r1", "r2"}  # never any other, at any reading

        # wide stops: r3..r7 have no worker left and fail at once; r1 is still served.
        assert wide.stop() == 0
        time.sleep(MAX_AGE)  # a caller trusts its view of the registry this long
        for ring in ("r3", "r7"):
            started = time.monotonic()
            with pytest.raises(NoWorker, match=f"'{ring}'"):
                get(ring)
            print(f"NoWorker for {ring} after {time.monotonic() - started:.3f} s")
        assert get("r1").get(timeout=REQUEST_TIMEOUT) != codes["r1"]
