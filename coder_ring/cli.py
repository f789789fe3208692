"""The engine's command line: ``coder-ring init | migrate | populate | get --direct |
status | reset | rebuild``, built by :func:`build_cli`.

This module does not import Celery. The Celery layer (``coder_ring.celery.cli``) calls
:func:`build_cli` with its :class:`~coder_ring.cli_support.ServingLayer` (``get``
without ``--direct``, the holder and pool columns of ``status``, telling the serving
worker about a reset or rebuild) and adds its own commands to the group.

Every :class:`~coder_ring.errors.CoderRingError` and every usage error ends the command
with one line ``error: <message>`` on stderr and a non-zero exit code (1 and 2).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import click
from rich import box
from rich.table import Table

from coder_ring import __version__
from coder_ring.cli_support import (
    HELP,
    AppContext,
    CliError,
    RingGroup,
    ServingLayer,
    app_context,
    cell,
    confirm,
    one_line,
    print_table,
)
from coder_ring.config import sample_rings
from coder_ring.operations import shape
from coder_ring.settings import (
    CONFIG_PATH_ENV,
    DATABASE_URL_ENV,
    DEFAULT_CONFIG_PATH,
    DEFAULT_DATABASE_URL,
    Settings,
)
from coder_ring.sql.migrations.heads import VERSION_TABLE
from coder_ring.sql.store import MIGRATIONS_DIR, SqlStore
from coder_ring.status import RingStatus
from coder_ring.validation import check_count, check_extra, check_ring_name

PROG_NAME = "coder-ring"

#: The status table's headers, one row per (ring, extra).
STATUS_HEADERS = (
    "ring",
    "base\nlength",
    "codes per\ncycle",
    "extra",
    "cycle",
    "uniquizer",
    "remaining\nin cycle",
    "percent\nused",
    "issued",
    "received",
    "pooled",
    "holder",
    "epoch",
)


def build_cli(layer: ServingLayer | None = None) -> click.Group:
    """The ``coder-ring`` group with the engine's commands; ``layer`` serves ``get``
    without ``--direct`` and the holder columns of ``status`` (none: direct only)."""

    @click.group(cls=RingGroup, context_settings=HELP)
    @click.version_option(
        __version__, "--version", prog_name=PROG_NAME, message="%(prog)s %(version)s"
    )
    @click.option(
        "--database-url",
        metavar="URL",
        help=(
            "SQLAlchemy URL of the rings database (postgresql://... or sqlite:///...). "
            f"Overrides ${DATABASE_URL_ENV}; default: {DEFAULT_DATABASE_URL}."
        ),
    )
    @click.option(
        "--config",
        "config_path",
        metavar="PATH",
        help=(
            f"The rings file (TOML). Overrides ${CONFIG_PATH_ENV}; default: {DEFAULT_CONFIG_PATH}."
        ),
    )
    @click.pass_context
    def cli(ctx: click.Context, database_url: str | None, config_path: str | None) -> None:
        """coder_ring: short, human-readable codes that never repeat.

        Rings of codes live in a database (PostgreSQL or SQLite); the rings file defines
        them. Typical start: `coder-ring init`, `coder-ring migrate`, then
        `coder-ring get RING --direct` (or a worker: `coder-ring worker --all`).
        """
        settings = Settings.from_env()
        if database_url is not None:
            settings = dataclasses.replace(settings, database_url=database_url)
        if config_path is not None:
            settings = dataclasses.replace(settings, config_path=Path(config_path))
        app = AppContext(settings, layer)
        ctx.obj = app
        ctx.call_on_close(app.close)

    for command in (init, migrate, populate, get, status, reset, rebuild):
        cli.add_command(command)
    return cli


@click.command(context_settings=HELP)
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def init(ctx: click.Context, path: str | None) -> None:
    """Write a commented rings file at PATH (default: the --config path). Refuses to
    overwrite an existing file."""
    target = Path(path) if path else app_context(ctx).settings.config_path
    if target.exists():
        raise CliError(f"{str(target)!r} exists already; not overwritten")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(sample_rings(), encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot write {str(target)!r}: {error.strerror}") from None
    click.echo(f"wrote {target}: two sample rings, widget and doodad; edit it to your rings")


@click.command(context_settings=HELP)
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the database schema (safe to run again: it does nothing then).

    Does not need the rings file.
    """
    from alembic.script import ScriptDirectory

    store = app_context(ctx).store()
    before = _schema_revision(store)
    store.migrate()
    after = _schema_revision(store)
    if before == after:
        click.echo(f"schema already up to date (revision {after}) in {store.where}; nothing to do")
        return
    scripts = list(ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions())
    scripts.reverse()  # oldest first
    revisions = [script.revision for script in scripts]
    start = revisions.index(before) + 1 if before in revisions else 0
    stop = revisions.index(after) + 1 if after in revisions else len(revisions)
    for script in scripts[start:stop]:
        click.echo(f"applied migration {script.revision}: {one_line(script.doc or '')}")
    action = "created" if before is None else f"upgraded from revision {before}"
    click.echo(f"schema {action} at revision {after} in {store.where}")


