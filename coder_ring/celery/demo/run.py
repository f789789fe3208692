"""``coder-ring demo``: from nothing to codes, then leave nothing running.

Uses an embedded SQLite file and the Redis at $CODER_RING_BROKER_URL if one answers;
otherwise it starts a private redis-server (see :mod:`coder_ring.celery.demo.local_redis`). Its
namespace is its own (``demo-<random>``), so on a Redis that also serves a real
deployment the demo never meets that deployment's workers, nor they the demo's.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from coder_ring.celery.app import create_app
from coder_ring.celery.demo.cleanup import remove_namespace
from coder_ring.celery.demo.local_redis import LocalRedis, answers
from coder_ring.celery.demo.processes import Process
from coder_ring.errors import CoderRingError
from coder_ring.registry.client import registry_client
from coder_ring.registry.lease import current_holder
from coder_ring.service import RingService
from coder_ring.settings import Settings, WorkerSettings

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


def _wait_for_holder(settings: WorkerSettings, ring: str, worker: Process) -> str:
    client = registry_client(settings, 2.0)
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        while time.monotonic() < deadline:
            holder = current_holder(client, settings.namespace, ring)
            if holder:
                return holder
            if not worker.alive():
                raise CoderRingError(f"the demo worker exited early:\n{worker.log_tail()}")
            time.sleep(0.1)
    finally:
        client.close()
    raise CoderRingError(f"no worker took ring {ring!r} within {READY_TIMEOUT:g} s")


def run_demo(workdir: Path | None = None, console: Console | None = None) -> list[str]:
    """Run the demo; returns every code it printed."""
    console = console or Console()
    with ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="coder_ring_")))
        workdir.mkdir(parents=True, exist_ok=True)
        rings_file = workdir / "rings.toml"
        rings_file.write_text(DEMO_RINGS)
        configured = WorkerSettings.from_env()
        broker, master = configured.broker_url, configured.sentinel_master
        running = answers(broker, master_name=master)  # someone else's: left as it was
        if running:
            console.print(f"[bold]Redis[/]: using the one answering at {broker}")
        else:
            local = LocalRedis()
            console.print(f"[bold]Redis[/]: none at {broker}; starting {local.binary}")
            stack.callback(local.close)
            broker, master = local.start().url, None
        engine = Settings(database_url=f"sqlite:///{workdir / 'demo.db'}", config_path=rings_file)
        settings = WorkerSettings(
            engine=engine,
            broker_url=broker,
            result_backend=broker,
            redis_url=broker,
            namespace=f"demo-{uuid.uuid4().hex[:8]}",
            sentinel_master=master,
        )
        # Unwrapped: a URL broken over two lines cannot be copied.
        console.print(f"[bold]Database[/]: {engine.database_url}", soft_wrap=True)
        console.print(f"[bold]Namespace[/]: {settings.namespace} (queues and keys of its own)")
        service = RingService.from_settings(engine)
        stack.callback(service.close)
        service.migrate()
        for name, record in service.populate().items():
            console.print(f"  {name}: {record.total_codes:,} codes per cycle, ready (no fill)")

        if running:  # after the worker and beat stopped (callbacks run last first)
            stack.callback(_remove_namespace, console, settings)
        env = settings.to_env()
        coder_ring = [sys.executable, "-m", "coder_ring.celery.cli"]
        worker = Process(
            "worker",
            [*coder_ring, "worker", "--all", "--hostname=demo@%h", "--loglevel=INFO"],
            env,
            workdir / "worker.log",
        )
        beat = Process(
            "beat",
            [*coder_ring, "beat", f"--schedule={workdir / 'beat-schedule'}"],
            env,
            workdir / "beat.log",
        )
        for process in (worker, beat):
            stack.callback(process.stop, 30.0)  # graceful: the worker gives its pool back
            process.start()
        holder = _wait_for_holder(settings, "widget", worker)
        console.print(f"[bold]Worker[/]: {holder} holds ring widget")

        app = create_app(settings)
        stack.callback(app.close)
        get_code, get_codes, status = (
            app.ring_tasks.get_code,
            app.ring_tasks.get_codes,
            app.ring_tasks.status,
        )
        console.print('\n[bold]10 codes[/] from get_code.delay("widget").get():')
        # Every result is forgotten at the end (its key deleted from the result backend).
        sent = [get_code.delay("widget") for _ in range(10)]
        stack.callback(lambda: [result.forget() for result in sent])
        codes: list[str] = [result.get(timeout=CALL_TIMEOUT) for result in sent]
        for code in codes:
            console.print(f"  {code}")
        sent.append(get_codes.delay("doodad", 8))
        batch: list[str] = sent[-1].get(timeout=CALL_TIMEOUT)
        console.print(f'\n[bold]A batch[/] from get_codes.delay("doodad", 8): {" ".join(batch)}')

        table = Table(title="status")
        columns = ("ring", "total_codes", "remaining_in_cycle", "cycle", "pooled", "holder")
        for column in columns:
            table.add_column(column.replace("_", " "))
        for ring in ("widget", "doodad"):
            sent.append(status.delay(ring))
            report = sent[-1].get(timeout=CALL_TIMEOUT)
            table.add_row(*(Text(str(report[column])) for column in columns))
        console.print(table)
        if running:
            console.print("Stopping the worker (it gives its pooled codes back) and beat.")
        else:
            console.print("Stopping the worker (it gives its pooled codes back), beat and Redis.")
    return codes + batch


def _remove_namespace(console: Console, settings: WorkerSettings) -> None:
    removed = remove_namespace(settings)
    console.print(
        f"Removed the {removed} keys of namespace {settings.namespace}; left the running "
        "Redis alone."
    )
