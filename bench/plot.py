"""``results.png``: round-trip latency distributions and throughputs, side by side.
matplotlib is imported when a plot is drawn (ImportError then if it is missing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.figures import V010

_DB_LABELS = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
#: Bar colours: the anchor and baselines grey or orange, coder_ring blue or green.
_ANCHOR, _OURS, _V010, _REPLAY, _ENGINE = (
    "tab:gray",
    "tab:blue",
    "tab:orange",
    "silver",
    "tab:green",
)


def _bars(figures: Mapping[str, float]) -> list[tuple[str, float, str]]:
    """(label, value, colour) of every bar whose figure the run measured."""
    keyed: list[tuple[str, str | float, str]] = [
        ("anchor no-op burst", "celery.anchor.burst_per_s", _ANCHOR),
        ("coder_ring no-op burst", "celery.noop.burst_per_s", _OURS),
        ("get_code burst", "celery.get_code.burst_per_s", _OURS),
        ("get_code burst, events on", "celery.events.get_code.burst_per_s", _OURS),
    ]
    for prefix, what in (("celery.threads16", "16 threads"), ("celery.procs4", "4 processes")):
        keyed += [
            (f"{what}: anchor no-op", f"{prefix}.anchor.per_s", _ANCHOR),
            (f"{what}: get_code", f"{prefix}.get_code.per_s", _OURS),
        ]
    keyed += [
        ("queued: 1 worker, 2 rings", "spread.drain.one_worker.codes_per_s", _OURS),
        ("queued: 2 workers, 1 ring each", "spread.drain.two_workers.codes_per_s", _OURS),
        ("callers: 1 worker, 2 rings", "spread.callers.one_worker.codes_per_s", _OURS),
        ("callers: 2 workers", "spread.callers.two_workers.codes_per_s", _OURS),
        ("get_codes(1000)", "celery.get_codes_1000.codes_per_s", _OURS),
    ]
    for db, label in _DB_LABELS.items():
        for batch, v010 in V010[db].items():
            keyed.append((f"{label} 0.1.0 draws of {batch}", float(v010), _V010))
            key = f"engine.{db}.len4.batch_{batch}.codes_per_s"
            keyed.append((f"{label} draws of {batch}", key, _ENGINE))
        keyed.append(
            (f"{label} original (replayed)", f"engine.{db}.replay.draw.codes_per_s", _REPLAY)
        )
    engine_ran = any(name.startswith("engine.") for name in figures)
    bars: list[tuple[str, float, str]] = []
    for label, source, colour in keyed:
        if isinstance(source, str):
            if source in figures:
                bars.append((label, figures[source], colour))
        elif engine_ran:  # a baseline's fixed value, beside the engine's figure
            bars.append((label, source, colour))
    return bars


def write_plot(
    path: Path, figures: Mapping[str, float], samples: Mapping[str, Sequence[float]]
) -> None:
    """Latency CDFs (anchor, no-op, get_code) and throughputs (log scale), as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot, ticker

    fig, (left, right) = pyplot.subplots(1, 2, figsize=(15, 8))
    for name, values in samples.items():
        ordered = sorted(values)
        count = len(ordered)
        left.plot(ordered, [(i + 1) / count for i in range(count)], label=f"{name} (n={count})")
    left.set_xscale("log")
    left.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    left.xaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    left.set_xlabel("round trip (ms, log scale)")
    left.set_ylabel("fraction of calls")
    left.set_title("Celery round trips, one caller (CDF)")
    left.grid(True, which="both", alpha=0.3)
    left.legend()

    bars = _bars(figures)
    labels = [label for label, _, _ in bars]
    values = [value for _, value, _ in bars]
    right.barh(labels, values, color=[color for _, _, color in bars])
    right.set_xscale("log")
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=8)
    right.set_xlabel("calls or codes per second (log scale)")
    right.set_title("Throughput (grey: anchor and original; orange: 0.1.0)")
    right.grid(True, axis="x", which="both", alpha=0.3)
    for index, value in enumerate(values):
        right.text(value, index, f" {value:,.0f}", va="center", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    pyplot.close(fig)
