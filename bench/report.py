"""The benchmark's report: every figure in sections, with its baseline and target, as a
table, ``results.json`` and ``results.png``.

Targets come from the benchmark issues (see :data:`TARGETS`). Nothing here measures
anything or imports Celery: :func:`write_report` takes the figures.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table

from bench.figures import FIGURES, SECTIONS, V010
from bench.plot import write_plot

JSON_NAME = "results.json"
PLOT_NAME = "results.png"
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Target:
    """``figure <op> threshold``, as an issue states it."""

    key: str
    op: str
    threshold: float

    def check(self, value: float) -> bool:
        """True when ``value`` meets the target."""
        return _OPS[self.op](value, self.threshold)

    def describe(self) -> str:
        """E.g. ``>= 20,000``."""
        return f"{self.op} {self.threshold:,.10g}"


def _v010_targets() -> list[Target]:
    return [
        Target(f"engine.{db}.len4.batch_{batch}.codes_per_s", ">=", V010[db][batch])
        for db in V010
        for batch in V010[db]
    ]


#: The targets of the benchmark issues (11, 12, 13) and the earlier ones still held.
TARGETS: tuple[Target, ...] = (
    # Issue 13: against a default Celery worker on a no-op task, in the same run.
    Target("celery.get_code.p50_vs_anchor", "<=", 1.15),
    Target("celery.get_code.p99_vs_anchor", "<=", 1.5),
    Target("celery.get_code.burst_vs_anchor", ">=", 0.9),
    Target("celery.threads16.get_code_vs_anchor", ">=", 0.9),
    Target("celery.procs4.get_code_vs_anchor", ">=", 0.9),
    Target("celery.get_codes_1000.codes_per_s", ">=", 20_000),
    # Issue 12: the payoff of spreading rings over two workers on this machine (the
    # workers' own capacity: with callers on the same two cores, see the callers row).
    Target("spread.drain.ratio", ">=", 1.6),
    Target("worker.rss_mb", "<=", 80),
    # Issue 11: at least 0.1.0's draw rates, 40,000 codes/s for batches of 1,000 on
    # PostgreSQL, a fresh ring at once, little room, base_length 8 as fast.
    # (0.1.0's 40,223 codes/s for PostgreSQL batches of 1,000 is above issue 11's 40,000.)
    *_v010_targets(),
    *(
        target
        for db in ("postgresql", "sqlite")
        for target in (
            Target(f"engine.{db}.first_code_ms", "<", 50),
            Target(f"engine.{db}.growth_per_1000.kb", "<", 1024),
            *(
                Target(f"engine.{db}.len8_vs_len4.batch_{batch}", ">=", 0.9)
                for batch in (1, 16, 256, 1000)
            ),
            Target(f"engine.{db}.batch_1_vs_replay", ">=", 1.5),
            Target(f"engine.{db}.batch_1000_vs_replay", ">=", 25),
        )
    ),
)


def evaluate(figures: Mapping[str, float]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it is met."""
    return [
        {
            "figure": target.key,
            "value": figures[target.key],
            "target": target.describe(),
            "passed": target.check(figures[target.key]),
        }
        for target in TARGETS
        if target.key in figures  # a run of one part (--only) has the others' missing
    ]


def _format(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:,.2f}x"
    if unit in {"ms", "s"}:
        return f"{value:,.3g} {unit}" if value < 10 else f"{value:,.1f} {unit}"
    if unit in {"MB", "kB"}:
        return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:,.1f} {unit}"


def render_table(
    figures: Mapping[str, float], verdicts: Sequence[Mapping[str, Any]], *, quick: bool
) -> Group:
    """The terminal report: one table per section, each row a figure with its value,
    baseline, target and PASS/MISS."""
    by_key: dict[str, list[Mapping[str, Any]]] = {}
    for verdict in verdicts:
        by_key.setdefault(verdict["figure"], []).append(verdict)
    title = "coder_ring benchmark" + (" (--quick: checks it works; figures mean nothing)" * quick)
    tables: list[Table | str] = [f"[bold]{title}[/]"]
    for section, all_rows in SECTIONS:
        rows = [figure for figure in all_rows if figure.key in figures]
        if not rows:
            continue
        first = len(tables) == 1
        table = Table(
            title=f"[bold]{section}[/]",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            show_header=first,
        )
        # Fixed widths: the sections' tables line up.
        table.add_column("figure", width=50)
        table.add_column("value", justify="right", no_wrap=True, width=15)
        table.add_column("baseline", justify="right", no_wrap=True, width=16)
        table.add_column("target", justify="right", no_wrap=True, width=18)
        table.add_column("result", justify="center", no_wrap=True, width=6)
        for figure in rows:
            targets, results = [], []
            for verdict in by_key.get(figure.key, []):
                passed = bool(verdict["passed"])
                unit = figure.unit if figure.unit == "x" else f" {figure.unit}"
                targets.append(verdict["target"] + unit)
                style = "dim" if quick else ("green" if passed else "bold red")
                results.append(f"[{style}]{'PASS' if passed else 'MISS'}[/]")
            table.add_row(
                figure.label,
                _format(figures[figure.key], figure.unit),
                figure.baseline,
                ", ".join(targets),
                " ".join(results),
            )
        tables.append(table)
    return Group(*tables)


def write_json(
    path: Path,
    figures: Mapping[str, float],
    verdicts: Sequence[Mapping[str, Any]],
    samples: Mapping[str, Sequence[float]],
    meta: Mapping[str, Any],
) -> None:
    """The whole report as JSON: meta, figures (with units and labels), targets and
    latency samples."""
    described = {figure.key: figure for figure in FIGURES}
    document = {
        "meta": {**meta, "finished_at": datetime.now(UTC).isoformat(timespec="seconds")},
        "figures": dict(figures),
        "units": {key: described[key].unit if key in described else "" for key in figures},
        "labels": {key: described[key].label if key in described else key for key in figures},
        "baselines": {"v010_draws_codes_per_s": V010},
        "targets": list(verdicts),
        "samples_ms": {name: list(values) for name, values in samples.items()},
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def write_report(
    output_dir: Path,
    figures: Mapping[str, float],
    samples: Mapping[str, Sequence[float]],
    meta: Mapping[str, Any],
    console: Console,
) -> list[dict[str, Any]]:
    """Print the table; write ``results.json`` and ``results.png`` into ``output_dir``."""
    missing = [figure.key for figure in FIGURES if figure.key not in figures]
    whole_run = len(meta.get("parts", ("celery", "engine"))) > 1
    if missing and whole_run:
        raise ValueError(f"figures missing from the run: {', '.join(missing)}")
    verdicts = evaluate(figures)
    console.print(render_table(figures, verdicts, quick=bool(meta.get("quick"))))
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / JSON_NAME
    write_json(json_path, figures, verdicts, samples, meta)
    plot_path = output_dir / PLOT_NAME
    try:
        write_plot(plot_path, figures, samples)
    except ImportError:
        console.print(f"wrote {json_path}; plot skipped: matplotlib is missing", markup=False)
        console.print("(pip install 'coder_ring[bench]')", markup=False)
    else:
        console.print(f"wrote {json_path} and {plot_path}", markup=False)
    return verdicts
