"""``coder-ring demo``: from nothing to codes, then leave nothing running.

Uses an embedded SQLite file and the Redis at $CODER_RING_BROKER_URL if one answers;
otherwise it starts a private redis-server (see :mod:`workers.demo.local_redis`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from coder_ring.cli import fill_progress
from coder_ring.errors import CoderRingError
from coder_ring.service import RingService
from coder_ring.settings import Settings
from workers.demo.local_redis import LocalRedis, answers
from workers.lease import current_holder
from workers.settings import WorkerSettings

DEMO_RINGS = """\
# The demo's rings (see config/rings.toml for every key).
[rings.widget]
profanity_filter = true

[rings.doodad]
base_length = 1
pool_size = 8
"""
READY_TIMEOUT = 60.0
CALL_TIMEOUT = 30.0


def _wait_for_lock(redis_url: str, ring: str, process: subprocess.Popen[bytes]) -> str:
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while time.monotonic() < deadline:
            holder = current_holder(client, ring)
            if holder:
                return holder
            if process.poll() is not None:
                raise CoderRingError(f"the demo worker exited early (code {process.returncode})")
            time.sleep(0.1)
    finally:
        client.close()
    raise CoderRingError(f"no worker took ring {ring!r} within {READY_TIMEOUT:g} s")


@contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # graceful: the worker gives its pool back
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_demo(workdir: Path | None = None, console: Console | None = None) -> list[str]:
    """Run the demo; returns every code it printed."""
    console = console or Console()
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coder_ring_")))
        workdir.mkdir(parents=True, exist_ok=True)
        rings_file = workdir / "rings.toml"
        rings_file.write_text(DEMO_RINGS)
        base = WorkerSettings.from_env()
        broker = base.broker_url
        if answers(broker):
            console.print(f"[bold]Redis[/]: using the one answering at {broker}")
        else:
            local = LocalRedis()
            console.print(f"[bold]Redis[/]: none at {broker}; starting {local.binary}")
            stack.callback(local.close)
            broker = local.start().url
        engine = Settings(database_url=f"sqlite:///{workdir / 'demo.db'}", config_path=rings_file)
        settings = WorkerSettings(
            engine=engine, broker_url=broker, result_backend=broker, redis_url=broker
        )
        env = {
            **os.environ,
            "CODER_RING_DATABASE_URL": engine.database_url,
            "CODER_RING_CONFIG": str(rings_file),
            "CODER_RING_BROKER_URL": broker,
            "CODER_RING_RESULT_BACKEND": broker,
            "CODER_RING_REDIS_URL": broker,
        }

        console.print(f"[bold]Database[/]: {engine.database_url}")
        service = RingService.from_settings(engine)
        stack.callback(service.close)
        service.migrate()
        with fill_progress() as progress:
            written = service.populate(progress=progress)
        for ring, rows in written.items():
            console.print(f"  {ring}: {rows:,} codes written" if rows else f"  {ring}: filled")

        celery = [sys.executable, "-m", "celery", "-A", "workers.app"]
        worker = stack.enter_context(
            _process(
                [
                    *celery,
                    "worker",
                    "--pool=threads",
                    "--concurrency=1",
                    "--rings=all",
                    "--hostname=demo@%h",
                    "--loglevel=INFO",
                ],
                env,
                workdir / "worker.log",
            )
        )
        stack.enter_context(
            _process(
                [*celery, "beat", f"--schedule={workdir / 'beat-schedule'}", "--loglevel=INFO"],
                env,
                workdir / "beat.log",
            )
        )
        holder = _wait_for_lock(broker, "widget", worker)
        console.print(f"[bold]Worker[/]: {holder} holds ring widget")

        from workers.app import create_app

        create_app(settings)
        from workers.tasks import get_code, get_codes, status

        console.print('\n[bold]10 codes[/] from get_code.delay("widget").get():')
        codes: list[str] = [get_code.delay("widget").get(timeout=CALL_TIMEOUT) for _ in range(10)]
        for code in codes:
            console.print(f"  {code}")
        batch: list[str] = get_codes.delay("doodad", 8).get(timeout=CALL_TIMEOUT)
        console.print(f'\n[bold]A batch[/] from get_codes.delay("doodad", 8): {" ".join(batch)}')

        table = Table(title="status")
        columns = (
            "ring",
            "base_length",
            "total_codes",
            "remaining_in_cycle",
            "cycle",
            "uniquizer",
            "pool_size",
            "worker",
        )
        for column in columns:
            table.add_column(column.replace("_", " "))
        for ring in ("widget", "doodad"):
            report = status.delay(ring).get(timeout=CALL_TIMEOUT)
            table.add_row(*(str(report[column]) for column in columns))
        console.print(table)
        console.print("Stopping the worker (it gives its pooled codes back), beat and Redis.")
    return codes + batch
