"""Every figure a run reports, in sections, with its unit and baseline; and 0.1.0's figures.

Keys are those of the figures dict the parts return: ``celery.*`` (bench.celery_run),
``spread.*``, ``worker.*`` and ``engine.<db>.*`` (bench.engine).
"""

from __future__ import annotations

from dataclasses import dataclass

#: coder_ring 0.1.0's engine draws (codes/s) by database and batch size, as published
#: (its README's benchmark on this kind of machine): the floor of issue 11.
V010: dict[str, dict[int, float]] = {
    "postgresql": {1: 455, 16: 6_162, 256: 31_134, 1000: 40_223},
    "sqlite": {1: 1_104, 16: 11_467, 256: 32_324, 1000: 39_174},
}
_DB_LABELS = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
_KIND_LABELS = {
    "anchor": "anchor no-op",
    "noop": "coder_ring no-op",
    "get_code": "get_code",
}


@dataclass(frozen=True)
class Figure:
    """One reported figure: its key, a label, a unit and (optionally) a baseline."""

    key: str
    label: str
    unit: str
    baseline: str = ""


def _round_trips() -> list[Figure]:
    rows = []
    for kind, label in _KIND_LABELS.items():
        unit = "codes/s" if kind == "get_code" else "calls/s"
        rows += [
            Figure(f"celery.{kind}.p50_ms", f"{label} round trip p50", "ms"),
            Figure(f"celery.{kind}.p99_ms", f"{label} round trip p99", "ms"),
            Figure(f"celery.{kind}.burst_per_s", f"{label} burst", unit),
        ]
    return [
        *rows,
        Figure("celery.get_code.p50_vs_anchor", "get_code p50 / anchor p50", "x"),
        Figure("celery.get_code.p99_vs_anchor", "get_code p99 / anchor p99", "x"),
        Figure("celery.get_code.burst_vs_anchor", "get_code burst / anchor burst", "x"),
        Figure("celery.get_code.p50_vs_noop", "get_code p50 / no-op p50", "x"),
        Figure("celery.get_code.p99_vs_noop", "get_code p99 / no-op p99", "x"),
        Figure("celery.get_code.burst_vs_noop", "get_code burst / no-op burst", "x"),
        Figure("celery.noop.p50_vs_anchor", "coder_ring no-op p50 / anchor p50", "x"),
        Figure("celery.noop.p99_vs_anchor", "coder_ring no-op p99 / anchor p99", "x"),
        Figure("celery.noop.burst_vs_anchor", "coder_ring no-op burst / anchor burst", "x"),
        Figure("celery.get_codes_1000.codes_per_s", "get_codes(ring, 1000)", "codes/s"),
    ]


def _cpu() -> list[Figure]:
    return [
        Figure(f"celery.{kind}.{side}_cpu_ms", f"{label}: {side} CPU per call", "ms")
        for side in ("worker", "caller")
        for kind, label in _KIND_LABELS.items()
    ]


def _load(prefix: str, what: str) -> list[Figure]:
    return [
        Figure(f"{prefix}.anchor.per_s", f"{what}: anchor no-ops", "calls/s"),
        Figure(f"{prefix}.noop.per_s", f"{what}: coder_ring no-ops", "calls/s"),
        Figure(f"{prefix}.get_code.per_s", f"{what}: get_code", "codes/s"),
        Figure(f"{prefix}.get_code_vs_anchor", f"{what}: get_code / anchor", "x"),
        Figure(f"{prefix}.get_code_vs_noop", f"{what}: get_code / coder_ring no-op", "x"),
    ]


def _events() -> list[Figure]:
    return [
        Figure("celery.events.anchor.p50_ms", "anchor no-op round trip p50 (same rounds)", "ms"),
        Figure("celery.events.get_code.p50_ms", "get_code round trip p50", "ms"),
        Figure("celery.events.get_code.p99_ms", "get_code round trip p99", "ms"),
        Figure("celery.events.get_code.burst_per_s", "get_code burst", "codes/s"),
        Figure("celery.events.get_code.p50_vs_anchor", "get_code p50 / anchor p50", "x"),
        Figure("celery.events.get_code.p99_vs_anchor", "get_code p99 / anchor p99", "x"),
        Figure("celery.events.get_code.burst_vs_anchor", "get_code burst / anchor burst", "x"),
        Figure("celery.events.get_code.p50_vs_noop", "get_code p50 / no-op p50 (events on)", "x"),
        Figure("celery.events.get_code.p99_vs_noop", "get_code p99 / no-op p99 (events on)", "x"),
        Figure(
            "celery.events.get_code.burst_vs_noop", "get_code burst / no-op burst (events on)", "x"
        ),
        Figure("celery.events.noop.worker_cpu_ms", "coder_ring no-op: worker CPU per call", "ms"),
        Figure("celery.events.get_code.worker_cpu_ms", "get_code: worker CPU per call", "ms"),
    ]


