"""Fault injection: no code is issued twice while workers die, freeze and servers restart.

Real processes on servers of the test's own (a private Redis for broker, results and
locks, and a private PostgreSQL, see :mod:`tests.servers`; the shared servers are never
touched): two rings (``alpha``, base_length 3, and ``beta``, base_length 4; pool 32
each) served by four workers (two serve both rings, one each serves only one, so three
compete for every ring), and ``CALLERS`` caller processes (:mod:`tests.fault_caller`)
asking for ``get_code`` and ``get_codes`` (50-500) with a ``.get()`` timeout on every
request. While they run, rounds of faults:

* SIGKILL the holder of a ring (the killed worker is started again as a standby), twice
  in a row on one ring (the new holder is killed as soon as it served);
* SIGTERM the holder of a ring (a graceful restart under load: its pool is given back);
* SIGSTOP a holder past its lock TTL, then SIGCONT it;
* restart the Redis (its queued requests, results and locks are gone);
* restart the PostgreSQL (``pg_ctl stop -m immediate``, like a crash, then start).

After every fault the test process sends probe ``get_code`` requests to each ring until
one is served: the failover time is from the fault to that first code. At the end the
workers are stopped gracefully (SIGTERM: their pools are given back) and the test checks:

* no code reached two callers (codes carry the cycle's uniquizer, so "all distinct"
  covers every cycle of a ring; no reset, bump or extra is used). ``alpha`` starts 4,000
  codes before the end of its first cycle (the rest issued by the test before the run),
  so it wraps into the next cycle under faults;
* every code received in the current cycle is marked issued in the database (its table
  position is at or above the ring's boundary), and codes received <= codes issued;
* every request ended within its timeout plus a slack, with codes or a clear error of a
  known kind, and every caller process ended (no hang);
* at least ``CODER_RING_FAULT_CODES`` codes were received (default 20,000);
* codes lost (issued per the database minus received) stay within the bound: one pool
  per ring held by each killed or stopped (not SIGTERMed) worker and per ring at each
  Redis restart, plus the size of every request that failed or timed out, plus the size
  of every request delivered to a worker more than once (one taken by a worker that died or
  froze after its draw committed is redelivered and drawn again: the first draw's codes
  are lost, never repeated), counted from the workers' "received" log lines.

The figures (codes, duplicates, failover times, lost vs bound, errors by type) are
printed (run pytest with ``-s``) and written as JSON to ``fault_report.json`` in the
test's tmp directory (and to ``$CODER_RING_FAULT_REPORT`` if set).

Long mode, outside CI::

    make faults-long
    # = CODER_RING_FAULT_CODES=100000 .venv/bin/python -m pytest tests/test_faults.py -s

The number of codes sets how long it runs: callers ask for about
``CODER_RING_FAULT_RATE`` codes per second in all (default 500; about 450 get through,
faults included), and the rounds of faults repeat until the codes are reached. The CI
run (20,000) is one round of ten faults, about 80 s; 100,000 codes take three or four
rounds, about 4 minutes, and ring ``alpha`` wraps twice. The pytest timeout grows with
the count. ``CODER_RING_FAULT_SEED`` replays a run's random choices (its seed is printed).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from coder_ring import RingService
from coder_ring.alphabet import ALPHABET, decode_base, uniquizer
from coder_ring.sql.schema import codes_table, rings_table
from tests.conftest import require
from tests.harness import (
    TEST_LOCK_TTL,
    ManagedProcess,
    ProcessGroup,
    WorkerProcess,
    caller_app,
    engine_settings,
    wait_until,
    worker_env,
    write_rings,
)
from tests.servers import PrivatePostgres, PrivateRedis
from workers.names import TASK_GET_CODE, TASK_GET_CODES, ring_queue

CODES = int(os.environ.get("CODER_RING_FAULT_CODES", "20000"))
RATE = float(os.environ.get("CODER_RING_FAULT_RATE", "500"))
CALLERS = 6
POOL = 32
RINGS: dict[str, dict[str, Any]] = {
    "alpha": {"base_length": 3, "pool_size": POOL},
    "beta": {"base_length": 4, "pool_size": POOL},
}
WORKERS = {"w1": ["alpha", "beta"], "w2": ["alpha", "beta"], "w3": ["alpha"], "w4": ["beta"]}
#: Codes issued before the run, so that ``alpha`` (32,768 codes) wraps into its next
#: cycle a few thousand codes into it.
PREDRAWN = {"alpha": 32**3 - 4_000}

REQUEST_TIMEOUT = 20.0  # every caller's .get(timeout=...)
TASK_EXPIRES = 12.0  # a request not started by then is never served (and burns no code)
SLACK = 8.0  # on top of the timeout: .delay() retries while the broker is down
RECOVERY_LIMIT = 45.0  # a ring that serves no code this long after a fault never resumed
#: A standby takes over a dead holder's ring within 2x the lock TTL (README); plus the
#: claim, the pool's draw and a Celery round trip.
TAKEOVER_LIMIT = 2 * TEST_LOCK_TTL + 3.0
STEADY_SECONDS = 2.0  # normal service between two faults
PROBE_INTERVAL = 0.25
BURST_SINGLES = 8  # requests sent to a ring's holder just before a fault hits it
BURST_BATCHES = 2
SEED = int(os.environ.get("CODER_RING_FAULT_SEED", "0")) or int(time.time())
RANDOM = random.Random(SEED)
ROUND_SECONDS_GUESS = 75.0

#: (fault, ring whose holder it hits, how long, steady seconds after it). Kills and stops
#: hit the holder while it works on a burst of requests (see FaultRun.hit).
ROUND: list[tuple[str, str | None, float, float]] = [
    ("sigkill", "alpha", 0.0, STEADY_SECONDS),
    # Again at once: the new holder dies as soon as it served (with a fresh pool).
    ("sigkill", "beta", 0.0, 0.0),
    ("sigkill", "beta", 0.0, STEADY_SECONDS),
    # Frozen past the lock's TTL: a standby takes over; woken, it must not serve.
    ("sigstop", "alpha", 3 * TEST_LOCK_TTL, STEADY_SECONDS),
    # Restarted at once: a holder may not notice, and a standby may win the lock first.
    ("redis", None, 0.0, STEADY_SECONDS),
    ("sigkill", "alpha", 0.0, STEADY_SECONDS),
    # A graceful restart under load: the pool goes back to the ring (nothing lost).
    ("sigterm", "beta", 0.0, STEADY_SECONDS),
    ("postgres", None, 1.0, STEADY_SECONDS),
    # Frozen longer than PostgreSQL's idle_in_transaction_session_timeout (5 s): a draw
    # it was stopped in is aborted by the server, and the standby's claim proceeds.
    ("sigstop", "beta", 12.0, STEADY_SECONDS),
    # Down longer than the lock TTL: every holder loses its locks.
    ("redis", None, 2 * TEST_LOCK_TTL, STEADY_SECONDS),
]

#: What a caller may get instead of codes, with the faults that explain it.
CLEAR_ERRORS = {
    "TimeoutError",  # celery: the request or its result was lost with a worker or Redis
    "TaskRevokedError",  # the request expired before a worker could start it
    "StoreUnavailable",  # PostgreSQL was down
    "OperationalError",  # kombu: the broker was down at .delay()
    "BrokerUnreachable",  # the same, as workers.tasks names it (an OperationalError)
    "ConnectionError",  # redis: the result backend was down
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(max(300, 200 + math.ceil(CODES / RATE * 1.6))),
]


def now() -> float:
    return time.monotonic()


# --------------------------------------------------------------------------------------
# Probes: how soon a ring serves again after a fault


@dataclass
class Prober:
    """``get_code`` requests sent from the test process; polled, never waited on."""

    app: Any
    records: list[dict[str, Any]] = field(default_factory=list)
    pending: list[tuple[str, Any, float, int]] = field(default_factory=list)

    def send(self, ring: str, size: int = 1) -> None:
        sent = now()
        try:
            if size == 1:
                result = self.app.tasks[TASK_GET_CODE].delay(ring)
            else:
                result = self.app.tasks[TASK_GET_CODES].delay(ring, size)
        except Exception as error:  # noqa: BLE001 - recorded like a caller's
            self.records.append(_record("probe", ring, size, sent, None, error=error, stage="send"))
            return
        self.pending.append((ring, result, sent, size))

    def burst(self, rings: list[str]) -> list[str]:
        """Requests for the holder to work on when the fault hits it; the batches' ids."""
        first = len(self.pending)
        for ring in rings:
            for _ in range(BURST_SINGLES):
                self.send(ring)
            for _ in range(BURST_BATCHES):
                self.send(ring, RANDOM.randint(50, 500))
        return [result.id for _, result, _, size in self.pending[first:] if size > 1]

    def poll(self) -> list[dict[str, Any]]:
        """Records of the probes that finished (or timed out) since the last poll."""
        finished: list[dict[str, Any]] = []
        waiting: list[tuple[str, Any, float, int]] = []
        for ring, result, sent, size in self.pending:
            try:
                state = result.state
            except Exception:  # noqa: BLE001 - the result backend is down: ask again later
                state = None
            if state == "SUCCESS":
                value = result.result
                codes = [value] if size == 1 else list(value)
                finished.append(_record("probe", ring, size, sent, result.id, codes=codes))
            elif state in {"FAILURE", "REVOKED"}:
                error = result.result
                if not isinstance(error, BaseException):
                    error = RuntimeError(f"{state}: {error!r}")
                finished.append(_record("probe", ring, size, sent, result.id, error=error))
            elif now() > sent + REQUEST_TIMEOUT:
                finished.append(_record("probe", ring, size, sent, result.id, error=_timeout()))
                # Nobody will ask for it again: stop listening for its result.
                with contextlib.suppress(Exception):
                    result.backend.remove_pending_result(result)
            else:
                waiting.append((ring, result, sent, size))
        self.pending = waiting
        self.records += finished
        return finished

    def idle(self, seconds: float) -> None:
        """Wait ``seconds`` while polling."""
        deadline = now() + seconds
        while now() < deadline:
            self.poll()
            time.sleep(0.05)

    def measure(
        self,
        since: float,
        rings: list[str],
        actions: list[tuple[float, Callable[[], None]]] | None = None,
    ) -> dict[str, float | None]:
        """Probe ``rings`` until each served a probe sent after ``since``; seconds from
        ``since`` to that code (None: not within RECOVERY_LIMIT). ``actions`` run at
        their times meanwhile (they all run, even if the rings recovered earlier)."""
        todo = sorted(actions or [], key=lambda action: action[0])
        first: dict[str, float] = {}
        next_send = 0.0
        while True:
            while todo and todo[0][0] <= now():
                todo.pop(0)[1]()
            if len(first) == len(rings) and not todo:
                break
            if now() > since + RECOVERY_LIMIT:
                for _, action in todo:
                    action()
                break
            if now() >= next_send:
                for ring in rings:
                    if ring not in first:
                        self.send(ring)
                next_send = now() + PROBE_INTERVAL
            for record in self.poll():
                ring = record["ring"]
                ok = record["error"] is None and record["size"] == 1
                if ok and record["sent"] >= since and ring not in first:
                    first[ring] = record["ended"] - since
            time.sleep(0.03)
        return {ring: first.get(ring) for ring in rings}

    def finish(self) -> None:
        """Poll until every probe finished or timed out."""
        while self.pending:
            self.poll()
            time.sleep(0.05)


