"""Every figure a run reports, in sections: key (as :mod:`bench.celery_run` and
:mod:`bench.engine` return it), label, unit, baseline and target (issues 11-13's)."""

from __future__ import annotations

import operator
from dataclasses import dataclass

#: coder_ring 0.1.0's engine draws (codes/s) by database and batch size, as published
#: (its README, this kind of machine): the floor of issue 11.
V010: dict[str, dict[int, float]] = {
    "postgresql": {1: 455, 16: 6_162, 256: 31_134, 1000: 40_223},
    "sqlite": {1: 1_104, 16: 11_467, 256: 32_324, 1000: 39_174},
}
DATABASES = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
BATCHES = (1, 16, 256, 1000)
#: The calls compared side by side, and their labels.
KINDS = {"anchor": "anchor no-op", "noop": "coder_ring no-op", "get_code": "get_code"}
_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}


@dataclass(frozen=True)
class Figure:
    """One reported figure; ``target`` as an issue states it (``">= 0.9"``), if any."""

    key: str
    label: str
    unit: str
    target: str = ""
    baseline: str = ""

    def check(self, value: float) -> bool:
        """True when ``value`` meets the target."""
        op, threshold = self.target.split()
        return bool(_OPS[op](value, float(threshold)))

    def describe(self) -> str:
        """The target with its unit, e.g. ``>= 20,000 codes/s`` or ``<= 1.15x``."""
        op, threshold = self.target.split()
        return f"{op} {float(threshold):,.10g}" + ("x" if self.unit == "x" else f" {self.unit}")


def _rate(kind: str) -> str:
    return "codes/s" if kind == "get_code" else "calls/s"


def _calls(prefix: str, kind: str, note: str = "") -> list[Figure]:
    """Round trips p50/p99 and bursts of one kind of call."""
    label = KINDS[kind]
    return [
        Figure(f"{prefix}.{kind}.p50_ms", f"{label} round trip p50{note}", "ms"),
        Figure(f"{prefix}.{kind}.p99_ms", f"{label} round trip p99{note}", "ms"),
        Figure(f"{prefix}.{kind}.burst_per_s", f"{label} burst{note}", _rate(kind)),
    ]


def _vs_anchor(prefix: str, kind: str, targets: tuple[str, ...] = ("", "", "")) -> list[Figure]:
    """A kind against the anchor: p50 and p99 (lower is better), bursts (higher is)."""
    return [
        Figure(f"{prefix}.{kind}.{stat}_vs_anchor", f"{KINDS[kind]} {stat} / anchor {stat}", "x",
               target)
        for stat, target in zip(("p50", "p99", "burst"), targets, strict=True)
    ]  # fmt: skip


def _load(prefix: str, what: str) -> tuple[Figure, ...]:
    return (
        *(
            Figure(f"{prefix}.{kind}.per_s", f"{what}: {KINDS[kind]}", _rate(kind))
            for kind in KINDS
        ),
        Figure(f"{prefix}.get_code_vs_anchor", f"{what}: get_code / anchor", "x", ">= 0.9"),
    )


def _web(server: str) -> tuple[Figure, ...]:
    rows = (("per_s", "requests", "requests/s"), ("p50_ms", "p50", "ms"),
            ("p99_ms", "p99", "ms"), ("errors", "failed", "requests"))  # fmt: skip
    kinds = (("get_code", "get_code"), ("anchor", "anchor no-op"))
    return tuple(Figure(f"web.{server}.{kind}.{key}", f"{label}: {what}", unit)
                 for kind, label in kinds for key, what, unit in rows)  # fmt: skip


def _engine(db: str) -> tuple[Figure, ...]:
    p = f"engine.{db}"
    return (
        *(
            Figure(f"{p}.len4.batch_{n}.codes_per_s", f"draws of {n:,} (base_length 4)",
                   "codes/s", f">= {V010[db][n]}", f"0.1.0: {V010[db][n]:,.0f}")
            for n in BATCHES
        ),
        *(
            Figure(f"{p}.len8.batch_{n}.codes_per_s", f"draws of {n:,} (base_length 8)", "codes/s")
            for n in BATCHES
        ),
        *(
            Figure(f"{p}.len8_vs_len4.batch_{n}", f"base_length 8 / 4, draws of {n:,}", "x",
                   ">= 0.9")
            for n in BATCHES
        ),
        Figure(f"{p}.first_code_ms", "first code of a fresh ring, after migrate", "ms", "< 50"),
        Figure(f"{p}.growth_per_1000.kb", "database growth per 1,000 codes drawn", "kB", "< 1024"),
        Figure(f"{p}.growth_per_1000.positions", "stored positions per 1,000 codes", "rows"),
        Figure(f"{p}.replay.draw.codes_per_s", f"original (replayed): draws on {DATABASES[db]}",
               "codes/s"),
        Figure(f"{p}.replay.fill_s", "original (replayed): fill of a base_length 4 ring", "s"),
        Figure(f"{p}.replay.table_mb", "original (replayed): that ring's table", "MB"),
        Figure(f"{p}.batch_1_vs_replay", "draws of 1 / original's draws", "x", ">= 1.5"),
        Figure(f"{p}.batch_1000_vs_replay", "draws of 1,000 / original's draws", "x", ">= 25"),
    )  # fmt: skip


