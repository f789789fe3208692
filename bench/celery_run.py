"""The Celery part of the benchmark: coder_ring's workers against the anchor, on one broker.

Workers, each started as shipped (:mod:`bench.worker`), in groups with a namespace of
their own (so each consumes only its own no-op queue), all started at once:

* ``main``: one coder_ring worker for ring ``bench_main``, default settings (task
  events off) -- the worker of every headline figure;
* ``events``: the same with ``CODER_RING_TASK_EVENTS=true`` (what compose runs for
  flower), ring ``bench_events``;
* ``one``: one worker serving rings ``one_a`` and ``one_b``;
* ``two``: two workers serving one ring each, ``two_a`` and ``two_b``;
* the anchor: a default Celery worker with a no-op task (:mod:`bench.anchor_app`).

The anchor, ``main`` and ``events`` start first; ``one`` and ``two`` start later, once
requests wait in their rings' queues (:mod:`bench.drain`).

Measured (every ratio against the anchor in the same run, and against coder_ring's own
no-op): sequential round trips p50/p99 and bursts; ``get_codes(1000)``; 16 threads of
one process and 4 caller processes in a closed loop; round trips and bursts with task
events on; the payoff of spreading: codes/s of one worker serving two rings against
two workers serving one each, draining queued requests (the workers' own capacity)
and under the 4 caller processes (which share the machine's cores with them).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.calls import (
    Call,
    Clients,
    Endpoints,
    Recorder,
    check_unique,
    paired_median,
    round_trips,
)
from bench.celery_figures import CeleryParams, Compared, batch_rate, compare, ratios
from bench.drain import drain_rate, enqueue, wait_served
from bench.load import Outcome, Phase, process_load, thread_load
from bench.worker import READY_TIMEOUT, BenchWorker, Workers, anchor_env
from coder_ring.config import RingConfig
from coder_ring.service import RingService
from coder_ring.settings import WorkerSettings
from coder_ring.sql.store import SqlStore

Log = Callable[[str], None]
MAIN, EVENTS, ONE, TWO = "main", "events", "one", "two"
MAIN_RING, EVENTS_RING = "bench_main", "bench_events"
ONE_RINGS, TWO_RINGS = ("one_a", "one_b"), ("two_a", "two_b")
#: The kinds compared in closed loops, in the order of each round.
LOAD_KINDS = ("anchor", "noop", "get_code")


@dataclass(frozen=True)
class CeleryResult:
    """Figures, latency samples (ms), the pids of the workers started, and facts."""

    figures: dict[str, float]
    samples: dict[str, list[float]]
    pids: list[int]
    notes: dict[str, float]


def group_settings(base: WorkerSettings, run_id: str) -> dict[str, WorkerSettings]:
    """Each group's settings: the shipped defaults, with the bench's database, rings
    file and Redis, a namespace of its own, and task events on for ``events`` only."""
    shipped = WorkerSettings(
        engine=base.engine,
        broker_url=base.broker_url,
        result_backend=base.result_backend,
        redis_url=base.redis_url,
    )
    return {
        group: dataclasses.replace(
            shipped, namespace=f"bench-{run_id}-{group}", task_events=group == EVENTS
        )
        for group in (MAIN, EVENTS, ONE, TWO)
    }


def worker_env(settings: WorkerSettings) -> dict[str, str]:
    """A worker's ``CODER_RING_*`` variables (no metrics port: several run at once)."""
    return {**settings.to_env(), "CODER_RING_METRICS_PORT": ""}


def prepare_database(settings: WorkerSettings, rings: list[str]) -> None:
    """Migrate and register the rings first, as compose's ``migrate`` service does."""
    service = RingService(
        SqlStore(settings.engine.database_url), {name: RingConfig(name) for name in rings}
    )
    try:
        service.migrate()
        service.populate()
    finally:
        service.close()


def rates_by_kind(outcomes: list[Outcome], kinds: tuple[str, ...]) -> dict[str, list[float]]:
    """Each round's rate per kind (the phases ran ``kinds`` in turn, round after round)."""
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    for index, outcome in enumerate(outcomes):
        rates[kinds[index % len(kinds)]].append(outcome.rate)
    return rates


def load_figures(prefix: str, outcomes: list[Outcome]) -> dict[str, float]:
    """Rate per kind over the rounds (:data:`LOAD_KINDS` in turn), and get_code's ratios
    to the anchor and to coder_ring's no-op (medians of the rounds' ratios)."""
    rates = rates_by_kind(outcomes, LOAD_KINDS)
    figures = {f"{prefix}.{kind}.per_s": statistics.mean(rates[kind]) for kind in LOAD_KINDS}
    for base in ("anchor", "noop"):
        figures[f"{prefix}.get_code_vs_{base}"] = paired_median(rates["get_code"], rates[base])
    return figures


