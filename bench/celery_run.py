"""The Celery part: coder_ring's workers, started as shipped, beside the anchor on one
broker, in groups with a namespace (so a no-op queue) each: ``main`` (every headline
figure), ``events`` (task events on, as compose runs it for flower), and to show the
payoff of spreading rings, ``one`` (a worker serving two rings) and ``two`` (two, a ring
each), started once requests wait in their queues: no caller shares the cores with them.
Kinds of call are measured side by side in rounds, so that drift (another program
waking up) weighs on each alike: percentiles pool the rounds' calls, a ratio of rates
is the median of the rounds' ratios."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.calls import (
    Call,
    Clients,
    Endpoints,
    Recorder,
    check_unique,
    closed_loop,
    paired_median,
    percentile,
    round_trips,
)
from bench.figures import KINDS  # the kinds compared, in each round's order
from bench.load import run_load
from bench.web import run_web
from bench.worker import READY_TIMEOUT, BenchWorker, Workers
from coder_ring.celery.names import TASK_GET_CODE, ring_queue
from coder_ring.config import RingConfig
from coder_ring.service import RingService
from coder_ring.settings import WorkerSettings
from coder_ring.sql.store import SqlStore

#: The spreading groups: each worker's name and the rings it serves.
SPREAD: dict[str, dict[str, tuple[str, ...]]] = {
    "one": {"one": ("one_a", "one_b")},
    "two": {"two-a": ("two_a",), "two-b": ("two_b",)},
}
Log = Callable[[str], None]


@dataclass(frozen=True)
class CeleryParams:
    """How many calls the Celery part makes; the defaults are the real benchmark's."""

    calls: int = 2000  # sequential round trips per kind, in ``rounds`` rounds
    rounds: int = 20
    bursts: int = 10  # per kind, each of ``burst_size`` calls sent before any is read
    burst_size: int = 200
    batch_calls: int = 50  # sequential get_codes(ring, 1000)
    warmup: int = 50  # untimed round trips per kind first (connections, the pool)
    load_seconds: float = 1.5  # each closed-loop phase, in ``load_rounds`` rounds
    load_rounds: int = 8
    events_calls: int = 1000  # sequential round trips per kind with task events on
    drain_per_ring: int = 1500  # requests queued per ring before its workers start
    web_seconds: float = 10.0  # wrk on each web example, per kind of call
    timeout: float = 30.0

    @classmethod
    def quick(cls) -> CeleryParams:
        """Checks that everything works."""
        return cls(calls=30, rounds=2, bursts=1, burst_size=20, batch_calls=2, warmup=3,
                   load_seconds=0.3, load_rounds=1, events_calls=20, drain_per_ring=15,
                   web_seconds=2)  # fmt: skip