def _timeout() -> Exception:
    from celery.exceptions import TimeoutError as CeleryTimeoutError

    return CeleryTimeoutError("The operation timed out.")


def _record(
    caller: str,
    ring: str,
    size: int,
    sent: float,
    task_id: str | None,
    *,
    codes: list[str] | None = None,
    error: BaseException | None = None,
    stage: str = "result",
) -> dict[str, Any]:
    return {
        "caller": caller,
        "ring": ring,
        "task": "get_code" if size == 1 else "get_codes",
        "size": size,
        "sent": sent,
        "ended": now(),
        "codes": codes or [],
        "error": None if error is None else type(error).__name__,
        "message": "" if error is None else str(error)[:300],
        "stage": stage,
        "id": task_id,
    }


# --------------------------------------------------------------------------------------
# The run


@dataclass
class Fault:
    kind: str
    at: float
    rings: list[str]  # rings whose holder was hit (every ring for a server restart)
    victim: str | None = None
    failover: dict[str, float | None] = field(default_factory=dict)
    note: str = ""
    label: str = ""  # the fault and its duration, e.g. "sigstop 12 s"
    exit_code: int | None = None  # of a SIGTERMed worker


class FaultRun:
    """Workers, callers and the fault schedule of one test."""

    def __init__(
        self,
        tmp_path: Path,
        env: dict[str, str],
        *,
        group: ProcessGroup,
        app: Any,
        redis_server: PrivateRedis,
        pg_server: PrivatePostgres,
    ) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.group = group
        self.redis_server = redis_server
        self.pg_server = pg_server
        self.app = app
        self.prober = Prober(app)
        self.faults: list[Fault] = []
        self.workers: dict[str, WorkerProcess] = {}
        self.callers: list[ManagedProcess] = []
        self.outputs: list[Path] = []
        self.stop_file = tmp_path / "callers.stop"

    # workers and callers

    def start_workers(self) -> None:
        for name, rings in WORKERS.items():
            self.workers[name] = self.group.worker(name, self.env, rings=rings)
        for ring in RINGS:
            self.holder(ring)

    def holder(self, ring: str) -> WorkerProcess:
        """The worker holding ``ring`` (waits for one, at most RECOVERY_LIMIT)."""

        def find() -> WorkerProcess | None:
            for worker in self.workers.values():
                with contextlib.suppress(Exception):  # Redis may be coming back
                    if worker.alive() and worker.holds(ring):
                        return worker
            return None

        return wait_until(find, RECOVERY_LIMIT, 0.05, f"a holder of ring {ring!r}")

    def start_callers(self) -> None:
        for index in range(CALLERS):
            name = f"caller{index + 1}"
            out = self.tmp_path / f"{name}.jsonl"
            argv = [
                sys.executable,
                "-m",
                "tests.fault_caller",
                f"--name={name}",
                f"--out={out}",
                f"--stop={self.stop_file}",
                f"--rings={','.join(RINGS)}",
                f"--timeout={REQUEST_TIMEOUT}",
                f"--rate={RATE / CALLERS}",
                f"--seed={SEED + index}",
            ]
            log = self.group.directory / f"{name}.log"
            caller = ManagedProcess(name, argv, self.env, log)
            self.group.add(caller)
            self.callers.append(caller)
            self.outputs.append(out)

    def caller_records(self) -> list[dict[str, Any]]:
        records = []
        for path in self.outputs:
            with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8") as lines:
                for line in lines:
                    with contextlib.suppress(json.JSONDecodeError):  # a line being written
                        records.append(json.loads(line))
        return records

    def codes_received(self) -> int:
        return sum(len(r["codes"]) for r in self.caller_records() + self.prober.records)

    def stop_callers(self) -> dict[str, int | None]:
        """Ask the callers to stop; their exit codes (None: still running, a hang)."""
        self.stop_file.touch()
        exits: dict[str, int | None] = {}
        for caller in self.callers:
            try:
                exits[caller.name] = caller.wait(REQUEST_TIMEOUT + SLACK + 10)
            except TimeoutError:
                exits[caller.name] = None
        return exits

    # faults

    def run_round(self) -> None:
        for kind, ring, seconds, steady in ROUND:
            getattr(self, kind)(ring, seconds)
            fault = self.faults[-1]
            timed = kind in {"sigstop", "redis", "postgres"}
            fault.label = f"{kind} {seconds:g} s" if timed else kind
            times = ", ".join(
                f"{name} {'never' if t is None else f'{t:.2f} s'}"
                for name, t in fault.failover.items()
            )
            print(f"  {kind:8} {fault.victim or '':3} hit {fault.rings}: first code {times}")
            self.prober.idle(steady)

    def consumed_by(self, worker: WorkerProcess) -> set[str] | None:
        """The queues ``worker`` consumes (``celery inspect active_queues``); None when
        it did not answer (or a connection of this app died with an earlier Redis)."""
        inspect = self.app.control.inspect(destination=[worker.hostname], timeout=1.0)
        try:
            replies = inspect.active_queues() or {}
        except Exception:  # noqa: BLE001 - ask again
            return None
        if worker.hostname not in replies:
            return None
        return {queue["name"] for queue in replies[worker.hostname]}

    def stopped_consuming(self, worker: WorkerProcess, rings: list[str]) -> bool:
        queues = self.consumed_by(worker)
        return queues is not None and not queues & {ring_queue(ring) for ring in rings}

    def _held_by(self, worker: WorkerProcess) -> list[str]:
        return [ring for ring in worker.rings if worker.holds(ring)]

    def hit(self, victim: WorkerProcess, held: list[str], sig: signal.Signals) -> float:
        """Send ``sig`` to ``victim`` while it works on a batch (it received one of a
        burst's batches, plus 0-30 ms: before, inside or after its draw); its time."""
        start = victim.log_path.stat().st_size
        batches = self.prober.burst(held)
        pattern = re.compile("|".join(rf"\[{re.escape(i)}\] received" for i in batches))
        deadline = now() + 2.0
        while batches and now() < deadline and not pattern.search(_read_from(victim, start)):
            time.sleep(0.002)
        time.sleep(RANDOM.uniform(0.0, 0.03))
        at = now()
        victim.kill(sig)
        return at

    def sigkill(self, ring: str | None, _seconds: float) -> None:
        assert ring is not None
        victim = self.holder(ring)
        held = self._held_by(victim)
        at = self.hit(victim, held, signal.SIGKILL)
        victim.wait()
        victim.start()  # back as a standby
        fault = Fault("sigkill", at, held, victim.name)
        fault.failover = self.prober.measure(at, list(RINGS))
        self.faults.append(fault)

    def sigterm(self, ring: str | None, _seconds: float) -> None:
        assert ring is not None
        victim = self.holder(ring)
        held = self._held_by(victim)
        at = self.hit(victim, held, signal.SIGTERM)
        exit_code = victim.wait(30)
        victim.start()
        fault = Fault("sigterm", at, held, victim.name, note=f"exit code {exit_code}")
        fault.exit_code = exit_code
        fault.failover = self.prober.measure(at, list(RINGS))
        self.faults.append(fault)

    def sigstop(self, ring: str | None, seconds: float) -> None:
        assert ring is not None
        victim = self.holder(ring)
        held = self._held_by(victim)
        at = self.hit(victim, held, signal.SIGSTOP)
        fault = Fault("sigstop", at, held, victim.name, note=f"SIGCONT after {seconds:.0f} s")
        fault.failover = self.prober.measure(
            at, list(RINGS), [(at + seconds, lambda: victim.kill(signal.SIGCONT))]
        )
        # Woken, it notices that its lease lapsed: it stops consuming the ring's queue.
        wait_until(
            lambda: self.stopped_consuming(victim, held),
            10,
            0.2,
            f"{victim.name}, woken, to stop consuming {held}",
        )
        self.faults.append(fault)

    def redis(self, _ring: str | None, seconds: float) -> None:
        self.prober.burst(list(RINGS))
        at = now()
        self.redis_server.stop()
        self.prober.idle(seconds)
        self.redis_server.start()
        fault = Fault("redis", at, list(RINGS), note=f"down {now() - at:.1f} s")
        fault.failover = self.prober.measure(at, list(RINGS))
        self.faults.append(fault)

    def postgres(self, _ring: str | None, seconds: float) -> None:
        self.prober.burst(list(RINGS))
        at = now()
        self.pg_server.stop("immediate")
        self.prober.idle(seconds)
        self.pg_server.start()
        note = f"stop -m immediate, down {now() - at:.1f} s"
        fault = Fault("postgres", at, list(RINGS), note=note)
        fault.failover = self.prober.measure(at, list(RINGS))
        self.faults.append(fault)


