"""The ``coder-ring`` command: the engine's commands (:func:`coder_ring.cli.build_cli`)
with the Celery serving layer, plus ``worker``, ``beat``, ``workers`` and ``demo``.
This module only parses and calls.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
from rich import box
from rich.table import Table

from coder_ring.celery.cli_layer import CeleryLayer
from coder_ring.cli import PROG_NAME, build_cli
from coder_ring.cli_support import HELP, CliError, app_context, cell, print_table
from coder_ring.errors import CoderRingError
from coder_ring.metrics.database import metrics
from coder_ring.registry.roster import roster


@click.command(context_settings=HELP)
@click.argument("rings", nargs=-1, metavar="[RING]...")
@click.option("--all", "all_rings", is_flag=True, help="Serve every configured ring.")
@click.option("-n", "--hostname", default=None, help="Worker node name (default celery@HOST).")
@click.option(
    "--loglevel",
    default="WARNING",
    show_default=True,
    help="Celery's log level (coder_ring's own lines: lock won/lost, moves, are INFO).",
)
@click.pass_context
def worker(
    ctx: click.Context, rings: tuple[str, ...], all_rings: bool, hostname: str | None, loglevel: str
) -> None:
    """Run a ring worker. With --all it may serve every configured ring (and rings added
    to the rings file later); with RINGs only those. Rings are spread over all running
    workers; a worker that dies is replaced within 2x CODER_RING_LOCK_TTL. Same as:

    celery -A workers.app worker --pool solo --concurrency 1 --rings RING,...
    """
    app = app_context(ctx)
    if bool(rings) == all_rings:
        raise CliError("name the rings to serve, or pass --all (not both)")
    service = app.service()
    for ring in rings:
        service.ring(ring)  # UnknownRing names the configured rings
    from celery.utils.nodenames import default_nodename, host_format

    from coder_ring.celery.app import create_app

    # Started in-process rather than through Celery's command line, which loads every
    # command plugin (flower, click-repl...): about 17 MB less resident memory.
    celery = create_app(app.worker_settings())
    worker_process = celery.Worker(
        pool="solo",
        concurrency=1,
        loglevel=loglevel,
        hostname=host_format(default_nodename(hostname)),
        rings=",".join(rings) or "all",
        # Ring workers coordinate through the registry: Celery's mingle (a one-second
        # wait at start) and gossip (traffic every second) serve nothing here.
        without_mingle=True,
        without_gossip=True,
    )
    worker_process.start()
    raise SystemExit(worker_process.exitcode)


@click.command(context_settings=HELP)
@click.option("--loglevel", default="INFO", show_default=True, help="Celery log level.")
@click.option(
    "--schedule",
    type=click.Path(dir_okay=False),
    default=None,
    help="Beat's schedule file (default: in a temporary directory).",
)
@click.pass_context
def beat(ctx: click.Context, loglevel: str, schedule: str | None) -> None:
    """Run Celery beat: sends `refill` to every configured ring each
    CODER_RING_REFILL_INTERVAL seconds. Same as: celery -A workers.app beat
    """
    app = app_context(ctx)
    app.service()  # the rings file must be valid before beat starts
    from coder_ring.celery.app import create_app

    path = schedule or str(Path(tempfile.mkdtemp(prefix="coder_ring_beat_")) / "schedule")
    create_app(app.worker_settings()).start(
        ["beat", f"--loglevel={loglevel}", f"--schedule={path}"]
    )


@click.command(name="workers", context_settings=HELP)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.pass_context
def workers_command(ctx: click.Context, as_json: bool) -> None:
    """List the live ring workers of this namespace: the rings each may serve and holds,
    its heartbeat age, and whether it reaches its database."""
    settings = app_context(ctx).worker_settings()
    rows = roster(settings)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=list))
        return
    table = Table(
        title=f"coder_ring workers (namespace {settings.namespace})",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    for header in ("worker", "pid", "holds", "may serve", "heartbeat", "database", "role"):
        table.add_column(header)
    for row in rows:
        table.add_row(
            cell(row["node"]),
            cell(row["pid"]),
            cell(f"{len(row['holding'])}: {', '.join(row['holding'])}"),
            cell(len(row["rings"])),
            cell(f"{row['age']:.1f} s ago"),
            cell(row["database"] + ("" if row["healthy"] else " (unreachable)")),
            cell("coordinator" if row["coordinator"] else ""),
        )
    print_table(table)
    if not rows:
        click.echo("no worker is running in this namespace; start one: coder-ring worker --all")


@click.command(context_settings=HELP)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the demo keeps its SQLite file and rings file (default: a temp dir).",
)
def demo(workdir: str | None) -> None:
    """Everything in one command: an embedded SQLite file, a Redis (started here when
    none answers), migrate, a worker and beat in a namespace of their own; prints codes
    and the status, then stops all it started."""
    from coder_ring.celery.demo.run import run_demo

    run_demo(Path(workdir) if workdir else None)


def build() -> click.Group:
    """The whole ``coder-ring`` group."""
    group = build_cli(CeleryLayer())
    for command in (worker, beat, workers_command, demo, metrics):
        group.add_command(command)
    return group


def main() -> None:
    """Entry point of the ``coder-ring`` console script."""
    try:
        build()(prog_name=PROG_NAME)
    except CoderRingError as error:  # raised outside a command (e.g. by Celery's own CLI)
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
