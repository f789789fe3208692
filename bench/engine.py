"""Engine benchmark, no Celery: :class:`~coder_ring.service.RingService` on PostgreSQL and
SQLite, beside coder_ring 0.1.0 and the original CoderRing (its SQL replayed).

Per database (figures keyed ``engine.<db>.<figure>``):

* draws of 1, 16, 256 and 1,000 codes (codes/s, one transaction per call), each on a
  fresh ring of base_length 4, and the same on rings of base_length 8 (and the ratio);
* the first code of a fresh base_length 4 ring after migrate (ms; median of a few
  rings, each through a new store);
* the database's growth for 1,000 codes drawn one by one (bytes, and stored positions);
* 300 fresh rings, each drawn from once: seconds and database growth;
* 0.1.0's fill of one 32^4 ring replayed (:mod:`bench.dense`): seconds and table size,
  and what 300 rings would take with it;
* the original's fill and per-draw rate replayed (:mod:`bench.original`), and its table.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bench.dense import dense_fill
from bench.original import OriginalReplay
from bench.sizes import database_bytes
from coder_ring.config import RingConfig
from coder_ring.service import RingService
from coder_ring.sql.store import SqlStore

#: Batch sizes of the engine draws.
BATCH_SIZES = (1, 16, 256, 1000)
#: Base lengths whose draw rates are compared.
LENGTHS = (4, 8)
#: The databases benchmarked, in report order.
DATABASES = ("postgresql", "sqlite")
#: Prefix of the replay's tables (the original's ``code_memos`` and ``codes``).
REPLAY_PREFIX = "original_"
#: Codes drawn for the growth figure (which is reported per 1,000 codes).
GROWTH_PER = 1000

Log = Callable[[str], None]


@dataclass(frozen=True)
class EngineParams:
    """How much the engine benchmark measures."""

    #: Seconds each (length, batch size) draws for in a round, after one warm-up call.
    draw_seconds: float
    #: Fewest timed draw calls per (length, batch size), whatever the time.
    min_draw_calls: int
    #: Rounds over every (length, batch); each figure is the median of its rounds.
    draw_rounds: int
    #: Fresh rings whose first code is timed (the median is reported).
    first_codes: int
    #: Codes drawn one by one for the growth figure.
    growth_codes: int
    #: Fresh rings drawn from once each.
    many_rings: int
    #: base_length of the replayed fills (0.1.0's and the original's): 4 is 32^4 rows.
    replay_length: int
    #: Replay draws timed (each scans the whole table twice).
    replay_draws: int

    @classmethod
    def full(cls) -> EngineParams:
        """The real benchmark."""
        return cls(
            draw_seconds=0.6,
            min_draw_calls=20,
            draw_rounds=5,
            first_codes=5,
            growth_codes=1000,
            many_rings=300,
            replay_length=4,
            replay_draws=30,
        )

    @classmethod
    def quick(cls) -> EngineParams:
        """Checks that everything works: small replays, a few calls each."""
        return cls(
            draw_seconds=0.05,
            min_draw_calls=3,
            draw_rounds=1,
            first_codes=2,
            growth_codes=50,
            many_rings=10,
            replay_length=2,
            replay_draws=3,
        )


def draw_ring(length: int, batch: int) -> str:
    """The fresh ring the draws of ``batch`` codes at ``length`` use."""
    return f"draw_l{length}_b{batch}"


def rings_for(params: EngineParams) -> dict[str, RingConfig]:
    """Every ring the engine benchmark uses (each fresh when first drawn from)."""
    names = [draw_ring(length, batch) for length in LENGTHS for batch in BATCH_SIZES]
    names += [f"first_{i}" for i in range(params.first_codes)]
    names += ["growth"] + [f"many_{i}" for i in range(params.many_rings)]
    return {
        name: RingConfig(name, base_length=8 if name.startswith("draw_l8") else 4) for name in names
    }


def draw_rate(service: RingService, ring: str, batch: int, params: EngineParams) -> float:
    """Codes/s of draws of ``batch`` codes from ``ring``, one transaction per call."""
    service.get_codes(ring, batch)  # warm-up: the ring's row, statement caches
    calls = 0
    started = time.perf_counter()
    elapsed = 0.0
    while calls < params.min_draw_calls or elapsed < params.draw_seconds:
        codes = service.get_codes(ring, batch)
        if len(codes) != batch:
            raise RuntimeError(f"asked for {batch} codes, got {len(codes)}")
        calls += 1
        elapsed = time.perf_counter() - started
    return calls * batch / elapsed


def first_code_ms(url: str, rings: Mapping[str, RingConfig], name: str) -> float:
    """Milliseconds from a migrated database to the first code of fresh ring ``name``,
    through a new store (its connection included)."""
    service = RingService(SqlStore(url), rings)
    try:
        service.migrate()
        started = time.perf_counter()
        service.get_code(name)
        return (time.perf_counter() - started) * 1000
    finally:
        service.close()


def bench_ours(url: str, params: EngineParams, log: Log) -> dict[str, float]:
    """Our figures on ``url`` (a fresh, empty database or schema)."""
    rings = rings_for(params)
    store = SqlStore(url)
    service = RingService(store, rings)
    engine = store.engine
    figures: dict[str, float] = {}
    try:
        service.migrate()
        firsts = [first_code_ms(url, rings, f"first_{i}") for i in range(params.first_codes)]
        figures["first_code_ms"] = statistics.median(firsts)
        log(f"first code of a fresh ring: {', '.join(f'{ms:.1f}' for ms in firsts)} ms")

        before = database_bytes(engine)
        for _ in range(params.growth_codes):
            service.get_code("growth")
        grown = database_bytes(engine) - before
        figures["growth_per_1000.kb"] = max(grown, 1) * GROWTH_PER / params.growth_codes / 1024
        stored = store.stored_positions("growth")
        figures["growth_per_1000.positions"] = max(stored, 1) * GROWTH_PER / params.growth_codes
        log(f"{params.growth_codes} codes one by one: +{grown / 1024:.0f} kB, {stored} positions")

        # Rounds over every (length, batch), medians: PostgreSQL's background work
        # (autovacuum, checkpoints) then weighs on every figure alike, not on the last.
        samples: dict[tuple[int, int], list[float]] = {}
        # The two lengths of a batch size are measured back to back, and their ratio is
        # the median of the rounds' ratios: background work skews both alike.
        for _ in range(params.draw_rounds):
            for batch in BATCH_SIZES:
                for length in LENGTHS:
                    rate = draw_rate(service, draw_ring(length, batch), batch, params)
                    samples.setdefault((length, batch), []).append(rate)
        for (length, batch), rates in samples.items():
            figures[f"len{length}.batch_{batch}.codes_per_s"] = statistics.median(rates)
        for length in LENGTHS:
            rates = [figures[f"len{length}.batch_{b}.codes_per_s"] for b in BATCH_SIZES]
            log(
                f"base_length {length}, draws of {'/'.join(map(str, BATCH_SIZES))}: "
                f"{' / '.join(f'{rate:,.0f}' for rate in rates)} codes/s"
            )
        for batch in BATCH_SIZES:
            figures[f"len8_vs_len4.batch_{batch}"] = statistics.median(
                eight / four
                for eight, four in zip(samples[8, batch], samples[4, batch], strict=True)
            )

        before = database_bytes(engine)
        started = time.perf_counter()
        for index in range(params.many_rings):
            service.get_code(f"many_{index}")
        figures["many_rings.seconds"] = time.perf_counter() - started
        figures["many_rings.kb"] = max(database_bytes(engine) - before, 1) / 1024
        log(
            f"{params.many_rings} fresh rings drawn once: {figures['many_rings.seconds']:.2f} s, "
            f"+{figures['many_rings.kb']:,.0f} kB"
        )
        return figures
    finally:
        service.close()


def bench_baselines(url: str, params: EngineParams, log: Log) -> dict[str, float]:
    """0.1.0's fill and the original's fill and draws, replayed on ``url``."""
    store = SqlStore(url)  # same engine settings as ours (WAL, synchronous=FULL)
    try:
        dense = dense_fill(store.engine, params.replay_length)
        log(
            f"0.1.0 fill of 32^{params.replay_length} replayed: {dense.seconds:.2f} s, "
            f"{dense.bytes / 2**20:.1f} MB"
        )
        replay = OriginalReplay(store.engine, REPLAY_PREFIX, "bench", params.replay_length, seed=1)
        replay.drop_schema()
        replay.create_schema()
        before = database_bytes(store.engine)
        started = time.perf_counter()
        replay.fill()
        fill_seconds = time.perf_counter() - started
        replay_bytes = database_bytes(store.engine) - before
        replay.draw()  # warm-up
        started = time.perf_counter()
        for _ in range(params.replay_draws):
            replay.draw()
        rate = params.replay_draws / (time.perf_counter() - started)
        log(
            f"original replayed: fill {fill_seconds:.2f} s, {replay_bytes / 2**20:.1f} MB, "
            f"draws {rate:,.1f} codes/s"
        )
        replay.drop_schema()
        return {
            "v010.fill_s": dense.seconds,
            "v010.table_mb": dense.bytes / 2**20,
            "replay.fill_s": fill_seconds,
            "replay.table_mb": replay_bytes / 2**20,
            "replay.draw.codes_per_s": rate,
        }
    finally:
        store.dispose()


def derived(figures: Mapping[str, float], params: EngineParams) -> dict[str, float]:
    """Ratios to the replay, and what 0.1.0 would need for the many fresh rings."""
    replay_draw = figures["replay.draw.codes_per_s"]
    # A 0.1.0 fill of the ring's real size: the replay of a smaller ring scaled up.
    scale = 32 ** (4 - params.replay_length)
    return {
        "batch_1_vs_replay": figures["len4.batch_1.codes_per_s"] / replay_draw,
        "batch_1000_vs_replay": figures["len4.batch_1000.codes_per_s"] / replay_draw,
        "many_rings.v010_seconds": params.many_rings * figures["v010.fill_s"] * scale,
        "many_rings.v010_mb": params.many_rings * figures["v010.table_mb"] * scale,
    }


def _prefixed(log: Log, prefix: str) -> Log:
    def prefixed(line: str) -> None:
        log(prefix + line)

    return prefixed


def run_engine_bench(
    urls: Mapping[str, str], params: EngineParams, log: Log = lambda _: None
) -> dict[str, float]:
    """Every engine figure for each database of ``urls`` (name -> URL of an empty
    database), keyed ``engine.<db>.<figure>`` (see the module doc)."""
    results: dict[str, float] = {}
    for database, url in urls.items():
        db_log = _prefixed(log, f"{database}: ")
        figures = bench_ours(url, params, db_log)
        figures.update(bench_baselines(url, params, db_log))
        figures.update(derived(figures, params))
        results.update({f"engine.{database}.{key}": value for key, value in figures.items()})
    return results