def _read_from(process: ManagedProcess, offset: int) -> str:
    with process.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", errors="replace")


@contextlib.contextmanager
def private_servers() -> Iterator[tuple[PrivateRedis, PrivatePostgres]]:
    """A private Redis and a private PostgreSQL (skip locally / fail in CI without them)."""
    with contextlib.ExitStack() as stack:
        try:
            redis_server = PrivateRedis()
            stack.callback(redis_server.close)
            redis_server.start()
            pg_server = PrivatePostgres()
            stack.callback(pg_server.close)
            pg_server.start()
        except Exception as error:  # noqa: BLE001 - no redis-server or PostgreSQL here
            require("a private Redis/PostgreSQL", error)
        yield redis_server, pg_server


# --------------------------------------------------------------------------------------
# Checks


def issued_positions(service: RingService, ring: str, boundary: int) -> set[int]:
    """Values at table positions >= ``boundary``: the codes issued in the current cycle."""
    engine = service.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        ring_id = conn.execute(select(rings_table.c.id).where(rings_table.c.name == ring)).scalar()
        rows = conn.execute(
            select(codes_table.c.value).where(
                codes_table.c.ring_id == ring_id, codes_table.c.position >= boundary
            )
        )
        return {int(value) for (value,) in rows}


RECEIVED = re.compile(r"Task coder_ring\.get_codes?\[([0-9a-f-]+)\] received")