def _rings(rings: int, moves: bool = False) -> tuple[Figure, ...]:
    """One size of the many-rings part (``moves``: a join and a SIGKILL too); targets as
    issue 19 states them, for 1,000 and 10,000 rings (the default TTL, 5 s)."""
    p, n = f"rings.n{rings}", f"{rings:,} ring{'s' * (rings > 1)}:"
    t = {
        1_000: ("<= 10", "<= 1.25", ">= 0.85", "<= 300", "<= 100"),
        10_000: ("<= 60", "<= 1.5", "", "", ""),
    }.get(rings, ("",) * 5)
    big = ("<= 60", "<= 15") if rings == 10_000 else ("", "")
    return (
        Figure(f"{p}.held_s", f"{n} all held after start", "s", t[0]),
        Figure(f"{p}.consuming_s", f"{n} all queues consumed after start", "s"),
        Figure(f"{p}.warming_p50_ms", f"{n} get_code p50 then, pools filling", "ms"),
        Figure(f"{p}.settled_s", f"{n} workers settled after start", "s"),
        Figure(f"{p}.p50_ms", f"{n} get_code p50", "ms"),
        Figure(f"{p}.p99_ms", f"{n} get_code p99", "ms"),
        Figure(f"{p}.burst_per_s", f"{n} burst", "codes/s"),
        *(() if rings == 1 else (
            Figure(f"{p}.p50_vs_1", f"{n} p50 / 1 ring's", "x", t[1]),
            Figure(f"{p}.burst_vs_1", f"{n} burst / 1 ring's", "x", t[2]),
        )),
        Figure(f"{p}.idle_cmds_per_s", f"{n} Redis commands, idle", "cmds/s", t[3]),
        Figure(f"{p}.rss_mb", f"{n} largest worker RSS, idle", "MB", t[4]),
        *(() if not moves else (
            Figure(f"{p}.join_s", f"{n} a worker joins: moved within", "s", big[0]),
            Figure(f"{p}.kill_held_again_s", f"{n} SIGKILL: all held again", "s", big[1]),
        )),
    )  # fmt: skip


#: The sections of the table, in order: (title, figures).
SECTIONS: tuple[tuple[str, tuple[Figure, ...]], ...] = (
    ("Celery, one caller: coder_ring's worker as shipped vs a default Celery worker (anchor)", (
        *(figure for kind in KINDS for figure in _calls("celery", kind)),
        *_vs_anchor("celery", "get_code", ("<= 1.15", "<= 1.5", ">= 0.9")),
        *_vs_anchor("celery", "noop"),
        Figure("celery.get_codes_1000.codes_per_s", "get_codes(ring, 1000)", "codes/s", ">= 20000"),
    )),
    ("16 threads of one process, closed loop", _load("celery.threads16", "16 threads")),
    ("4 caller processes, closed loop", _load("celery.procs4", "4 processes")),
    ("Task events on (CODER_RING_TASK_EVENTS=true, as compose runs for flower)", (
        Figure("celery.events.anchor.p50_ms", "anchor no-op round trip p50 (same rounds)", "ms"),
        *_calls("celery.events", "get_code", " (events on)"),
        *_vs_anchor("celery.events", "get_code"),
    )),
    ("Spreading two rings: queued requests, one worker serving both vs two, one ring each", (
        Figure("spread.drain.one_worker.codes_per_s", "one worker", "codes/s"),
        Figure("spread.drain.two_workers.codes_per_s", "two workers", "codes/s"),
        Figure("spread.drain.ratio", "two workers / one", "x", ">= 1.6"),
    )),
    ("Flask example under gunicorn gthread 2x8, over HTTP (wrk, 16 connections)", _web("flask")),
    ("FastAPI example under uvicorn, over HTTP (wrk, 16 connections)", _web("fastapi")),
    ("Worker memory", (
        Figure("worker.rss_mb", "worker RSS after the run", "MB", "<= 80"),
        Figure("worker.peak_rss_mb", "worker peak RSS", "MB"),
    )),
    *((f"Engine on {name}", _engine(db)) for db, name in DATABASES.items()),
    ("Many rings (--only rings): 3 fresh workers per size, 4 for 10,000", (
        *_rings(1), *_rings(100, moves=True), *_rings(1_000), *_rings(10_000, moves=True),
    )),
)  # fmt: skip

#: Every figure a complete run reports, in table order; those with a target.
FIGURES: tuple[Figure, ...] = tuple(figure for _, rows in SECTIONS for figure in rows)
TARGETED: tuple[Figure, ...] = tuple(figure for figure in FIGURES if figure.target)
