"""``python -m bench [--quick] [--only celery|engine|rings] [--output DIR]``: coder_ring's
workers beside a default Celery worker (:mod:`bench.celery_run`), and its engine beside
the original's replayed SQL (:mod:`bench.engine`), in one run; many rings side by side
(:mod:`bench.rings`, about 15 minutes) only with ``--only rings``. It prints the machine and
a table of every figure with its baseline, target and PASS/MISS, and writes
``results.json`` and ``results.png``. Nothing of a deployment is touched and two runs do
not collide (:mod:`bench.resources`); every process started is stopped and everything
made is removed at the end, whatever happens."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from rich.console import Console
from sqlalchemy.engine import make_url

from bench.celery_run import CeleryParams, CeleryRun
from bench.engine import EngineParams, run_engine_bench
from bench.figures import FIGURES
from bench.report import JSON_NAME, PLOT_NAME, write_report
from bench.resources import (
    bench_redis_url,
    delete_keys,
    describe_machine,
    machine,
    postgres_schemas,
    postgres_server_url,
)
from bench.rings import RingsParams, run_rings_bench
from coder_ring.celery.demo.local_redis import LocalRedis
from coder_ring.settings import Settings, WorkerSettings

#: The bench's parts (``--only`` runs one); a run without ``--only`` runs the default ones.
PARTS = frozenset({"celery", "engine", "rings"})
DEFAULT_PARTS = frozenset({"celery", "engine"})


def run_bench(
    *,
    quick: bool,
    output_dir: Path,
    settings: WorkerSettings,
    console: Console,
    parts: frozenset[str] = DEFAULT_PARTS,
) -> dict[str, Any]:
    """Run the ``parts`` (``quick``: few calls, small replays: checks that everything
    works) on the servers of ``settings``; print the table, write the report into
    ``output_dir``; ``{"figures", "targets", "meta", "json", "plot"}``."""
    started, run_id = time.perf_counter(), uuid.uuid4().hex[:8]

    def log(line: str) -> None:
        stamp = f"{time.perf_counter() - started:6.1f}s"
        console.print(f"{stamp}  {line}", style="dim", markup=False, soft_wrap=True)

    server = postgres_server_url(settings.engine.database_url)
    configured = (settings.broker_url, settings.result_backend, settings.redis_url)
    broker, backend, redis_url = (bench_redis_url(url) for url in configured)  # database 12
    before = machine(server, redis_url)
    console.print(f"machine: {describe_machine(before)}", markup=False, soft_wrap=True)
    if before["load_average_1_5_15"][0] > 0.5 * before["cores"]:
        busy = "the machine is busy (load above half its cores): the figures will be noisy"
        console.print(busy, style="yellow", markup=False)
    params = (CeleryParams(), EngineParams())
    if quick:
        params = (CeleryParams.quick(), EngineParams.quick())
    celery: CeleryRun | None = None
    figures: dict[str, float] = {}
    with (
        TemporaryDirectory(prefix="coder-ring-bench-") as tmp,
        postgres_schemas(server, f"bench_{run_id}") as schemas,
    ):
        if "celery" in parts:
            engine = Settings(schemas.url("celery"), Path(tmp) / "rings.toml")
            base = WorkerSettings(engine, broker, backend, redis_url)  # the shipped defaults
            log(f"PostgreSQL {make_url(engine.database_url)!r}; Redis {make_url(broker)!r}")
            try:
                celery = CeleryRun(base, run_id, Path(tmp), params[0], log).run()
                figures |= celery.figures
            finally:  # the run's keys (its results are deleted by its callers)
                servers = {broker, backend, redis_url}
                cleaned = sum(delete_keys(url, (), marker=run_id) for url in servers)
                log(f"Redis: {cleaned} keys of the run deleted")
        # After the Celery part, while PostgreSQL is quiet: the replays leave it busy
        # (autovacuum of the rows they wrote) for a while.
        if "engine" in parts:
            urls = {"postgresql": schemas.url("engine"), "sqlite": f"sqlite:///{tmp}/engine.db"}
            figures |= run_engine_bench(urls, params[1], lambda line: log(f"engine {line}"))
        if "rings" in parts:  # a Redis server of its own: its command counts are the run's
            own = LocalRedis().start()
            try:
                figures |= run_rings_bench(
                    lambda rings: Settings(schemas.url(f"rings{rings}"), Path(tmp) / "rings.toml"),
                    own.url,
                    RingsParams.quick() if quick else RingsParams(),
                    Path(tmp),
                    lambda line: log(f"rings {line}"),
                )
            finally:
                own.close()
    after = machine(server, redis_url)
    figures = {f.key: figures[f.key] for f in FIGURES if f.key in figures}  # as reported
    meta = {
        "quick": quick,
        "run_id": run_id,
        "machine": before,
        "load_average_after": after["load_average_1_5_15"],
        "parts": sorted(parts),
        "worker_pids": celery.pids if celery else [],
        "schemas": schemas.made,
        "postgresql": repr(server),  # the password hidden
        "redis": repr(make_url(broker)),
        "notes": celery.notes if celery else {},
        "celery_params": dataclasses.asdict(params[0]),
        "engine_params": dataclasses.asdict(params[1]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    verdicts = write_report(output_dir, figures, celery.samples if celery else {}, meta, console)
    console.print(f"machine after the run: load {after['load_average_1_5_15']}", markup=False)
    paths = {"json": str(output_dir / JSON_NAME), "plot": str(output_dir / PLOT_NAME)}
    return {"figures": figures, "targets": verdicts, "meta": meta, **paths}


def main(argv: list[str] | None = None) -> int:
    """The command line; settings from the environment. Exits 0 whether or not every
    target is met: the table says which were missed."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="coder_ring against a default Celery worker, 0.1.0 and the original.",
    )
    parser.add_argument("--quick", action="store_true", help="small and fast: checks it works")
    parser.add_argument("--output", type=Path, default=Path("bench-results"), metavar="DIR")
    parser.add_argument("--only", choices=sorted(PARTS), help="run one part")
    args = parser.parse_args(argv)
    run_bench(
        quick=args.quick,
        output_dir=args.output,
        parts=DEFAULT_PARTS if args.only is None else frozenset({args.only}),
        settings=WorkerSettings.from_env(os.environ),
        # A table of 5 columns: at least 120 characters wide, even into a pipe.
        console=Console(width=None if sys.stdout.isatty() else 120),
    )
    return 0