def split_code(code: str, base_length: int) -> tuple[str, int]:
    """(uniquizer, base value) of a code without extra."""
    return code[:-base_length], decode_base(code[-base_length:])


def predraw(service: RingService) -> list[dict[str, Any]]:
    """Issue PREDRAWN codes before the run (so that a ring wraps during it); records of
    them, as if a caller had received them."""
    records = []
    for ring, count in PREDRAWN.items():
        left = count
        while left > 0:
            size = min(left, 10_000)
            sent = now()
            codes = service.get_codes(ring, size)
            records.append(_record("setup", ring, size, sent, None, codes=codes))
            left -= size
    return records


def fault_report(
    run: FaultRun,
    service: RingService,
    records: list[dict[str, Any]],
    setup: list[dict[str, Any]],
) -> Any:
    """Every figure of the run, and the problems found (empty when all holds)."""
    problems: list[str] = []
    by_ring: dict[str, list[str]] = defaultdict(list)
    for record in setup + records:
        by_ring[record["ring"]].extend(record["codes"])

    deliveries = Counter(
        task_id
        for worker in run.workers.values()
        for task_id in RECEIVED.findall(worker.log_text(whole=True))
    )
    rings: dict[str, Any] = {}
    for ring, keys in RINGS.items():
        codes = by_ring[ring]
        counts = Counter(codes)
        duplicates = sorted(code for code, times in counts.items() if times > 1)
        if duplicates:
            problems.append(f"ring {ring}: {len(duplicates)} codes issued twice: {duplicates[:20]}")
        state = service.status(ring)
        issued = state.cycle * state.total_codes + state.total_codes - state.remaining_in_cycle
        base_length = keys["base_length"]
        current = uniquizer(state.cycle)
        malformed = {c for c in counts if len(c) < base_length or not set(c) <= set(ALPHABET)}
        if malformed:
            problems.append(f"ring {ring}: malformed codes {sorted(malformed)[:20]}")
        # Codes of the current cycle must sit in the issued part of the table: one below
        # the boundary (given back, or never marked issued) could be issued again.
        issued_now = issued_positions(service, ring, state.remaining_in_cycle)
        this_cycle = [
            code
            for code in counts
            if code not in malformed and split_code(code, base_length)[0] == current
        ]
        unissued = sorted(
            code for code in this_cycle if split_code(code, base_length)[1] not in issued_now
        )
        if unissued:
            problems.append(
                f"ring {ring}: {len(unissued)} codes received are not marked issued in the "
                f"database (they could be issued again): {unissued[:20]}"
            )
        if len(counts) > issued:
            problems.append(f"ring {ring}: {len(counts)} codes received > {issued} issued")

        faults = [fault for fault in run.faults if ring in fault.rings]
        pools = sum(1 for f in faults if f.kind not in {"postgres", "sigterm"}) * keys["pool_size"]
        failed = [r for r in records if r["ring"] == ring and r["error"]]
        failed_codes = sum(r["size"] for r in failed)
        # A failed request is already counted whole; the others count once per extra delivery.
        redelivered = sum(
            r["size"] * (deliveries[r["id"]] - 1)
            for r in records
            if r["ring"] == ring and not r["error"] and deliveries[r["id"]] > 1
        )
        bound = pools + failed_codes + redelivered
        lost = issued - len(counts)
        if lost > bound:
            problems.append(f"ring {ring}: {lost} codes lost > bound {bound}")
        rings[ring] = {
            "codes_received": len(codes) - PREDRAWN.get(ring, 0),
            "codes_issued_before_the_run": PREDRAWN.get(ring, 0),
            "distinct": len(counts),
            "duplicates": len(duplicates),
            "issued_per_database": issued,
            "checked_against_the_table": len(this_cycle),
            "cycle": state.cycle,
            "remaining_in_cycle": state.remaining_in_cycle,
            "lost": lost,
            "bound": bound,
            "bound_parts": {
                "pools_of_killed_stopped_or_redis_restarted_holders": pools,
                "failed_or_timed_out_requests": failed_codes,
                "requests_delivered_again": redelivered,
            },
            "gave_back_on_sigterm": sum(w.gave_back(ring) for w in run.workers.values()),
        }

    # Callers wait with .get(timeout=...); probes are polled, their end is when seen.
    late = [
        r
        for r in records
        if r["caller"] != "probe" and r["ended"] - r["sent"] > REQUEST_TIMEOUT + SLACK
    ]
    if late:
        problems.append(f"{len(late)} requests took longer than timeout + slack: {late[:5]}")
    unclear = [r for r in records if r["error"] and r["error"] not in CLEAR_ERRORS]
    if unclear:
        problems.append(f"{len(unclear)} requests failed with an unexpected error: {unclear[:5]}")
    errors = Counter(f"{r['error']} ({r['stage']})" for r in records if r["error"])
    messages: dict[str, str] = {}
    for r in records:
        if r["error"]:
            messages.setdefault(r["error"], r["message"])
    failovers = [
        {
            "fault": f.kind,
            "victim": f.victim,
            "rings_hit": f.rings,
            "first_code_after_s": {
                ring: None if t is None else round(t, 3) for ring, t in f.failover.items()
            },
            "note": f.note,
            "at": round(f.at, 3),
        }
        for f in run.faults
    ]
    failover_max: dict[str, float] = {}
    for f in run.faults:
        if f.kind == "sigterm" and f.exit_code != 0:
            problems.append(f"{f.victim}, SIGTERMed under load, exited with {f.exit_code}")
        hit = [t for ring, t in f.failover.items() if ring in f.rings and t is not None]
        if hit:
            failover_max[f.label] = round(max([failover_max.get(f.label, 0.0), *hit]), 2)
        for ring, t in f.failover.items():
            if t is None:
                problems.append(f"ring {ring} served nothing within {RECOVERY_LIMIT} s of {f.kind}")
            elif f.kind in {"sigkill", "sigterm"} and t > TAKEOVER_LIMIT:
                problems.append(f"ring {ring}: first code {t:.1f} s after {f.kind} of {f.victim}")
    report = {
        "codes_received": sum(len(r["codes"]) for r in records),
        "requests": len(records),
        "requests_ok": sum(1 for r in records if not r["error"]),
        "longest_caller_request_s": round(
            max(r["ended"] - r["sent"] for r in records if r["caller"] != "probe"), 3
        ),
        "failover_max_s": failover_max,
        "rings": rings,
        "faults": failovers,
        "errors_by_type": dict(errors.most_common()),
        "error_examples": messages,
        "settings": {
            "codes_target": CODES,
            "seed": SEED,
            "rate": RATE,
            "callers": CALLERS,
            "lock_ttl": TEST_LOCK_TTL,
            "request_timeout": REQUEST_TIMEOUT,
            "task_expires": TASK_EXPIRES,
            "rings": RINGS,
            "workers": WORKERS,
        },
    }
    return report, problems