def side_by_side(
    clients: Clients, calls: Mapping[str, Call], params: CeleryParams, sequential: int
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Round trips (``sequential`` per kind, in rounds) and bursts of each named call:
    figures ``<name>.<figure>`` (and against the anchor), and the latencies (ms)."""
    for call in calls.values():
        round_trips(clients, call, params.warmup)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(params.rounds):
        for name, call in calls.items():
            samples[name] += round_trips(clients, call, max(1, sequential // params.rounds))
    rates: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(params.bursts):
        for name, call in calls.items():
            made, seconds = closed_loop(clients, call, 0, params.burst_size)
            rates[name].append(made / seconds)
    figures: dict[str, float] = {}
    for name, latencies in samples.items():
        for stat in (50, 99):
            figures[f"{name}.p{stat}_ms"] = value = percentile(latencies, stat)
            figures[f"{name}.p{stat}_vs_anchor"] = value / percentile(samples["anchor"], stat)
        figures[f"{name}.burst_per_s"] = statistics.harmonic_mean(rates[name])
        figures[f"{name}.burst_vs_anchor"] = paired_median(rates[name], rates["anchor"])
    return figures, samples


class CeleryRun:
    """One run of the Celery part; ``base``: the shipped settings with the bench's
    database, rings file and Redis. :meth:`run` fills ``figures``, ``samples`` (of
    latency, ms), ``notes`` and ``pids`` (of every worker it started)."""

    def __init__(
        self, base: WorkerSettings, run_id: str, workdir: Path, params: CeleryParams, log: Log
    ) -> None:
        self.params, self.log = params, log
        self.groups = {
            group: dataclasses.replace(
                base, namespace=f"bench-{run_id}-{group}", task_events=group == "events"
            )
            for group in ("main", "events", *SPREAD)
        }
        self.endpoints = Endpoints(self.groups, f"bench-{run_id}-anchor", params.timeout)
        self.workers = Workers(workdir, base.redis_url)
        self.codes = Recorder()
        self.figures: dict[str, float] = {}
        self.samples: dict[str, list[float]] = {}
        self.notes: dict[str, float] = {}
        self.pids: list[int] = []

    def run(self) -> CeleryRun:
        """Start the workers, measure, stop them all."""
        engine = self.groups["main"].engine
        rings = ["main", "events", *(r for g in SPREAD.values() for s in g.values() for r in s)]
        engine.config_path.write_text("".join(f"[rings.{ring}]\n" for ring in rings))
        service = RingService(SqlStore(engine.database_url), {r: RingConfig(r) for r in rings})
        try:  # as compose's migrate service does
            service.migrate()
            service.populate()
        finally:
            service.close()
        with self.workers:
            main = self._start()
            clients = Clients(self.endpoints)
            try:
                self._sequential(clients)
                self._load("threads16", clients, 16)
            finally:
                self.codes.merge(clients.recorder)
                clients.close()
            one, two = self._drain("one"), self._drain("two")
            self.figures["spread.drain.one_worker.codes_per_s"] = one
            self.figures["spread.drain.two_workers.codes_per_s"] = two
            self.figures["spread.drain.ratio"] = two / one
            self.log(f"celery: queued requests drained: {one:,.0f} vs {two:,.0f} codes/s")
            self._load("procs4", self.endpoints, 4)
            self.figures["worker.rss_mb"] = main.rss_mb("VmRSS")
            self.figures["worker.peak_rss_mb"] = main.rss_mb("VmHWM")
            clients = Clients(self.endpoints)
            try:
                web = run_web(self.workers, clients, self.groups["main"], self.params.web_seconds)
                self.figures |= web
            finally:
                self.codes.merge(clients.recorder)
                clients.close()
            self.log("celery: web examples done")
        self.notes["codes_checked"] = check_unique(self.codes.codes)
        self.pids = [worker.pid for worker in self.workers.started]
        return self

    def _start(self) -> BenchWorker:
        """Start the anchor, ``main`` and ``events``; return (``main``) once each serves."""
        started = time.monotonic()
        self.workers.anchor("anchor", self.groups["main"], self.endpoints.anchor_queue)
        main, events = (self.workers.coder_ring(g, [g], self.groups[g]) for g in ("main", "events"))
        self.workers.wait_holding(main, self.groups["main"].namespace, "main")
        self.workers.wait_holding(events, self.groups["events"].namespace, "events")
        clients = Clients(dataclasses.replace(self.endpoints, timeout=READY_TIMEOUT))
        try:  # the anchor is ready once it answers
            round_trips(clients, Call("anchor"), 1)
        finally:
            clients.close()
        self.notes["workers_ready_s"] = time.monotonic() - started
        self.log(f"celery: workers ready in {self.notes['workers_ready_s']:.1f} s")
        return main

    @staticmethod
    def _calls(group: str) -> dict[str, Call]:
        """The kinds compared: the anchor's no-op, ``group``'s no-op and get_code."""
        calls = {"anchor": Call("anchor"), "noop": Call("noop", group)}
        return calls | {"get_code": Call("get_code", group, group)}  # the group's own ring

    def _sequential(self, clients: Clients) -> None:
        """One caller: ``main`` and ``events`` side by side with the anchor in turn, then
        ``get_codes(1000)`` from ``main``."""
        for group in ("main", "events"):
            sequential = self.params.calls if group == "main" else self.params.events_calls
            figures, samples = side_by_side(clients, self._calls(group), self.params, sequential)
            prefix = "celery" if group == "main" else "celery.events"
            self.figures |= {f"{prefix}.{key}": value for key, value in figures.items()}
            if group == "events":
                samples = {"get_code, task events on": samples["get_code"]}
            self.samples |= samples
            self.log(f"celery: round trips and bursts of {group} done")
        batch = Call("get_codes", "main", "main", 1000)
        round_trips(clients, batch, 1)  # warm-up
        started = time.perf_counter()
        round_trips(clients, batch, self.params.batch_calls)
        rate = self.params.batch_calls * 1000 / (time.perf_counter() - started)
        self.figures["celery.get_codes_1000.codes_per_s"] = rate

    def _load(self, name: str, source: Clients | Endpoints, callers: int) -> None:
        """``callers`` in a closed loop on ``main``, in rounds of each kind (threads
        sharing ``source``, or processes): each kind's rate, get_code against the anchor
        (the median of the rounds' ratios)."""
        calls = self._calls("main")
        phases = [calls[kind] for kind in KINDS] * self.params.load_rounds
        params = self.params
        rates, codes = run_load(source, callers, phases, params.load_seconds, params.warmup)
        self.codes.merge(codes)
        by_kind = {kind: rates[index :: len(KINDS)] for index, kind in enumerate(KINDS)}
        for kind in KINDS:
            self.figures[f"celery.{name}.{kind}.per_s"] = statistics.mean(by_kind[kind])
        ratio = paired_median(by_kind["get_code"], by_kind["anchor"])
        self.figures[f"celery.{name}.get_code_vs_anchor"] = ratio
        self.log(f"celery: {name} done")

    def _drain(self, group: str) -> float:
        """Queue requests for ``group``'s rings by name (as by-name callers send them),
        start its workers, and measure how fast they serve them: completions per second
        (the workers' clock) while every ring is served (workers started together still
        begin a little apart); over all completions when too few fall in that window."""
        clients = Clients(self.endpoints)
        app, settings = clients.app(group), self.groups[group]
        timeout = self.params.timeout
        try:
            sent: dict[str, list[Any]] = {r: [] for rings in SPREAD[group].values() for r in rings}
            for _ in range(self.params.drain_per_ring):
                for ring, results in sent.items():  # expiring late: no worker runs yet
                    queue = ring_queue(settings.namespace, ring)
                    results.append(app.send_task(TASK_GET_CODE, (ring,), queue=queue, expires=600))
            started = [
                self.workers.coder_ring(name, list(rings), settings)
                for name, rings in SPREAD[group].items()
            ]
            # Poll for each ring's last result: reading results meanwhile would take
            # this process's share of the cores from the workers.
            keys = [app.backend.get_key_for_task(results[-1].id) for results in sent.values()]
            deadline = time.monotonic() + READY_TIMEOUT + 600
            while app.backend.client.exists(*keys) < len(keys):
                for worker in started:
                    worker.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError("queued requests not served in time")
                time.sleep(0.05)
            for ring, results in sent.items():
                for result in results:
                    clients.recorder.record(result, result.get(timeout=timeout), ring)
        finally:
            self.codes.merge(clients.recorder)
            clients.close()
        done = [sorted(result.date_done for result in results) for results in sent.values()]
        start, end = max(times[0] for times in done), min(times[-1] for times in done)
        count = sum(start < moment <= end for times in done for moment in times)
        if count < 20 or end <= start:
            start, end = min(times[0] for times in done), max(times[-1] for times in done)
            count = sum(len(times) for times in done) - 1
        return float(count / max((end - start).total_seconds(), 1e-6))
