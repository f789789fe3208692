"""What the graphs show and how they are taken: the PromQL of each panel (the names of
coder_ring/metrics/catalog.py and the jobs of deploy/prometheus/prometheus.yml), the
scrape config of the run's Prometheus, and a screenshot of its graph page with headless
Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

#: The jobs of deploy/prometheus/prometheus.yml: `coder-ring metrics` and the workers.
DATABASE_JOB, WORKER_JOB = "coder_ring", "coder_ring_worker"
#: The alert rules the deployment loads, loaded by the run's Prometheus too.
ALERTS = Path(__file__).resolve().parents[1] / "prometheus" / "alerts.yml"
#: The browser window of each screenshot (pixels): the graph and a legend of a few lines.
WINDOW = (1100, 900)


def _tagged(expression: str, label: str, value: str) -> str:
    """``expression`` with label ``label`` set to ``value`` (to tell series apart when
    two expressions share one graph)."""
    return f'label_replace({expression}, "{label}", "{value}", "job", ".*")'


def _quantile(q: float) -> str:
    buckets = f'sum by (le) (rate(coder_ring_get_code_seconds_bucket{{job="{WORKER_JOB}"}}[1m]))'
    return _tagged(f"1000 * histogram_quantile({q}, {buckets})", "quantile", f"p{q * 100:g}")


def _moves(counter: str, kind: str) -> str:
    return _tagged(f'sum by (ring) (increase({counter}{{job="{WORKER_JOB}"}}[1m]))', "kind", kind)


@dataclass(frozen=True)
class Panel:
    """One picture: its file (``docs/graph-<name>.png``), what it shows, its query."""

    name: str
    title: str
    expression: str
    stacked: bool = False


PANELS: tuple[Panel, ...] = (
    Panel(
        "fullness",
        "Ring fullness: share of each ring's cycle drawn (coder-ring metrics)",
        f'max by (ring) (coder_ring_cycle_used_ratio{{job="{DATABASE_JOB}"}})',
    ),
    Panel(
        "codes",
        "Codes handed to callers per second, by ring (the workers' counters)",
        f'sum by (ring) (rate(coder_ring_codes_issued_total{{job="{WORKER_JOB}"}}[30s]))',
    ),
    Panel(
        "latency",
        "get_code latency in the worker, p50, p99 and p99.9 over 1 min (ms)",
        f"{_quantile(0.5)} or {_quantile(0.99)} or {_quantile(0.999)}",
    ),
    Panel(
        "holders",
        "Rings held, by worker, stacked ((none): rings without a holder)",
        f'count by (holder) (coder_ring_holder_info{{job="{DATABASE_JOB}"}}) or '
        + _tagged(f'count(coder_ring_held{{job="{DATABASE_JOB}"}} == 0)', "holder", "(none)"),
        stacked=True,
    ),
    Panel(
        "failovers",
        "Rings taken over in the last minute: failovers (holder died) and handoffs",
        f"{_moves('coder_ring_failovers_total', 'failover')} or "
        f"{_moves('coder_ring_handoffs_total', 'handoff')}",
        stacked=True,  # rings that move together would hide each other's line
    ),
)


def prometheus_config(interval: float, database: str, workers: list[str]) -> str:
    """The run's scrape config (JSON, which Prometheus reads as YAML): ``coder-ring
    metrics`` at ``database`` and the workers at ``workers`` (``host:port`` each), every
    ``interval`` seconds, in the deployment's jobs, with its alert rules."""
    config = {
        "global": {"scrape_interval": f"{interval:g}s", "evaluation_interval": f"{interval:g}s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": DATABASE_JOB, "static_configs": [{"targets": [database]}]},
            {"job_name": WORKER_JOB, "static_configs": [{"targets": workers}]},
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def graph_url(base: str, panel: Panel, end: datetime, minutes: int) -> str:
    """Prometheus's graph page (the classic one Debian's package serves) showing
    ``panel`` for the ``minutes`` before ``end`` (UTC, a whole minute)."""
    options = {
        "g0.expr": panel.expression,
        "g0.tab": "0",  # the Graph tab
        "g0.stacked": "1" if panel.stacked else "0",
        "g0.range_input": f"{minutes}m",
        "g0.end_input": end.strftime("%Y-%m-%d %H:%M"),
    }
    return f"{base}/classic/graph?{urlencode(options)}"


def chromium() -> str:
    """The browser (Debian's ``chromium``); FileNotFoundError naming the package."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    raise FileNotFoundError("no chromium on PATH: apt-get install chromium")


def screenshot(url: str, path: Path, browser: str) -> None:
    """A PNG of ``url`` once its scripts drew the graph (RuntimeError if none came)."""
    argv = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    argv += [f"--window-size={WINDOW[0]},{WINDOW[1]}", "--virtual-time-budget=10000"]
    argv += [f"--screenshot={path}", url]
    path.unlink(missing_ok=True)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if not path.exists():
        raise RuntimeError(f"chromium made no screenshot of {url}:\n{done.stderr[-2000:]}")