def print_report(report: dict[str, Any], seconds: float) -> None:
    print(f"\n==== fault injection: {report['codes_received']} codes in {seconds:.0f} s ====")
    print(f"requests: {report['requests']} ({report['requests_ok']} ok), seed {SEED}")
    for ring, figures in report["rings"].items():
        parts = figures["bound_parts"]
        print(
            f"ring {ring}: {figures['codes_received']} codes, {figures['duplicates']} duplicates, "
            f"issued {figures['issued_per_database']} (cycle {figures['cycle']}; "
            f"{figures['codes_issued_before_the_run']} of them before the run, received too), "
            f"lost {figures['lost']} <= bound {figures['bound']} "
            f"(pools {parts['pools_of_killed_stopped_or_redis_restarted_holders']}, "
            f"failed {parts['failed_or_timed_out_requests']}, "
            f"delivered again {parts['requests_delivered_again']})"
        )
    print("failover (fault -> first code served after it):")
    for fault in report["faults"]:
        times = ", ".join(
            f"{ring} {'never' if t is None else f'{t:.2f} s'}"
            for ring, t in fault["first_code_after_s"].items()
        )
        print(
            f"  {fault['fault']:8} {fault['victim'] or '':3} hit {fault['rings_hit']}: {times}"
            + (f" ({fault['note']})" if fault["note"] else "")
        )
    print(f"longest failover by fault (rings hit): {report['failover_max_s']}")
    print(f"longest caller request: {report['longest_caller_request_s']} s")
    print(f"errors by type: {report['errors_by_type'] or 'none'}")
    for name, message in report["error_examples"].items():
        print(f"  {name}: {message[:160]}")