def _schema_revision(store: SqlStore) -> str | None:
    from alembic.runtime.migration import MigrationContext

    # The store's own transaction turns database failures into one-line CoderRingErrors.
    with store.transaction() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        revision = context.get_current_revision()
    return None if revision is None else str(revision)


@click.command(context_settings=HELP)
@click.argument("rings", nargs=-1, metavar="[RING]...")
@click.pass_context
def populate(ctx: click.Context, rings: tuple[str, ...]) -> None:
    """Check RINGs (all configured rings by default) against the database and register
    them. Rings need no fill: kept so that existing scripts go on working."""
    app = app_context(ctx)
    service = app.service()
    if not service.select(rings):
        click.echo(f"no rings are configured in {app.settings.config_path}")
        return
    for name, record in service.populate(rings).items():
        click.echo(f"{name}: ready, {record.total_codes:,} codes per cycle (nothing to fill)")


@click.command(context_settings=HELP)
@click.argument("ring")
@click.option(
    "-n",
    "--count",
    type=int,
    default=1,
    show_default=True,
    help="How many codes to draw (1 to 10,000), in one transaction.",
)
@click.option(
    "--extra",
    default="",
    metavar="E",
    help="Prefix of the codes, with its own cycle (printable ASCII, no whitespace, at most "
    "32 characters, not only alphabet characters).",
)
@click.option("--bump", is_flag=True, help="Start the next cycle first (after seeing a duplicate).")
@click.option("--direct", is_flag=True, help="Draw in-process from the database, without Celery.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="S",
    help="Seconds to wait for a worker (Celery path only; ignored with --direct).",
)
@click.pass_context
def get(
    ctx: click.Context,
    *,
    ring: str,
    count: int,
    extra: str,
    bump: bool,
    direct: bool,
    timeout: float | None,
) -> None:
    """Draw codes from RING and print them, one per line, in issue order.

    With --direct the codes are drawn here, straight from the database. Without it they
    come from the worker serving RING.
    """
    app = app_context(ctx)
    if direct:
        codes: Sequence[str] = app.service().get_codes(ring, count, extra=extra, bump=bump)
    else:
        check_ring_name(ring)
        check_count(count)
        check_extra(extra)
        if app.layer is None:
            raise CliError(
                f"no worker layer is installed to serve ring {ring!r}: pass --direct to draw "
                "in-process from the database"
            )
        codes = app.layer.get_codes(app, ring, count, extra=extra, bump=bump, timeout=timeout)
    for code in codes:
        click.echo(code)


