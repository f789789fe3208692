"""The fault schedule, and how each fault is dealt to the cluster.

One round, in order (the ring names the holder hit; kills and stops hit it while it
works on a burst of requests, see :meth:`Injector.hit`):

* SIGKILL ``alpha``'s holder (the killed worker is started again as a standby);
* SIGKILL ``beta``'s holder, then at once the new one, as soon as it served;
* SIGSTOP ``alpha``'s holder for 6 s (3x the lock TTL), then SIGCONT: a standby took
  over meanwhile; woken, it must notice and stop serving;
* restart Redis after 0.1 s down (queued requests, results, locks, the registry: gone);
* SIGKILL ``alpha``'s holder again;
* restart Redis after 4 s down (longer than the lock TTL: every holder loses its locks);
* SIGTERM ``beta``'s holder under load (a graceful stop: its pools go back);
* crash PostgreSQL (``pg_ctl stop -m immediate``) and start it again after 1 s;
* SIGSTOP ``beta``'s holder for 12 s (longer than PostgreSQL's 5 s idle-in-transaction
  timeout: a draw it was frozen in is aborted by the server, and the standby's claim
  proceeds).

(The requests a Redis restart wipes out time out 20 s later: the long one comes early
enough for that to happen during the next faults, not at the end of the run.)

After each fault the test probes every ring until it serves: the time from the fault to
that first code is the fault's recovery time.
"""

from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass, field

from tests.faults.cluster import Cluster
from tests.faults.settings import RANDOM, RINGS, STEADY_SECONDS
from tests.harness import TEST_LOCK_TTL, ManagedProcess, WorkerProcess, wait_until


@dataclass
class Fault:
    kind: str
    at: float  # time.monotonic() when it was dealt
    rings: list[str]  # rings whose holder was hit (every ring for a server restart)
    victim: str | None = None
    recovery: dict[str, float | None] = field(default_factory=dict)  # ring -> first code
    note: str = ""
    label: str = ""  # the fault and its duration, e.g. "sigstop 12 s"
    exit_code: int | None = None  # of a SIGTERMed worker


#: (fault, ring whose holder it hits, seconds, steady seconds after it).
ROUND: list[tuple[str, str | None, float, float]] = [
    ("sigkill", "alpha", 0.0, STEADY_SECONDS),
    ("sigkill", "beta", 0.0, 0.0),
    ("sigkill", "beta", 0.0, STEADY_SECONDS),
    ("sigstop", "alpha", 3 * TEST_LOCK_TTL, STEADY_SECONDS),
    ("redis", None, 0.1, STEADY_SECONDS),
    ("sigkill", "alpha", 0.0, STEADY_SECONDS),
    ("redis", None, 2 * TEST_LOCK_TTL, STEADY_SECONDS),
    ("sigterm", "beta", 0.0, STEADY_SECONDS),
    ("postgres", None, 1.0, STEADY_SECONDS),
    ("sigstop", "beta", 12.0, STEADY_SECONDS),
]


def read_from(process: ManagedProcess, offset: int) -> str:
    """``process``'s log from byte ``offset`` on."""
    with process.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", errors="replace")


class Injector:
    """Deals the faults of :data:`ROUND` to ``cluster``, and keeps what happened."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.prober = cluster.prober
        self.faults: list[Fault] = []

    def run_round(self) -> None:
        for kind, ring, seconds, steady in ROUND:
            fault = getattr(self, kind)(ring, seconds)
            timed = kind in {"sigstop", "redis", "postgres"}
            fault.label = f"{kind} {seconds:g} s" if timed else kind
            self.faults.append(fault)
            times = ", ".join(
                f"{name} {'never' if t is None else f'{t:.2f} s'}"
                for name, t in fault.recovery.items()
            )
            print(
                f"  {fault.label:14} {fault.victim or '':3} hit {fault.rings}: first code {times}"
            )
            self.cluster.check_callers()
            self.prober.idle(steady, self.cluster.check_callers)

    def hit(self, victim: WorkerProcess, sig: signal.Signals) -> tuple[float, list[str]]:
        """Send ``sig`` to ``victim`` while it works on a batch (it received one of a
        burst's batches, plus 0-30 ms: before, inside or after its draw). Returns the
        time and the rings it held then (read before and just after the signal: the
        lock outlives a killed holder by up to a TTL)."""
        held = self.cluster.held_by(victim)
        start = victim.log_path.stat().st_size
        batches = self.prober.burst(held)
        pattern = re.compile("|".join(rf"\[{re.escape(i)}\] received" for i in batches))
        deadline = time.monotonic() + 2.0
        while (
            batches and time.monotonic() < deadline and not pattern.search(read_from(victim, start))
        ):
            time.sleep(0.002)
        time.sleep(RANDOM.uniform(0.0, 0.03))
        at = time.monotonic()
        victim.kill(sig)
        held = sorted(set(held) | set(self.cluster.held_by(victim)))
        return at, held

    def sigkill(self, ring: str | None, _seconds: float) -> Fault:
        assert ring is not None
        victim = self.cluster.holder(ring)
        at, held = self.hit(victim, signal.SIGKILL)
        victim.wait()
        victim.start()  # back as a standby
        fault = Fault("sigkill", at, held, victim.name)
        fault.recovery = self.prober.measure(at, list(RINGS))
        return fault

    def sigterm(self, ring: str | None, _seconds: float) -> Fault:
        assert ring is not None
        victim = self.cluster.holder(ring)
        at, held = self.hit(victim, signal.SIGTERM)
        exit_code = victim.wait(30)
        victim.start()
        fault = Fault("sigterm", at, held, victim.name, note=f"exit code {exit_code}")
        fault.exit_code = exit_code
        fault.recovery = self.prober.measure(at, list(RINGS))
        return fault

    def sigstop(self, ring: str | None, seconds: float) -> Fault:
        assert ring is not None
        victim = self.cluster.holder(ring)
        at, held = self.hit(victim, signal.SIGSTOP)
        woken: list[int] = []

        def wake() -> None:
            woken.append(victim.log_path.stat().st_size)
            victim.kill(signal.SIGCONT)

        fault = Fault("sigstop", at, held, victim.name, note=f"SIGCONT after {seconds:g} s")
        fault.recovery = self.prober.measure(at, list(RINGS), [(at + seconds, wake)])
        # Woken, it notices its lease lapsed (the lease thread says so, or a fenced draw
        # makes it ask Redis): it stops serving those rings.
        lapsed = "|".join(rf"ring {ring}: lock lost|ring {ring!r} was taken over" for ring in held)
        wait_until(
            lambda: re.search(lapsed, read_from(victim, woken[0])),
            15,
            0.2,
            f"{victim.name}, woken, to stop serving {held}",
        )
        return fault

    def redis(self, _ring: str | None, seconds: float) -> Fault:
        self.prober.burst(list(RINGS))
        at = time.monotonic()
        self.cluster.redis_server.stop()
        self.prober.idle(seconds)
        self.cluster.redis_server.start()
        fault = Fault("redis", at, list(RINGS), note=f"down {time.monotonic() - at:.1f} s")
        fault.recovery = self.prober.measure(at, list(RINGS))
        return fault

    def postgres(self, _ring: str | None, seconds: float) -> Fault:
        self.prober.burst(list(RINGS))
        at = time.monotonic()
        self.cluster.pg_server.stop("immediate")
        self.prober.idle(seconds)
        self.cluster.pg_server.start()
        note = f"stop -m immediate, down {time.monotonic() - at:.1f} s"
        fault = Fault("postgres", at, list(RINGS), note=note)
        fault.recovery = self.prober.measure(at, list(RINGS))
        return fault
