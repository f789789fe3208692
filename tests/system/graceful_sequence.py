"""The generated run of ``test_graceful_accounting.py``'s second test: a seeded plan
(workers, rings, extras, a sequence of graceful operations), the caller threads, and
the :class:`Fleet` that applies each operation to real worker processes and the rings
file.

Everything random comes from the seed (``CODER_RING_ACCOUNTING_SEED`` replays a run):
the plan is drawn up front from a model of the cluster (how many workers live, which
rings are configured), so a seed always gives the same sequence. What the threads and
processes do in between is up to the machine.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from coder_ring.registry import notices
from tests.harness import (
    ProcessGroup,
    WorkerProcess,
    lock_holders,
    members,
    settings_from_env,
    wait_until,
)
from tests.system.accounting_support import Ledger, write_rings_atomically

SEED_VARIABLE = "CODER_RING_ACCOUNTING_SEED"
#: A caller's wait for its result: longer than any graceful operation can hold a request
#: back (a handoff, a ring removed until it is re-added), so no request times out and
#: every one that was sent must come back with codes.
REQUEST_TIMEOUT = 45.0
CALLER_THREADS = 3
#: The operations and how often each is drawn (the model skips one that cannot apply).
OPERATIONS = {
    "join": 2,
    "leave": 2,
    "pool_size": 2,
    "add": 1,
    "remove": 2,
    "readd": 2,
    "readd_mid_handoff": 2,
    "refill": 2,
}
MAX_WORKERS = 3
MAX_RINGS = 6


def seed() -> int:
    """The run's seed: ``CODER_RING_ACCOUNTING_SEED`` or a fresh one."""
    return int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(1, 2**31))


def ring_keys(rng: random.Random) -> dict[str, int]:
    """A small ring: 32 or 1,024 codes a cycle (so extras wrap), a pool of 4 to 32."""
    return {"base_length": rng.choice((1, 2)), "pool_size": rng.choice((4, 8, 16, 32))}


@dataclass
class Plan:
    """What one seed gives: the cluster, the extras and the operations, in order."""

    seed: int
    workers: int
    rings: dict[str, dict[str, int]]
    extras: list[str]
    extra_mode: str  # "rotation": each thread takes the extras in turn; "random"
    steps: list[tuple[float, str, str]]  # (pause before, operation, its target)

    @classmethod
    def draw(cls, seed: int, operations: int = 12) -> Plan:
        """At least ``operations`` steps, and every kind of operation at least once
        (so every run covers each, the re-add during a handoff included)."""
        rng = random.Random(seed)
        workers = rng.choice((2, 3))
        rings = {f"g{index}": ring_keys(rng) for index in range(1, rng.choice((3, 4)) + 1)}
        extras = [""] + [f"x{index}-" for index in range(1, rng.randint(1, 40))]
        mode = rng.choice(("rotation", "random"))
        alive, configured, removed = workers, set(rings), set[str]()
        names = iter(f"g{index}" for index in range(len(rings) + 1, 99))
        steps: list[tuple[float, str, str]] = []
        missing = set(OPERATIONS)
        while len(steps) < operations or missing:
            if missing and rng.random() < 0.5:
                kind = rng.choice(sorted(missing))
            else:
                kind = rng.choices(list(OPERATIONS), list(OPERATIONS.values()))[0]
            target = ""
            if kind == "join" and alive < MAX_WORKERS:
                alive += 1
            elif kind == "leave" and alive > 1:
                alive -= 1
            elif kind in ("pool_size", "readd_mid_handoff") or (
                kind == "remove" and len(configured) > 1  # a ring stays configured
            ):
                target = rng.choice(sorted(configured))
                if kind == "remove":
                    configured.discard(target)
                    removed.add(target)
            elif kind == "readd" and removed:
                target = rng.choice(sorted(removed))
                removed.discard(target)
                configured.add(target)
            elif kind == "add" and len(configured | removed) < MAX_RINGS:
                target = next(names)
                configured.add(target)
            elif kind != "refill":
                continue  # cannot apply now: draw another
            missing.discard(kind)
            steps.append((round(rng.uniform(0.3, 1.6), 2), kind, target))
        return cls(seed, workers, rings, extras, mode, steps)

    def describe(self) -> str:
        extras = f"{len(self.extras)} extras ({self.extra_mode})"
        steps = ", ".join(
            f"+{pause}s {kind} {target}".rstrip() for pause, kind, target in self.steps
        )
        return (
            f"seed {self.seed} ({SEED_VARIABLE}={self.seed} replays it): {self.workers} "
            f"workers, rings {self.rings}, {extras}; steps: {steps}"
        )