@click.command(context_settings=HELP)
@click.argument("rings", nargs=-1, metavar="[RING]...")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.pass_context
def status(ctx: click.Context, rings: tuple[str, ...], as_json: bool) -> None:
    """Show where RINGs (all configured rings by default) stand: one row per extra used,
    latest first, with its cycle, uniquizer, codes remaining in the cycle (not counting
    those a worker drew ahead: "pooled"), codes issued, the worker holding the ring and
    the ring's epoch (fencing counter)."""
    app = app_context(ctx)
    service = app.service()
    statuses = [service.status(ring.name) for ring in service.select(rings)]
    if app.layer is not None:
        statuses = app.layer.served(app, statuses)
    if as_json:
        click.echo(json.dumps([state.as_dict() for state in statuses], indent=2))
        return
    table = Table(
        title=f"coder_ring rings ({app.store().dialect})",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
    )
    for header in STATUS_HEADERS:
        left = header in {"ring", "extra", "uniquizer", "holder"}
        table.add_column(
            header, justify="left" if left else "right", overflow="fold", no_wrap=header == "ring"
        )
    for state in statuses:
        _status_rows(table, state)
    print_table(table)


def _status_rows(table: Table, state: RingStatus) -> None:
    extras = state.extras or (None,)
    for index, extra in enumerate(extras):
        first = index == 0
        table.add_row(
            cell(state.ring if first else ""),
            cell(state.base_length if first else ""),
            cell(f"{state.total_codes:,}" if first else ""),
            cell((state.extra if extra is None else extra.extra) or '""'),
            cell(state.cycle if extra is None else extra.cycle),
            cell(None if extra is None else extra.uniquizer),
            cell(f"{state.remaining_in_cycle if extra is None else extra.remaining_in_cycle:,}"),
            cell(f"{state.percent_used if extra is None else extra.percent_used:.1f}%"),
            cell(0 if extra is None else f"{extra.issued:,}"),
            cell(state.received if extra is None else extra.received),
            cell(state.pooled if extra is None else extra.pooled),
            cell(state.holder if first else ""),
            cell(state.epoch if first else ""),
        )


@click.command(context_settings=HELP)
@click.argument("ring")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def reset(ctx: click.Context, ring: str, yes: bool) -> None:
    """Start every extra of RING over at its first cycle.

    Codes issued before the reset may be issued again. The ring moves to a new epoch,
    which fences its current holder; the serving worker is told and drops its pool before
    this command returns. Asks for confirmation unless --yes.
    """
    app = app_context(ctx)
    service = app.service()
    service.ring(ring)
    if not yes:
        confirm(
            f"Reset ring {ring!r}? Every extra starts over at its first cycle and may repeat "
            "codes issued before the reset.",
            f"ring {ring!r} was not reset",
        )
    record = service.reset(ring)
    click.echo(
        f"ring {ring!r} reset: every extra starts at its first cycle, epoch {record.epoch}; "
        "codes issued before the reset may repeat"
    )
    if app.layer is not None:
        click.echo(app.layer.changed(app, ring, record))


@click.command(context_settings=HELP)
@click.argument("ring")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def rebuild(ctx: click.Context, ring: str, yes: bool) -> None:
    """Restart RING with the shape the rings file gives it now.

    For a ring whose base_length or profanity_filter was changed in the rings file: every
    extra starts over at the first cycle, so codes issued before may be issued again.
    Asks for confirmation unless --yes.
    """
    app = app_context(ctx)
    service = app.service()
    config = service.ring(ring)
    stored = app.store().ring_record(ring)
    if not yes:
        now = (
            "new" if stored is None else f"now {shape(stored.base_length, stored.profanity_filter)}"
        )
        confirm(
            f"Rebuild ring {ring!r} ({now}) with "
            f"{shape(config.base_length, config.profanity_filter)}? Every extra starts over "
            "at the first cycle; codes issued before may be issued again.",
            f"ring {ring!r} was not rebuilt",
        )
    record = service.rebuild(ring)
    click.echo(
        f"ring {ring!r} rebuilt with {shape(config.base_length, config.profanity_filter)}: "
        f"{record.total_codes:,} codes per cycle, first cycle, epoch {record.epoch}"
    )
    if app.layer is not None:
        click.echo(app.layer.changed(app, ring, record))


def main() -> None:
    """Entry point of an engine-only ``coder-ring`` (no worker layer)."""
    build_cli()(prog_name=PROG_NAME)


if __name__ == "__main__":
    main()