def _engine(db: str) -> list[Figure]:
    name = _DB_LABELS[db]
    prefix = f"engine.{db}"
    rows = [
        Figure(
            f"{prefix}.len4.batch_{n}.codes_per_s",
            f"draws of {n:,} (base_length 4)",
            "codes/s",
            f"0.1.0: {V010[db][n]:,.0f}",
        )
        for n in V010[db]
    ]
    rows += [
        Figure(f"{prefix}.len8.batch_{n}.codes_per_s", f"draws of {n:,} (base_length 8)", "codes/s")
        for n in V010[db]
    ]
    rows += [
        Figure(f"{prefix}.len8_vs_len4.batch_{n}", f"base_length 8 / 4, draws of {n:,}", "x")
        for n in V010[db]
    ]
    return [
        *rows,
        Figure(f"{prefix}.first_code_ms", "first code of a fresh ring, after migrate", "ms",
               "0.1.0: a fill"),
        Figure(f"{prefix}.growth_per_1000.kb", "database growth per 1,000 codes drawn", "kB",
               "0.1.0: the table"),
        Figure(f"{prefix}.growth_per_1000.positions", "stored positions per 1,000 codes", "rows"),
        Figure(f"{prefix}.v010.fill_s", "0.1.0: fill of a base_length 4 ring (replayed)", "s"),
        Figure(f"{prefix}.v010.table_mb", "0.1.0: that ring's dense table", "MB"),
        Figure(f"{prefix}.many_rings.seconds", "300 fresh rings, each drawn once: time", "s"),
        Figure(f"{prefix}.many_rings.v010_seconds", "  0.1.0: 300 fills", "s"),
        Figure(f"{prefix}.many_rings.kb", "300 fresh rings, each drawn once: growth", "kB"),
        Figure(f"{prefix}.many_rings.v010_mb", "  0.1.0: 300 dense tables", "MB"),
        Figure(f"{prefix}.replay.draw.codes_per_s", f"original (replayed): draws on {name}",
               "codes/s"),
        Figure(f"{prefix}.replay.fill_s", "original (replayed): fill of a base_length 4 ring",
               "s"),
        Figure(f"{prefix}.replay.table_mb", "original (replayed): that ring's table", "MB"),
        Figure(f"{prefix}.batch_1_vs_replay", "draws of 1 / original's draws", "x"),
        Figure(f"{prefix}.batch_1000_vs_replay", "draws of 1,000 / original's draws", "x"),
    ]  # fmt: skip


#: The sections of the table, in order: (title, figures).
SECTIONS: tuple[tuple[str, tuple[Figure, ...]], ...] = (
    (
        "Celery, one caller: coder_ring's worker as shipped vs a default Celery worker (anchor)",
        tuple(_round_trips()),
    ),
    ("Where a round trip's time goes: CPU per call", tuple(_cpu())),
    ("16 threads of one process, closed loop", tuple(_load("celery.threads16", "16 threads"))),
    ("4 caller processes, closed loop", tuple(_load("celery.procs4", "4 processes"))),
    (
        "Task events on (CODER_RING_TASK_EVENTS=true, as compose runs for flower)",
        tuple(_events()),
    ),
    (
        "Spreading two rings: one worker serving both vs two workers, one ring each",
        (
            Figure("spread.drain.one_worker.codes_per_s", "queued requests: one worker", "codes/s"),
            Figure(
                "spread.drain.two_workers.codes_per_s", "queued requests: two workers", "codes/s"
            ),
            Figure("spread.drain.ratio", "queued requests: two workers / one", "x"),
            Figure(
                "spread.callers.one_worker.codes_per_s", "4 caller processes: one worker", "codes/s"
            ),
            Figure(
                "spread.callers.two_workers.codes_per_s",
                "4 caller processes: two workers",
                "codes/s",
            ),
            Figure("spread.callers.ratio", "4 caller processes: two workers / one", "x"),
        ),
    ),
    (
        "Worker memory",
        (
            Figure("worker.rss_mb", "worker RSS after the run", "MB"),
            Figure("worker.peak_rss_mb", "worker peak RSS", "MB"),
        ),
    ),
    *((f"Engine on {_DB_LABELS[db]}", tuple(_engine(db))) for db in ("postgresql", "sqlite")),
)

#: Every figure a complete run reports, in table order.
FIGURES: tuple[Figure, ...] = tuple(figure for _, rows in SECTIONS for figure in rows)