# --------------------------------------------------------------------------------------
# The test


def test_no_duplicates_under_faults(tmp_path: Path) -> None:
    started = now()
    with private_servers() as (redis_server, pg_server):
        rings_file = write_rings(tmp_path / "rings.toml", **RINGS)
        env = worker_env(
            redis_url=redis_server.url,
            database_url=pg_server.url,
            rings_file=rings_file,
            task_expires=TASK_EXPIRES,
        )
        service = RingService.from_settings(engine_settings(env))
        service.migrate()
        service.populate()  # before the workers: they start serving at once
        setup = predraw(service)
        group = ProcessGroup(tmp_path / "processes")
        try:
            with group, caller_app(env) as app:
                run = FaultRun(
                    tmp_path,
                    env,
                    group=group,
                    app=app,
                    redis_server=redis_server,
                    pg_server=pg_server,
                )
                run.start_workers()
                run.start_callers()
                run.prober.idle(STEADY_SECONDS)

                rounds = 0
                while True:
                    round_started, before = now(), run.codes_received()
                    print(f"\nround {rounds + 1} of faults")
                    run.run_round()
                    rounds += 1
                    have = run.codes_received()
                    rate = max(1.0, (have - before) / (now() - round_started))
                    missing = CODES - have
                    if missing <= 0:
                        break
                    if missing / rate > 0.75 * ROUND_SECONDS_GUESS:
                        continue  # long mode: more rounds of faults
                    wait_until(lambda: run.codes_received() >= CODES, 4 * missing / rate + 30, 1)
                    break

                callers = run.stop_callers()
                run.prober.finish()
                died = [name for name, worker in run.workers.items() if not worker.alive()]
                exits = {name: worker.stop(timeout=30) for name, worker in run.workers.items()}
                records = run.caller_records() + run.prober.records
                report, problems = fault_report(run, service, records, setup)
        finally:
            service.close()
    seconds = now() - started
    report["rounds"] = rounds
    report["seconds"] = round(seconds, 1)
    report["worker_exit_codes"] = exits
    report["caller_exit_codes"] = callers
    print_report(report, seconds)
    text = json.dumps(report, indent=2, sort_keys=True)
    (tmp_path / "fault_report.json").write_text(text, encoding="utf-8")
    if os.environ.get("CODER_RING_FAULT_REPORT"):
        Path(os.environ["CODER_RING_FAULT_REPORT"]).write_text(text, encoding="utf-8")
    with (tmp_path / "probes.jsonl").open("w", encoding="utf-8") as probes:
        probes.writelines(json.dumps(r) + "\n" for r in records if r["caller"] == "probe")
    print(f"report: {tmp_path / 'fault_report.json'}")

    hung = [name for name, code in callers.items() if code is None]
    assert not hung, f"caller processes still running after the stop: {hung}"
    assert all(code == 0 for code in callers.values()), f"caller exit codes: {callers}"
    assert not died, f"workers that died by themselves: {died}"
    assert all(code == 0 for code in exits.values()), f"graceful stop exit codes: {exits}"
    assert not problems, "\n".join(problems)
    assert report["codes_received"] >= CODES
