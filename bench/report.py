"""The report of a run: a table of every figure in its section with its baseline, target
and PASS/MISS; ``results.json`` (figures, targets, samples, the machine); ``results.png``
(the latency distributions). Nothing here measures."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.table import Table

from bench.figures import FIGURES, SECTIONS, TARGETED, V010

JSON_NAME = "results.json"
PLOT_NAME = "results.png"


def evaluate(figures: Mapping[str, float]) -> list[dict[str, Any]]:
    """Each target the run measured (``--only`` measures a part): its value, met or not."""
    verdicts = []
    for figure in (figure for figure in TARGETED if figure.key in figures):
        value = figures[figure.key]
        verdict = {"figure": figure.key, "value": value, "target": figure.describe()}
        verdicts.append({**verdict, "passed": figure.check(value)})
    return verdicts


def _format(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:,.2f}x"
    if unit in {"ms", "s"}:
        return f"{value:,.3g} {unit}" if value < 10 else f"{value:,.1f} {unit}"
    if unit in {"MB", "kB"}:
        return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    whole = value >= 100 or value.is_integer()  # a count, e.g. of failed requests
    return f"{value:,.0f} {unit}" if whole else f"{value:,.1f} {unit}"


def render_table(
    figures: Mapping[str, float], verdicts: Sequence[Mapping[str, Any]], *, quick: bool
) -> Group:
    """One table per section, a row per figure: value, baseline, target, PASS/MISS."""
    by_key = {verdict["figure"]: verdict for verdict in verdicts}
    title = "coder_ring benchmark" + (" (--quick: checks it works; figures mean nothing)" * quick)
    tables: list[Table | str] = [f"[bold]{title}[/]"]
    for section, rows in SECTIONS:
        shown = [figure for figure in rows if figure.key in figures]
        if not shown:
            continue
        table = Table(
            title=f"[bold]{section}[/]",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            show_header=len(tables) == 1,
        )
        # Fixed widths: the sections' tables line up.
        for name, width in (("figure", 50), ("value", 15), ("baseline", 16), ("target", 18)):
            table.add_column(name, width=width, justify="left" if width == 50 else "right")
        table.add_column("result", justify="center", width=6)
        for figure in shown:
            target = result = ""
            if (verdict := by_key.get(figure.key)) is not None:
                target = verdict["target"]
                style = "dim" if quick else ("green" if verdict["passed"] else "bold red")
                result = f"[{style}]{'PASS' if verdict['passed'] else 'MISS'}[/]"
            value = _format(figures[figure.key], figure.unit)
            table.add_row(figure.label, value, figure.baseline, target, result)
        tables.append(table)
    return Group(*tables)


def write_plot(path: Path, samples: Mapping[str, Sequence[float]]) -> None:
    """The round trips' distributions as a PNG (ImportError without matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot, ticker

    fig, axes = pyplot.subplots(figsize=(10, 6))
    for name, values in samples.items():
        ordered = sorted(values)
        fractions = [(index + 1) / len(ordered) for index in range(len(ordered))]
        axes.plot(ordered, fractions, label=f"{name} (n={len(ordered)})")
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    axes.xaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    axes.set(xlabel="round trip (ms, log scale)", ylabel="fraction of calls")
    axes.set_title("Celery round trips, one caller: coder_ring beside the anchor (CDF)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot.close(fig)


def write_report(
    output_dir: Path,
    figures: Mapping[str, float],
    samples: Mapping[str, Sequence[float]],
    meta: Mapping[str, Any],
    console: Console,
) -> list[dict[str, Any]]:
    """Print the table; write ``results.json`` and ``results.png`` into ``output_dir``.
    A whole run (every part) must have every figure."""
    missing = [figure.key for figure in FIGURES if figure.key not in figures]
    if missing and len(meta.get("parts", ("celery", "engine"))) > 1:
        raise ValueError(f"figures missing from the run: {', '.join(missing)}")
    verdicts = evaluate(figures)
    console.print(render_table(figures, verdicts, quick=bool(meta.get("quick"))))
    output_dir.mkdir(parents=True, exist_ok=True)
    described = {figure.key: figure for figure in FIGURES if figure.key in figures}
    document = {
        "meta": {**meta, "finished_at": datetime.now(UTC).isoformat(timespec="seconds")},
        "figures": dict(figures),
        "units": {key: figure.unit for key, figure in described.items()},
        "labels": {key: figure.label for key, figure in described.items()},
        "baselines": {"v010_draws_codes_per_s": V010},
        "targets": verdicts,
        "samples_ms": {name: list(values) for name, values in samples.items()},
    }
    (output_dir / JSON_NAME).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    try:
        write_plot(output_dir / PLOT_NAME, samples)
        wrote = f"wrote {output_dir / JSON_NAME} and {output_dir / PLOT_NAME}"
    except ImportError:
        wrote = f"wrote {output_dir / JSON_NAME}; no plot: pip install 'coder_ring[bench]'"
    console.print(wrote, markup=False)
    return verdicts
