"""The engine part, no Celery: :class:`~coder_ring.service.RingService` on each database
(figures ``engine.<db>.*``): draws of 1 to 1,000 codes (a transaction per call) from
fresh rings of base_length 4 and 8; the first code of a fresh ring after migrate (the
median of a few, each through a new store); the growth for codes drawn one by one;
and, beside them, the original CoderRing's fill and draws (its SQL replayed)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import Engine, text

from bench.figures import BATCHES
from bench.original import OriginalReplay
from coder_ring.config import RingConfig
from coder_ring.service import RingService
from coder_ring.sql.store import SqlStore

Log = Callable[[str], None]
LENGTHS = (4, 8)
_POSTGRES_BYTES = (  # every table of the schema, with its indexes and TOAST
    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c JOIN "
    "pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
    "AND c.relkind IN ('r', 'p', 'm')"
)


@dataclass(frozen=True)
class EngineParams:
    """How much the engine part measures; the defaults are the real benchmark's."""

    draw_seconds: float = 0.6  # per (length, batch) and round, after a warm-up call
    min_draw_calls: int = 20  # whatever the time
    draw_rounds: int = 5  # over every (length, batch): each figure is a median
    first_codes: int = 5  # fresh rings whose first code is timed
    growth_codes: int = 1000  # drawn one by one (the growth is given per 1,000)
    replay_length: int = 4  # the original's ring: 32^4 rows
    replay_draws: int = 30

    @classmethod
    def quick(cls) -> EngineParams:
        """Checks that everything works: small replays, a few calls each."""
        return cls(draw_seconds=0.05, min_draw_calls=3, draw_rounds=1, first_codes=2,
                   growth_codes=50, replay_length=2, replay_draws=3)  # fmt: skip


def database_bytes(engine: Engine) -> int:
    """Bytes of the schema's tables on PostgreSQL; of the pages in use on SQLite."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            return int(conn.execute(text(_POSTGRES_BYTES)).scalar_one())
        pages, free, size = (
            int(conn.exec_driver_sql(f"PRAGMA {name}").scalar_one())
            for name in ("page_count", "freelist_count", "page_size")
        )
        return (pages - free) * size


def draw_rate(service: RingService, ring: str, batch: int, params: EngineParams) -> float:
    """Codes/s of draws of ``batch`` codes from ``ring``, a transaction per call."""
    service.get_codes(ring, batch)  # warm-up: the ring's row, statement caches
    calls, elapsed, started = 0, 0.0, time.perf_counter()
    while calls < params.min_draw_calls or elapsed < params.draw_seconds:
        if len(service.get_codes(ring, batch)) != batch:
            raise RuntimeError(f"asked for {batch} codes, got fewer")
        calls, elapsed = calls + 1, time.perf_counter() - started
    return calls * batch / elapsed


def bench_ours(url: str, params: EngineParams, log: Log) -> dict[str, float]:
    """Our figures on ``url`` (an empty database or schema)."""
    names = [f"draw_l{length}_b{batch}" for length in LENGTHS for batch in BATCHES]
    names += ["growth", *(f"first_{index}" for index in range(params.first_codes))]
    rings = {name: RingConfig(name, base_length=8 if "_l8_" in name else 4) for name in names}
    store = SqlStore(url)
    service = RingService(store, rings)
    figures: dict[str, float] = {}
    try:
        service.migrate()
        firsts = []
        for index in range(params.first_codes):  # a new store, migrated as a worker starts
            first = RingService(SqlStore(url), rings)
            first.migrate()
            started = time.perf_counter()
            first.get_code(f"first_{index}")
            firsts.append((time.perf_counter() - started) * 1000)
            first.close()
        figures["first_code_ms"] = statistics.median(firsts)
        log(f"first code of a fresh ring: {', '.join(f'{ms:.1f}' for ms in firsts)} ms")

        before = database_bytes(store.engine)
        for _ in range(params.growth_codes):
            service.get_code("growth")
        grown, stored = database_bytes(store.engine) - before, store.stored_positions("growth")
        figures["growth_per_1000.kb"] = max(grown, 1) * 1000 / params.growth_codes / 1024
        figures["growth_per_1000.positions"] = max(stored, 1) * 1000 / params.growth_codes
        log(f"{params.growth_codes} codes one by one: +{grown / 1024:.0f} kB, {stored} positions")

        # Rounds over every (batch, length), the two lengths back to back; medians of
        # rates and of the rounds' ratios: background work (autovacuum, checkpoints)
        # weighs on every figure alike, not on the last ones.
        rates: dict[tuple[int, int], list[float]] = {}
        for _ in range(params.draw_rounds):
            for batch in BATCHES:
                for length in LENGTHS:
                    rate = draw_rate(service, f"draw_l{length}_b{batch}", batch, params)
                    rates.setdefault((length, batch), []).append(rate)
        for (length, batch), samples in rates.items():
            figures[f"len{length}.batch_{batch}.codes_per_s"] = statistics.median(samples)
        for batch in BATCHES:
            ratios = (a / b for a, b in zip(rates[8, batch], rates[4, batch], strict=True))
            figures[f"len8_vs_len4.batch_{batch}"] = statistics.median(ratios)
        for length in LENGTHS:
            shown = (f"{figures[f'len{length}.batch_{b}.codes_per_s']:,.0f}" for b in BATCHES)
            log(f"base_length {length}, draws of 1/16/256/1000: {' / '.join(shown)} codes/s")
        return figures
    finally:
        service.close()


def bench_original(url: str, params: EngineParams, log: Log) -> dict[str, float]:
    """The original's fill and draws, replayed on ``url``."""
    store = SqlStore(url)  # our engine settings (SQLite: WAL, synchronous=FULL)
    replay = OriginalReplay(store.engine, "original_", "bench", params.replay_length, seed=1)
    try:
        replay.drop_schema()
        replay.create_schema()
        before, started = database_bytes(store.engine), time.perf_counter()
        replay.fill()
        fill_seconds = time.perf_counter() - started
        table_mb = (database_bytes(store.engine) - before) / 2**20
        replay.draw()  # warm-up
        started = time.perf_counter()
        for _ in range(params.replay_draws):
            replay.draw()
        rate = params.replay_draws / (time.perf_counter() - started)
        log(f"original replayed: fill {fill_seconds:.2f} s, {table_mb:.1f} MB, {rate:,.1f} codes/s")
        replay.drop_schema()
        return {"fill_s": fill_seconds, "table_mb": table_mb, "draw.codes_per_s": rate}
    finally:
        store.dispose()


def _prefixed(log: Log, prefix: str) -> Log:
    return lambda line: log(prefix + line)


def run_engine_bench(urls: Mapping[str, str], params: EngineParams, log: Log) -> dict[str, float]:
    """Every engine figure for each database of ``urls`` (name -> URL of an empty
    database), keyed ``engine.<db>.<figure>``."""
    results: dict[str, float] = {}
    for db, url in urls.items():
        figures = bench_ours(url, params, _prefixed(log, f"{db}: "))
        replayed = bench_original(url, params, _prefixed(log, f"{db}: "))
        figures |= {f"replay.{key}": value for key, value in replayed.items()}
        for batch in (1, 1000):
            figures[f"batch_{batch}_vs_replay"] = (
                figures[f"len4.batch_{batch}.codes_per_s"] / replayed["draw.codes_per_s"]
            )
        results |= {f"engine.{db}.{key}": value for key, value in figures.items()}
    return results
