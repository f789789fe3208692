"""``python -m bench [--quick] [--output DIR]``: the whole benchmark in one run.

1. The Celery part (:mod:`bench.celery_run`): coder_ring workers started as shipped,
   against a default Celery worker on a no-op task (the anchor) on the same broker:
   round trips, bursts, 16 threads, 4 caller processes, task events on, and the payoff
   of spreading two rings over two workers.
2. The engine part (:mod:`bench.engine`): draws, first code, growth and many rings on
   PostgreSQL and SQLite, beside 0.1.0 and the original CoderRing (replayed).

It prints the machine, a table with every figure, its baseline, its target and
PASS/MISS, and writes ``results.json`` and ``results.png`` into the output directory.

Isolation (nothing of a deployment is touched, and two runs do not collide):

* PostgreSQL: the server of ``CODER_RING_DATABASE_URL`` if it is PostgreSQL, else
  ``postgresql://postgres@127.0.0.1:5432/postgres``; on it the database
  ``coder_ring_bench`` (created if missing) and fresh schemas ``bench_<run id>_*``,
  dropped at the end.
* Redis: the servers of ``CODER_RING_BROKER_URL`` / ``_RESULT_BACKEND`` / ``_REDIS_URL``,
  but always database 12 (:data:`~bench.resources.BENCH_REDIS_DB`). Every queue and key
  of a run carries its run id (namespaces ``bench-<run id>-*``, the anchor's queue
  ``bench-<run id>-anchor``); they and the run's task results are deleted at the end.
* SQLite and the rings file: in a temporary directory, removed at the end.

Every worker and caller process is stopped before the run ends, whatever happens.
"""

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

from bench.celery_figures import CeleryParams
from bench.celery_run import run_celery
from bench.engine import EngineParams, run_engine_bench
from bench.report import JSON_NAME, PLOT_NAME, write_report
from bench.resources import (
    BENCH_REDIS_DB,
    RedisKeys,
    bench_redis_url,
    describe_machine,
    machine,
    postgres_schemas,
    postgres_server_url,
)
from coder_ring.settings import Settings, WorkerSettings

DEFAULT_OUTPUT_DIR = Path("bench-results")


#: The bench's parts (``--only`` runs one).
PARTS = frozenset({"celery", "engine"})


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def run_bench(
    *,
    quick: bool,
    output_dir: Path,
    settings: WorkerSettings,
    console: Console,
    redis_db: int = BENCH_REDIS_DB,
    parts: frozenset[str] = PARTS,
) -> dict[str, Any]:
    """Run every benchmark, print the table, write ``results.json`` and ``results.png``.

    Args:
        quick: Few calls and small replays: checks that everything works (CI).
        output_dir: Where the JSON and the plot go (created if missing).
        settings: Where Redis and PostgreSQL are (see the module doc for isolation).
        console: Where the progress lines and the table go.
        redis_db: The Redis database the run uses on the configured servers.
        parts: Which parts run: "celery" (workers against the anchor) and "engine".

    Returns:
        ``{"figures": {...}, "targets": [...], "meta": {...}, "json": path, "plot": path}``.
    """
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:8]
    engine_params = EngineParams.quick() if quick else EngineParams.full()
    celery_params = CeleryParams.quick() if quick else CeleryParams.full()

    def log(line: str) -> None:
        stamp = f"{time.perf_counter() - started:6.1f}s"
        console.print(f"{stamp}  {line}", style="dim", markup=False, soft_wrap=True)

    server = postgres_server_url(settings.engine.database_url)
    redis_urls = {
        "broker_url": bench_redis_url(settings.broker_url, redis_db),
        "result_backend": bench_redis_url(settings.result_backend, redis_db),
        "redis_url": bench_redis_url(settings.redis_url, redis_db),
    }
    before = machine(server, redis_urls["redis_url"])
    console.print(f"machine: {describe_machine(before)}", markup=False, soft_wrap=True)
    if before["load_average_1_5_15"][0] > 0.5 * before["cores"]:
        console.print(
            "the machine is busy (load above half its cores): the figures will be noisy",
            style="yellow",
            markup=False,
        )
    with (
        TemporaryDirectory(prefix="coder-ring-bench-") as tmp,
        postgres_schemas(server, f"bench_{run_id}") as schemas,
    ):
        workdir = Path(tmp)
        base = WorkerSettings(
            engine=Settings(database_url=schemas.url("celery"), config_path=workdir / "rings.toml"),
            broker_url=redis_urls["broker_url"],
            result_backend=redis_urls["result_backend"],
            redis_url=redis_urls["redis_url"],
        )
        log(f"PostgreSQL {_redacted(base.engine.database_url)}; Redis {_redacted(base.broker_url)}")
        celery = None
        if "celery" in parts:
            try:
                celery = run_celery(base, run_id, workdir, celery_params, log)
            finally:
                cleaned = sum(RedisKeys(url, run_id).clean() for url in set(redis_urls.values()))
            log(f"Redis: {cleaned} keys of the run deleted")
        figures = dict(celery.figures) if celery else {}
        # After the Celery part, while PostgreSQL is quiet: the replays leave it busy
        # (autovacuum of a million written rows) for a while.
        sqlite_url = f"sqlite:///{workdir / 'engine.db'}"
        if "engine" in parts:
            figures.update(
                run_engine_bench(
                    {"postgresql": schemas.url("engine"), "sqlite": sqlite_url},
                    engine_params,
                    lambda line: log(f"engine {line}"),
                )
            )
        schema_names = list(schemas.made)

    after = machine(server, redis_urls["redis_url"])
    meta = {
        "quick": quick,
        "run_id": run_id,
        "machine": before,
        "load_average_after": after["load_average_1_5_15"],
        "parts": sorted(parts),
        "worker_pids": celery.pids if celery else [],
        "schemas": schema_names,
        "postgresql": _redacted(server.render_as_string(hide_password=False)),
        "redis": _redacted(redis_urls["broker_url"]),
        "notes": celery.notes if celery else [],
        "engine_params": dataclasses.asdict(engine_params),
        "celery_params": dataclasses.asdict(celery_params),
        "seconds": round(time.perf_counter() - started, 1),
    }
    verdicts = write_report(output_dir, figures, celery.samples if celery else {}, meta, console)
    console.print(f"machine after the run: load {after['load_average_1_5_15']}", markup=False)
    return {
        "figures": figures,
        "targets": verdicts,
        "meta": meta,
        "json": str(output_dir / JSON_NAME),
        "plot": str(output_dir / PLOT_NAME),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench [--quick] [--output DIR]``; settings from the environment.

    Exits 0 whether or not every target is met: the table says which were missed.
    """
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="coder_ring against a default Celery worker, 0.1.0 and the original.",
    )
    parser.add_argument("--quick", action="store_true", help="small and fast: checks it works")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT_DIR, metavar="DIR")
    parser.add_argument(
        "--only",
        choices=sorted(PARTS),
        default=None,
        help="run one part: the Celery workers against the anchor, or the engine",
    )
    args = parser.parse_args(argv)
    run_bench(
        quick=args.quick,
        output_dir=args.output,
        parts=PARTS if args.only is None else frozenset({args.only}),
        settings=WorkerSettings.from_env(os.environ),
        # A table of 5 columns: at least 120 characters wide, even into a pipe.
        console=Console(width=None if sys.stdout.isatty() else 120),
    )
    return 0