def prefixed(prefix: str, figures: Compared | dict[str, float]) -> dict[str, float]:
    """``figures`` with ``prefix.`` before every key."""
    items = figures.figures if isinstance(figures, Compared) else figures
    return {f"{prefix}.{key}": value for key, value in items.items()}


class CeleryRun:
    """One run of the Celery part (see the module doc)."""

    def __init__(
        self, base: WorkerSettings, run_id: str, workdir: Path, params: CeleryParams, log: Log
    ) -> None:
        self.base = base
        self.params = params
        self.log = log
        self.groups = group_settings(base, run_id)
        self.endpoints = Endpoints(self.groups, anchor_queue=f"bench-{run_id}-anchor")
        self.workers = Workers(workdir, base.redis_url)
        self.codes = Recorder()
        self.figures: dict[str, float] = {}
        self.samples: dict[str, list[float]] = {}
        self.notes: dict[str, float] = {}

    def run(self) -> CeleryResult:
        """Start the workers, measure, stop them all; every figure."""
        rings = [MAIN_RING, EVENTS_RING, *ONE_RINGS, *TWO_RINGS]
        self.base.engine.config_path.write_text(
            "".join(f"[rings.{name}]\n" for name in rings), encoding="utf-8"
        )
        prepare_database(self.base, rings)
        with self.workers:
            anchor, main, events = self._start_workers()
            clients = Clients(self.endpoints, self.params.timeout)
            recorder = Recorder()
            try:
                self._sequential(clients, recorder, anchor, main, events)
                self._threads(clients)
            finally:
                clients.forget(recorder.task_ids)
                clients.close()
                self.codes.add_codes(recorder.codes)
            self._drains()
            self._processes()
            self.figures["worker.rss_mb"] = main.rss_mb("VmRSS")
            self.figures["worker.peak_rss_mb"] = main.rss_mb("VmHWM")
        self.notes["codes_checked"] = check_unique(self.codes.codes)
        pids = [worker.pid for worker in self.workers.started]
        return CeleryResult(self.figures, self.samples, pids, self.notes)

    def _start_workers(self) -> tuple[BenchWorker, BenchWorker, BenchWorker]:
        """Start the anchor, ``main`` and ``events``; return once each serves."""
        groups, workers = self.groups, self.workers
        started = time.monotonic()
        env = anchor_env(
            self.base.broker_url, self.base.result_backend, self.endpoints.anchor_queue
        )
        anchor = workers.anchor("anchor", env)
        main = workers.coder_ring("main", [MAIN_RING], worker_env(groups[MAIN]))
        events = workers.coder_ring("events", [EVENTS_RING], worker_env(groups[EVENTS]))
        workers.wait_holding(groups[MAIN].namespace, {MAIN_RING: main})
        workers.wait_holding(groups[EVENTS].namespace, {EVENTS_RING: events})
        clients = Clients(self.endpoints, self.params.timeout)
        recorder = Recorder()
        try:  # the anchor is ready once it answers
            round_trips(clients.sender(Call("anchor")), 1, READY_TIMEOUT, recorder)
        finally:
            clients.forget(recorder.task_ids)
            clients.close()
        self.notes["workers_ready_s"] = time.monotonic() - started
        self.log(
            f"celery: workers ready in {self.notes['workers_ready_s']:.1f} s "
            f"(anchor pid {anchor.pid}, coder_ring pid {main.pid})"
        )
        return anchor, main, events

    def _sequential(
        self,
        clients: Clients,
        recorder: Recorder,
        anchor: BenchWorker,
        main: BenchWorker,
        events: BenchWorker,
    ) -> None:
        params, figures = self.params, self.figures
        headline = compare(
            clients,
            {
                "anchor": Call("anchor"),
                "noop": Call("noop", MAIN),
                "get_code": Call("get_code", MAIN, MAIN_RING),
            },
            {"anchor": anchor.cpu, "noop": main.cpu, "get_code": main.cpu},
            params=params,
            recorder=recorder,
            sequential=params.calls,
        )
        figures.update(prefixed("celery", headline))
        self.samples.update(headline.samples)
        for base in ("anchor", "noop"):
            figures.update(prefixed("celery", ratios(headline, "get_code", base)))
        figures.update(prefixed("celery", ratios(headline, "noop", "anchor")))
        self.log("celery: round trips and bursts done")
        batch = Call("get_codes", MAIN, MAIN_RING, 1000)
        figures["celery.get_codes_1000.codes_per_s"] = batch_rate(
            clients, batch, params.batch_calls, params.timeout, recorder
        )
        with_events = compare(
            clients,
            {
                "anchor": Call("anchor"),
                "noop": Call("noop", EVENTS),
                "get_code": Call("get_code", EVENTS, EVENTS_RING),
            },
            {"anchor": anchor.cpu, "noop": events.cpu, "get_code": events.cpu},
            params=params,
            recorder=recorder,
            sequential=params.events_calls,
        )
        figures.update(prefixed("celery.events", with_events))
        for base in ("anchor", "noop"):
            figures.update(prefixed("celery.events", ratios(with_events, "get_code", base)))
        self.samples["get_code, task events on"] = with_events.samples["get_code"]
        self.log("celery: get_codes(1000) and task events on done")

    def _load_phases(self) -> list[Phase]:
        calls = {
            "anchor": Call("anchor"),
            "noop": Call("noop", MAIN),
            "get_code": Call("get_code", MAIN, MAIN_RING),
        }
        return [
            Phase(calls[kind], self.params.load_seconds)
            for _ in range(self.params.load_rounds)
            for kind in LOAD_KINDS
        ]

    def _threads(self, clients: Clients) -> None:
        threads = self.params.threads
        outcomes, recorders = thread_load(clients, self._load_phases(), threads, self.params.warmup)
        self.figures.update(load_figures(f"celery.threads{threads}", outcomes))
        for recorder in recorders:
            clients.forget(recorder.task_ids)
            self.codes.add_codes(recorder.codes)
        self.log(f"celery: {threads} threads done")

    def _drain(self, group: str, workers: dict[str, list[str]]) -> float:
        """Queue requests for ``group``'s rings, start its ``workers`` (name -> rings),
        and measure how fast they serve them."""
        rings = [ring for served in workers.values() for ring in served]
        recorder = Recorder()
        clients = Clients(self.endpoints, self.params.timeout)
        try:
            results = enqueue(clients.app(group), rings, self.params.drain_per_ring)
            env = worker_env(self.groups[group])
            started = [
                self.workers.coder_ring(name, served, env) for name, served in workers.items()
            ]

            def check() -> None:
                for worker in started:
                    worker.check_alive()

            wait_served(clients.app(group), results, READY_TIMEOUT + 600, check)
            return drain_rate(results, self.params.timeout, recorder)
        finally:
            clients.forget(recorder.task_ids)
            clients.close()
            self.codes.add_codes(recorder.codes)

    def _drains(self) -> None:
        one = self._drain(ONE, {"one": list(ONE_RINGS)})
        two = self._drain(TWO, {"two-a": [TWO_RINGS[0]], "two-b": [TWO_RINGS[1]]})
        self.figures["spread.drain.one_worker.codes_per_s"] = one
        self.figures["spread.drain.two_workers.codes_per_s"] = two
        self.figures["spread.drain.ratio"] = two / one
        self.log(f"celery: queued requests drained: {one:,.0f} vs {two:,.0f} codes/s")

    def _processes(self) -> None:
        """Caller processes: the closed-loop rounds, then the same callers against one
        worker serving two rings and against two workers serving one each."""
        params = self.params
        common = self._load_phases()
        seconds, depth = params.load_seconds, params.spread_depth
        plans = [
            [
                *common,
                *(
                    phase
                    for _ in range(params.load_rounds)
                    for phase in (
                        Phase(Call("get_code", ONE, ONE_RINGS[index % 2]), seconds, depth),
                        Phase(Call("get_code", TWO, TWO_RINGS[index % 2]), seconds, depth),
                    )
                ),
            ]
            for index in range(params.processes)
        ]
        outcomes, codes = process_load(self.endpoints, plans, params.warmup, params.timeout)
        self.codes.add_codes(codes)
        figures = load_figures(f"celery.procs{params.processes}", outcomes[: len(common)])
        spread = rates_by_kind(outcomes[len(common) :], ("one", "two"))
        figures["spread.callers.one_worker.codes_per_s"] = statistics.mean(spread["one"])
        figures["spread.callers.two_workers.codes_per_s"] = statistics.mean(spread["two"])
        figures["spread.callers.ratio"] = paired_median(spread["two"], spread["one"])
        self.figures.update(figures)
        self.log(f"celery: {params.processes} caller processes done")


def run_celery(
    base: WorkerSettings, run_id: str, workdir: Path, params: CeleryParams, log: Log
) -> CeleryResult:
    """Every Celery figure. ``base`` holds the bench's database, rings file and Redis
    URLs; every process started here is stopped before this returns."""
    return CeleryRun(base, run_id, workdir, params, log).run()
