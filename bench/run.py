"""``coder-ring bench``: Celery, engine and the original's method, side by side, in one run.

:func:`run_bench` measures, on real Redis and PostgreSQL:

1. a no-op task's round trip through the broker, result backend and a ring worker of
   the production kind (threads pool, concurrency 1): sequential latency p50/p99 over
   N calls, and burst throughput (fire M calls, then wait for all);
2. ``get_code`` through Celery: the same figures and their ratios to (1);
3. ``get_codes(ring, 1000)`` through Celery: codes/s;
4-6. the engine and the original's replay (:mod:`bench.engine`);
7. the worker's RSS after the run (``/proc/PID/status``).

It prints a table with each figure, its target and PASS/MISS, and writes
``results.json`` and ``results.png`` into the output directory.

Isolation (nothing of a deployment is touched, and two runs do not collide):

* PostgreSQL: the server of ``CODER_RING_DATABASE_URL`` if it is PostgreSQL, else
  ``postgresql://postgres@127.0.0.1:5432/postgres``; on it the database
  ``coder_ring_bench`` (created if missing) and a fresh schema per run, dropped after.
* SQLite: a file in the run's temporary directory.
* Redis: the servers of ``CODER_RING_BROKER_URL`` / ``_RESULT_BACKEND`` / ``_REDIS_URL``,
  but always database :data:`BENCH_REDIS_DB` (12), whatever database those URLs name.
  The ring is ``bench_<run id>`` (its own queue and lock key); its keys and the run's
  task results are deleted afterwards. The no-op goes to ``coder_ring.misc`` as in
  production: only the bench worker consumes it in database 12.
* The rings file: in the temporary directory. The bench fills the ring before its
  worker starts (as compose's ``migrate`` service does), so the worker's RSS is that
  of a worker serving a ring, not of one that just filled it.

The worker subprocess is always stopped (SIGTERM, then SIGKILL after 20 s).
``python -m bench [--quick] [--output DIR]`` runs it without the CLI.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from rich.console import Console
from sqlalchemy.engine import make_url

from bench.celery_figures import CeleryParams, measure_celery
from bench.engine import EngineParams, run_engine_bench
from bench.report import JSON_NAME, PLOT_NAME, write_report
from bench.resources import postgres_schema, postgres_server_url
from bench.worker import BenchWorker
from coder_ring.service import RingService
from coder_ring.settings import Settings
from workers.names import lock_key, ring_queue
from workers.settings import WorkerSettings

#: The Redis database every bench run uses, on the configured Redis server(s).
BENCH_REDIS_DB = 12
DEFAULT_OUTPUT_DIR = Path("bench-results")


def bench_redis_url(url: str, db: int = BENCH_REDIS_DB) -> str:
    """``url`` with Redis database ``db`` (URLs of other transports are left alone)."""
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"}:
        return url
    return urlunsplit(parts._replace(path=f"/{db}"))


def bench_settings(
    settings: WorkerSettings, database_url: str, config_path: Path, redis_db: int
) -> WorkerSettings:
    """``settings`` with the bench's database, rings file and Redis database."""
    return dataclasses.replace(
        settings,
        engine=Settings(database_url=database_url, config_path=config_path),
        broker_url=bench_redis_url(settings.broker_url, redis_db),
        result_backend=bench_redis_url(settings.result_backend, redis_db),
        redis_url=bench_redis_url(settings.redis_url, redis_db),
    )