@dataclass
class Callers:
    """Threads asking ``get_code``/``get_codes(2-20)`` of any ring ever configured (a
    removed one fails before it is sent: UnknownRing) until stopped."""

    app: Any
    ledger: Ledger
    plan: Plan
    rings: Callable[[], list[str]]
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for index in range(CALLER_THREADS):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, index: int) -> None:
        rng = random.Random(self.plan.seed * 100 + index)
        extras, turn = self.plan.extras, index
        while not self._stop.is_set():
            turn += 1
            rotation = self.plan.extra_mode == "rotation"
            extra = extras[turn % len(extras)] if rotation else rng.choice(extras)
            count = 1 if rng.random() < 0.5 else rng.randint(2, 20)
            request = self.ledger.ask(
                self.app, rng.choice(self.rings()), extra, count, REQUEST_TIMEOUT
            )
            if not request.sent:
                time.sleep(0.05)  # refused at once (a removed ring): no busy loop

    def stop(self) -> None:
        """Stop asking; every request in flight ends first (codes or an error)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in self._threads), "a caller hangs"


@dataclass
class Fleet:
    """The workers and the rings file of the run, and the operations on them (each is a
    method named like the operation, taking its target ring)."""

    env: dict[str, str]
    group: ProcessGroup
    app: Any
    client: redis.Redis
    rings: dict[str, dict[str, int]]  # configured now
    rng: random.Random
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    leaving: set[str] = field(default_factory=set)  # SIGTERMed
    ever: list[str] = field(default_factory=list)  # every ring ever configured
    removed: dict[str, dict[str, int]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        settings = settings_from_env(self.env)
        self.namespace = settings.namespace
        self.rings_file = settings.engine.config_path
        self.ever = sorted(self.rings)
        self._write()

    def note(self, text: str) -> None:
        self.log.append(f"+{time.monotonic() - self.started:.2f}s {text}")

    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers.values() if w.alive() and w.name not in self.leaving]

    def apply(self, kind: str, target: str) -> None:
        getattr(self, kind)(target)

    def join(self, _: str = "") -> None:
        name = f"w{len(self.workers) + 1}"
        self.workers[name] = self.group.worker(name, self.env, cli=True)  # worker --all
        self.note(f"join {name}")

    def leave(self, _: str = "") -> None:
        worker = self.rng.choice(self.alive())
        self.leaving.add(worker.name)
        # A graceful stop is one of a started worker: a SIGTERM before Celery installed
        # its handlers (a join 0.4 s earlier) ends the process by the default action.
        worker.wait_ready()
        worker.kill(signal.SIGTERM)  # a graceful stop; its exit code is checked at the end
        self.note(f"leave {worker.name} (SIGTERM)")

    def _write(self) -> None:
        write_rings_atomically(self.rings_file, self.rings)

    def pool_size(self, ring: str) -> None:
        keys = self.rings[ring]
        keys["pool_size"] = self.rng.choice([n for n in (4, 8, 16, 32) if n != keys["pool_size"]])
        self._write()
        self.note(f"reload: ring {ring} pool_size -> {keys['pool_size']}")

    def add(self, ring: str) -> None:
        self.rings[ring] = ring_keys(self.rng)
        self.ever.append(ring)
        self._write()
        self.note(f"reload: ring {ring} added {self.rings[ring]}")

    def remove(self, ring: str) -> None:
        self.removed[ring] = self.rings.pop(ring)
        self._write()
        self.note(f"reload: ring {ring} removed")

    def readd(self, ring: str) -> None:
        self.rings[ring] = self.removed.pop(ring)
        self._write()
        self.note(f"reload: ring {ring} re-added")

    def readd_mid_handoff(self, ring: str) -> None:
        """Remove ``ring``, and add it back the moment its holder logs the reload, while
        it hands the ring off (the case of a reload bug being fixed elsewhere). A notice
        then wakes every lease thread at once, as any notice arriving during the handoff
        would (an assignment, another ring released), so the holder reads the file again
        while its handoff is still in flight, not only at its next periodic round."""
        holder = self.holder(ring)
        pattern = r"rings file reloaded: \d+ added, [1-9]\d* removed"
        seen = len(re.findall(pattern, holder.log_text())) if holder else 0
        self.remove(ring)
        if holder is not None:
            wait_until(
                lambda: len(re.findall(pattern, holder.log_text())) > seen or not holder.alive(),
                10,
                0.002,
                f"{holder.name} to reload",
            )
            self.note(f"  {holder.name} reloaded: it hands {ring} off")
        self.readd(ring)
        notices.publish(self.client, self.namespace, notices.ASSIGNED)

    def refill(self, _: str = "") -> None:
        """What beat sends every refill interval: ``refill`` to every configured ring."""
        sent = 0
        for ring in self.rings:
            try:
                self.app.ring_tasks.refill.delay(ring)
                sent += 1
            except Exception as error:  # noqa: BLE001 - beat skips a ring nobody serves
                self.note(f"  refill {ring}: {type(error).__name__}")
        self.note(f"refill: sent to {sent} rings")

    def holder(self, ring: str) -> WorkerProcess | None:
        token = lock_holders(self.client, [ring], self.namespace)[ring]
        pid = token.split("|")[1] if token else None
        return next((w for w in self.workers.values() if str(w.pid) == pid), None)

    def every_ring_served(self, timeout: float) -> str | None:
        """Wait until each configured ring is held by a live worker, and every live
        worker says (in the registry) it may serve every configured ring (all are
        ``--all``); what is wrong if that does not come within ``timeout``."""
        names = sorted(self.rings)

        def served() -> bool:
            pids = {str(w.pid) for w in self.alive()}
            holders = lock_holders(self.client, names, self.namespace)
            held = all(h and h.split("|")[1] in pids for h in holders.values())
            listed = {m.pid: sorted(m.rings) for m in members(self.env)}
            return held and all(listed.get(w.pid) == names for w in self.alive())

        try:
            wait_until(served, timeout, 0.1, "every ring served by every live worker")
        except TimeoutError:
            listed = {m.node: sorted(m.rings) for m in members(self.env)}
            holders = lock_holders(self.client, names, self.namespace)
            return f"rings {names}: holders {holders}; rings each worker may serve: {listed}"
        return None

    def stop_all(self) -> dict[str, int]:
        """SIGTERM every worker still running, one after another; every exit code."""
        exits = {name: worker.stop(30) for name, worker in self.workers.items()}
        self.note(f"every worker stopped: exit codes {exits}")
        return exits

    def logged_codes(self) -> Counter[str]:
        """Every code the workers' logs say they handed out."""
        return Counter(code for w in self.workers.values() for code in w.codes_served())

    def lock_losses(self) -> dict[str, int]:
        """Worker -> "lock lost" lines: a lease that lapsed (a starved process) drops its
        pool, which no graceful operation should ever cause; named if a loss shows."""
        lost = {w.name: w.log_text().count(": lock lost") for w in self.workers.values()}
        return {name: count for name, count in lost.items() if count}

    def failed_rounds(self) -> list[str]:
        """Workers whose lease thread logged an exception (a round it could not finish)."""
        return [w.name for w in self.workers.values() if "lease round failed" in w.log_text()]
