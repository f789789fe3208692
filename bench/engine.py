"""Engine benchmark: our draws and fills against a replay of the original, per database.

No Celery here: this measures :class:`~coder_ring.service.RingService` on one
PostgreSQL and one SQLite database, and on the same databases the statements of
the original CoderRing (:class:`~bench.original.OriginalReplay`):

* draws at batch sizes 1, 16, 256 and 1000 (codes/s; each call is one transaction);
* the fill of a ring of 32^base_length codes (seconds; the median of a few fills);
* the replay's per-draw rate (codes/s) and its fill (seconds);
* the ratios of ours to the replay's.

Figures are returned flat, keyed ``engine.<db>.<figure>`` (see :func:`run_engine_bench`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bench.original import OriginalReplay
from coder_ring.config import RingConfig
from coder_ring.service import RingService
from coder_ring.sql.store import SqlStore

#: Batch sizes of the engine draws.
BATCH_SIZES = (1, 16, 256, 1000)
#: The databases benchmarked, in report order.
DATABASES = ("postgresql", "sqlite")
#: Prefix of the replay's tables (the original's ``code_memos`` and ``codes``).
REPLAY_PREFIX = "original_"

Log = Callable[[str], None]


@dataclass(frozen=True)
class EngineParams:
    """How much the engine benchmark measures."""

    #: Characters per base code of every ring (4: 32^4 = 1,048,576 codes).
    base_length: int
    #: Fills of our own to time; the median is reported.
    fills: int
    #: Fills of the replay to time (each takes seconds on 32^4); the median is reported.
    replay_fills: int
    #: Seconds each batch size draws for (after one warm-up call).
    draw_seconds: float
    #: Fewest timed draw calls per batch size, whatever the time.
    min_draw_calls: int
    #: Replay draws timed (each scans the whole table twice).
    replay_draws: int

    @classmethod
    def full(cls) -> EngineParams:
        """The real benchmark: 32^4 rings."""
        return cls(
            base_length=4,
            fills=3,
            replay_fills=1,
            draw_seconds=2.0,
            min_draw_calls=20,
            replay_draws=30,
        )

    @classmethod
    def quick(cls) -> EngineParams:
        """Checks that everything works: 32^2 rings, a few calls each."""
        return cls(
            base_length=2,
            fills=1,
            replay_fills=1,
            draw_seconds=0.05,
            min_draw_calls=3,
            replay_draws=5,
        )


def fill_name(index: int) -> str:
    """Name of the ring of our ``index``-th timed fill."""
    return f"fill_{index}"


DRAW_RING = "draws"


def rings_for(params: EngineParams) -> dict[str, RingConfig]:
    """The rings the engine benchmark uses: one to draw from, one per timed fill."""
    names = [DRAW_RING] + [fill_name(i) for i in range(params.fills)]
    return {name: RingConfig(name, base_length=params.base_length) for name in names}


def time_fills(service: RingService, params: EngineParams) -> list[float]:
    """Seconds of each of our timed fills (every fill is a fresh ring)."""
    seconds = []
    for index in range(params.fills):
        started = time.perf_counter()
        written = service.populate([fill_name(index)])
        seconds.append(time.perf_counter() - started)
        if not written[fill_name(index)]:
            raise RuntimeError(f"ring {fill_name(index)!r} was already filled: not a fresh run")
    return seconds


def draw_rate(service: RingService, batch: int, params: EngineParams) -> float:
    """Codes/s of :data:`DRAW_RING` draws of ``batch`` codes, one transaction per call."""
    service.get_codes(DRAW_RING, batch)  # warm-up: connection, statement caches
    calls = 0
    started = time.perf_counter()
    elapsed = 0.0
    while calls < params.min_draw_calls or elapsed < params.draw_seconds:
        codes = service.get_codes(DRAW_RING, batch)
        if len(codes) != batch:
            raise RuntimeError(f"asked for {batch} codes, got {len(codes)}")
        calls += 1
        elapsed = time.perf_counter() - started
    return calls * batch / elapsed


def bench_ours(database_url: str, params: EngineParams, log: Log) -> dict[str, float]:
    """Our fill and draws on ``database_url`` (a fresh, empty database or schema)."""
    service = RingService(SqlStore(database_url), rings_for(params))
    try:
        service.migrate()
        fills = time_fills(service, params)
        figures = {"fill_s": statistics.median(fills)}
        log(f"fill: {', '.join(f'{s:.2f} s' for s in fills)}")
        service.populate([DRAW_RING])
        for batch in BATCH_SIZES:
            rate = draw_rate(service, batch, params)
            figures[f"batch_{batch}.codes_per_s"] = rate
            log(f"draws of {batch}: {rate:,.0f} codes/s")
        return figures
    finally:
        service.close()


def bench_replay(database_url: str, params: EngineParams, log: Log) -> dict[str, float]:
    """The original's fill and per-draw statements on ``database_url``."""
    store = SqlStore(database_url)  # same engine settings as ours (WAL, synchronous=FULL)
    try:
        fills = []
        for index in range(params.replay_fills):
            replay = OriginalReplay(
                store.engine, REPLAY_PREFIX, "bench", params.base_length, seed=index
            )
            replay.drop_schema()
            replay.create_schema()
            started = time.perf_counter()
            replay.fill()
            fills.append(time.perf_counter() - started)
        log(f"replay fill: {', '.join(f'{s:.2f} s' for s in fills)}")
        replay.draw()  # warm-up
        started = time.perf_counter()
        for _ in range(params.replay_draws):
            replay.draw()
        rate = params.replay_draws / (time.perf_counter() - started)
        log(f"replay draws: {rate:,.1f} codes/s")
        replay.drop_schema()
        return {"replay.fill_s": statistics.median(fills), "replay.draw.codes_per_s": rate}
    finally:
        store.dispose()


def ratios(figures: Mapping[str, float]) -> dict[str, float]:
    """Ours against the replay on one database (every ratio: higher is better for us)."""
    replay_draw = figures["replay.draw.codes_per_s"]
    return {
        "batch_1000_vs_replay": figures["batch_1000.codes_per_s"] / replay_draw,
        "batch_1_vs_replay": figures["batch_1.codes_per_s"] / replay_draw,
        "fill_vs_replay": figures["replay.fill_s"] / figures["fill_s"],
    }


def _prefixed(log: Log, prefix: str) -> Log:
    def prefixed(line: str) -> None:
        log(prefix + line)

    return prefixed


def run_engine_bench(
    urls: Mapping[str, str], params: EngineParams, log: Log = lambda _: None
) -> dict[str, float]:
    """Every engine figure for each database of ``urls`` (name -> URL of an empty database).

    Keys: ``engine.<db>.fill_s``, ``engine.<db>.batch_<n>.codes_per_s``,
    ``engine.<db>.replay.fill_s``, ``engine.<db>.replay.draw.codes_per_s`` and the
    ratios ``engine.<db>.batch_1000_vs_replay``, ``.batch_1_vs_replay``,
    ``.fill_vs_replay``.
    """
    results: dict[str, float] = {}
    for database, url in urls.items():
        db_log = _prefixed(log, f"{database}: ")
        figures = bench_ours(url, params, db_log)
        figures.update(bench_replay(url, params, db_log))
        figures.update(ratios(figures))
        results.update({f"engine.{database}.{key}": value for key, value in figures.items()})
    return results