def worker_env(settings: WorkerSettings) -> dict[str, str]:
    """This process's environment with every ``CODER_RING_*`` variable set from ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CODER_RING_")}
    env.update(
        {
            "CODER_RING_DATABASE_URL": settings.engine.database_url,
            "CODER_RING_CONFIG": str(settings.engine.config_path),
            "CODER_RING_BROKER_URL": settings.broker_url,
            "CODER_RING_RESULT_BACKEND": settings.result_backend,
            "CODER_RING_REDIS_URL": settings.redis_url,
            "CODER_RING_LOCK_TTL": repr(settings.lock_ttl),
            "CODER_RING_TASK_EXPIRES": repr(settings.task_expires),
            "CODER_RING_VISIBILITY_TIMEOUT": repr(settings.visibility_timeout),
            "CODER_RING_REFILL_INTERVAL": repr(settings.refill_interval),
        }
    )
    return env


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def _redis_cleanup(settings: WorkerSettings, ring: str, task_ids: list[str]) -> Iterator[None]:
    """Afterwards: delete the ring's queue, lock and bindings, and the run's results."""
    try:
        yield
    finally:
        for url, keys in (
            (settings.broker_url, [ring_queue(ring), lock_key(ring)]),
            (settings.result_backend, [f"celery-task-meta-{task_id}" for task_id in task_ids]),
        ):
            if not url.startswith(("redis://", "rediss://")):
                continue
            client: redis.Redis = redis.Redis.from_url(url)
            try:
                keys += [key.decode() for key in client.scan_iter(match=f"*{ring}*")]
                for start in range(0, len(keys), 1000):
                    client.delete(*keys[start : start + 1000])
            except redis.RedisError:
                pass  # best effort: the bench database is the bench's own
            finally:
                client.close()


def _celery_part(
    settings: WorkerSettings,
    ring: str,
    params: CeleryParams,
    workdir: Path,
    log: Callable[[str], None],
) -> tuple[dict[str, float], dict[str, list[float]], int]:
    """Measurements (1), (2), (3) and (7) against a worker of our own; and its pid."""
    task_ids: list[str] = []
    # As in production (compose's migrate service), the ring is filled before workers
    # start: the worker's RSS is then that of a serving worker, not of one that filled.
    service = RingService.from_settings(settings.engine)
    try:
        service.migrate()
        service.populate([ring])
    finally:
        service.close()
    with (
        _redis_cleanup(settings, ring, task_ids),
        BenchWorker(ring, worker_env(settings), workdir, settings.redis_url) as worker,
    ):
        worker.wait_holding()
        log(f"celery: worker {worker.pid} holds {ring}")
        figures, samples = measure_celery(settings, ring, params, task_ids, log)
        figures["worker.rss_mb"] = worker.rss_mb("VmRSS")
        figures["worker.peak_rss_mb"] = worker.rss_mb("VmHWM")
        status = worker.stop()
        log(f"celery: worker stopped (exit status {status})")
    return figures, samples, worker.pid


def run_bench(
    *,
    quick: bool,
    output_dir: Path,
    settings: WorkerSettings,
    console: Console,
    redis_db: int = BENCH_REDIS_DB,
) -> dict[str, Any]:
    """Run every benchmark, print the table, write ``results.json`` and ``results.png``.

    Args:
        quick: Small rings (32^2) and few calls: checks that everything works (CI).
        output_dir: Where the JSON and the plot go (created if missing).
        settings: Where Redis and PostgreSQL are (see the module doc for isolation).
        console: Where the progress lines and the table go.
        redis_db: The Redis database the run uses on the configured server.

    Returns:
        ``{"figures": {...}, "targets": [...], "meta": {...}, "json": path, "plot": path}``.
    """
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:8]
    ring = f"bench_{run_id}"
    engine_params = EngineParams.quick() if quick else EngineParams.full()
    celery_params = CeleryParams.quick() if quick else CeleryParams.full()

    def log(line: str) -> None:
        console.print(f"{time.perf_counter() - started:6.1f}s  {line}", style="dim", markup=False)

    server = postgres_server_url(settings.engine.database_url)
    with (
        TemporaryDirectory(prefix="coder-ring-bench-") as tmp,
        postgres_schema(server, f"bench_{run_id}") as pg_url,
    ):
        workdir = Path(tmp)
        rings_file = workdir / "rings.toml"
        rings_file.write_text(
            f"[rings.{ring}]\nbase_length = {engine_params.base_length}\n", encoding="utf-8"
        )
        ours = bench_settings(settings, pg_url, rings_file, redis_db)
        log(f"PostgreSQL {_redacted(pg_url)}; broker {_redacted(ours.broker_url)}")
        # First, while the databases are quiet: the engine part leaves PostgreSQL busy
        # (autovacuum of a few million written rows) for a while.
        figures, samples, worker_pid = _celery_part(ours, ring, celery_params, workdir, log)

        sqlite_url = f"sqlite:///{workdir / 'bench.db'}"
        log(f"engine: PostgreSQL (same schema) and SQLite {sqlite_url}")
        figures.update(
            run_engine_bench(
                {"postgresql": pg_url, "sqlite": sqlite_url},
                engine_params,
                lambda line: log(f"engine {line}"),
            )
        )

    meta = {
        "quick": quick,
        "run_id": run_id,
        "ring": ring,
        "worker_pid": worker_pid,
        "postgresql": _redacted(server.render_as_string(hide_password=False)),
        "redis": _redacted(ours.broker_url),
        "engine_params": dataclasses.asdict(engine_params),
        "celery_params": dataclasses.asdict(celery_params),
        "seconds": round(time.perf_counter() - started, 1),
    }
    verdicts = write_report(output_dir, figures, samples, meta, console)
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
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small and fast: checks it works")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT_DIR, metavar="DIR")
    args = parser.parse_args(argv)
    run_bench(
        quick=args.quick,
        output_dir=args.output,
        settings=WorkerSettings.from_env(),
        console=Console(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
