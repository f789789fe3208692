"""The engine's command line: ``coder-ring migrate | populate | get --direct | status | reset
| rebuild``.

This module does not import Celery. The Celery layer (``workers.cli``) builds on it:

* it adds its own commands to the :data:`cli` group (``worker``, ``beat``, ``bench``...);
* it sets :data:`CELERY_GET` so that ``coder-ring get`` without ``--direct`` asks a worker;
* it sets :data:`STATUS_EXTRAS` so that ``coder-ring status`` fills the ``lock holder`` and
  ``pool`` columns (``-`` without it).

Every :class:`~coder_ring.errors.CoderRingError` and every usage error ends the command with
one line ``error: <message>`` on stderr and a non-zero exit code (1 and 2), no traceback.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import click
from rich import box
from rich.table import Table

from coder_ring import __version__
from coder_ring.alphabet import ALPHABET
from coder_ring.cli_support import (
    EXIT_ERROR,
    NO_VALUE,
    STATUS_COLUMNS,
    AppContext,
    CeleryGet,
    CliError,
    RingGroup,
    StatusExtras,
    StatusHook,
    app_context,
    cell,
    confirm,
    fill_progress,
    one_line,
    out_console,
    print_table,
)
from coder_ring.config import RingConfig
from coder_ring.errors import CoderRingError
from coder_ring.service import RingStatus
from coder_ring.settings import (
    CONFIG_PATH_ENV,
    DATABASE_URL_ENV,
    DEFAULT_CONFIG_PATH,
    DEFAULT_DATABASE_URL,
    Settings,
)
from coder_ring.sql.migrations.heads import VERSION_TABLE
from coder_ring.sql.store import SqlStore
from coder_ring.validation import check_count, check_extra, check_ring_name

__all__ = [
    "CELERY_GET",
    "EXIT_ERROR",
    "STATUS_EXTRAS",
    "AppContext",
    "CliError",
    "StatusExtras",
    "app_context",
    "cli",
    "fill_progress",
    "main",
    "out_console",
]

PROG_NAME = "coder-ring"
_MIGRATIONS_DIR = Path(__file__).parent / "sql" / "migrations"


#: Set by the Celery layer: serves ``get`` without ``--direct``. None: only ``--direct``.
CELERY_GET: CeleryGet | None = None
#: Set by the Celery layer: the lock holder and pool of each ring, for ``status``.
STATUS_EXTRAS: StatusHook | None = None


def _shape(base_length: int, profanity_filter: bool) -> str:
    return f"base_length={base_length}, profanity_filter={str(profanity_filter).lower()}"


def _written(ring: RingConfig, rows: int) -> str:
    left_out = len(ALPHABET) ** ring.base_length - rows
    message = f"{ring.name}: {rows:,} codes written"
    if ring.profanity_filter:
        message += f" ({left_out:,} left out by the profanity filter)"
    return message


# --------------------------------------------------------------------------------------
# The group.


@click.group(cls=RingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name=PROG_NAME, message="%(prog)s %(version)s")
@click.option(
    "--database-url",
    metavar="URL",
    help=(
        f"SQLAlchemy URL of the rings database (postgresql://... or sqlite:///...). "
        f"Overrides ${DATABASE_URL_ENV}; default: {DEFAULT_DATABASE_URL}."
    ),
)
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help=(f"The rings file (TOML). Overrides ${CONFIG_PATH_ENV}; default: {DEFAULT_CONFIG_PATH}."),
)
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, config_path: str | None) -> None:
    """coder_ring: short, human-readable codes that never repeat within a cycle.

    Rings of codes live in a database (PostgreSQL or SQLite); the rings file defines them.
    Typical start: `coder-ring migrate`, `coder-ring populate`, then
    `coder-ring get RING --direct`.
    """
    settings = Settings.from_env()
    if database_url is not None:
        settings = dataclasses.replace(settings, database_url=database_url)
    if config_path is not None:
        settings = dataclasses.replace(settings, config_path=Path(config_path))
    app = AppContext(settings)
    ctx.obj = app
    ctx.call_on_close(app.close)


@cli.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Create or upgrade the database schema (safe to run again: it does nothing then).

    Does not need the rings file.
    """
    from alembic.script import ScriptDirectory

    store = app_context(ctx).store()
    where = store.engine.url.render_as_string(hide_password=True)
    before = _schema_revision(store)
    store.migrate()
    after = _schema_revision(store)
    if before == after:
        click.echo(f"schema already up to date (revision {after}) in {where}; nothing to do")
        return
    scripts = list(ScriptDirectory(str(_MIGRATIONS_DIR)).walk_revisions())
    scripts.reverse()  # oldest first
    revisions = [script.revision for script in scripts]
    start = revisions.index(before) + 1 if before in revisions else 0
    stop = revisions.index(after) + 1 if after in revisions else len(revisions)
    for script in scripts[start:stop]:
        doc = one_line(script.doc or "")
        click.echo(f"applied migration {script.revision}: {doc}")
    action = "created" if before is None else f"upgraded from revision {before}"
    click.echo(f"schema {action} at revision {after} in {where}")


def _schema_revision(store: SqlStore) -> str | None:
    from alembic.runtime.migration import MigrationContext

    # The store's own transaction turns database failures into one-line CoderRingErrors.
    with store._transaction() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        revision = context.get_current_revision()
    return None if revision is None else str(revision)


@cli.command()
@click.argument("rings", nargs=-1, metavar="[RING]...")
@click.pass_context
def populate(ctx: click.Context, rings: tuple[str, ...]) -> None:
    """Fill the code tables of RINGs (all configured rings by default) not yet filled.

    A ring already filled is left as it is. A fill is one transaction: an interrupted
    fill leaves nothing behind and the next populate does it again. Progress bars go to
    stderr, one line per ring to stdout.
    """
    app = app_context(ctx)
    service = app.service()
    chosen = service.select(rings)
    if not chosen:
        click.echo(f"no rings are configured in {app.settings.config_path}")
        return
    for ring in chosen:
        with fill_progress() as progress:
            rows = service.populate([ring.name], progress=progress)[ring.name]
        if rows:
            click.echo(_written(ring, rows))
        else:
            click.echo(f"{ring.name}: already filled")


@cli.command()
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
    help="Prefix of the codes (printable ASCII, no whitespace, at most 32 characters). "
    "A new extra starts the cycle over; going back to an earlier one can repeat codes.",
)
@click.option("--bump", is_flag=True, help="Start a new cycle first (after seeing a duplicate).")
@click.option(
    "--direct",
    is_flag=True,
    help="Draw in-process from the database, without Celery.",
)
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
    come from a Celery worker serving RING (needs the worker layer).
    """
    app = app_context(ctx)
    if direct:
        codes: Sequence[str] = app.service().get_codes(ring, count, extra=extra, bump=bump)
    else:
        check_ring_name(ring)
        check_count(count)
        check_extra(extra)
        hook = CELERY_GET
        if hook is None:
            raise CliError(
                f"no Celery layer is registered to serve ring {ring!r}: pass --direct to draw "
                "in-process from the database, or install the worker layer and run its "
                "coder-ring (with a worker serving the ring)"
            )
        codes = hook(app, ring, count, extra=extra, bump=bump, timeout=timeout)
    for code in codes:
        click.echo(code)


@cli.command()
@click.argument("rings", nargs=-1, metavar="[RING]...")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@click.pass_context
def status(ctx: click.Context, rings: tuple[str, ...], as_json: bool) -> None:
    """Show where RINGs (all configured rings by default) stand.

    Columns: base length, total codes, codes remaining in this cycle, percent of the cycle
    used, cycle number, uniquizer (prefix of this cycle's codes), last extra, epoch
    (fencing counter), whether the table is filled, and, from the worker layer, the lock
    holder and the worker's pool ("-" without it).
    """
    app = app_context(ctx)
    service = app.service()
    statuses = [service.status(ring.name) for ring in service.select(rings)]
    extras = _status_extras(app, statuses)
    if as_json:
        rows = []
        for state in statuses:
            row = state.as_dict()
            row["percent_used"] = round(state.percent_used, 3)
            more = extras.get(state.ring, StatusExtras())
            row["lock_holder"] = more.lock_holder
            row["pool"] = more.pool
            rows.append(row)
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(
        title=f"coder_ring rings ({app.store().dialect})",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        collapse_padding=True,
    )
    for header, justify in STATUS_COLUMNS:
        table.add_column(header, justify=justify, overflow="fold", no_wrap=header == "ring")
    for state in statuses:
        more = extras.get(state.ring, StatusExtras())
        table.add_row(
            state.ring,
            str(state.base_length),
            f"{state.total_codes:,}",
            f"{state.remaining_in_cycle:,}",
            f"{state.percent_used:.1f}%",
            str(state.cycle),
            state.uniquizer or NO_VALUE,
            state.extra or NO_VALUE,
            str(state.epoch),
            "yes" if state.filled else "no",
            cell(more.lock_holder),
            cell(more.pool),
        )
    print_table(table)


def _status_extras(app: AppContext, statuses: Sequence[RingStatus]) -> Mapping[str, StatusExtras]:
    hook = STATUS_EXTRAS
    if hook is None:
        return {}
    try:
        return hook(app, statuses)
    except CoderRingError as error:
        # The engine's columns are still worth showing when the worker layer cannot answer.
        click.echo(f"warning: lock holder and pool unavailable: {one_line(str(error))}", err=True)
        return {}


@cli.command()
@click.argument("ring")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def reset(ctx: click.Context, ring: str, yes: bool) -> None:
    """Start RING over: first cycle, no uniquizer, no extra.

    Codes issued before the reset may be issued again. The ring moves to a new epoch,
    which fences its current holder (a worker must claim it again). Asks for confirmation
    unless --yes.
    """
    service = app_context(ctx).service()
    service.ring(ring)
    if not yes:
        confirm(
            f"Reset ring {ring!r}? It starts over at the first cycle and may repeat codes "
            "issued before the reset.",
            f"ring {ring!r} was not reset",
        )
    record = service.reset(ring)
    click.echo(
        f"ring {ring!r} reset: first cycle, {record.boundary:,} of {record.total_codes:,} codes "
        f"remaining, epoch {record.epoch}; codes issued before the reset may repeat"
    )


@cli.command()
@click.argument("ring")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def rebuild(ctx: click.Context, ring: str, yes: bool) -> None:
    """Restart RING with the shape the rings file gives it now.

    For a ring whose base_length or profanity_filter was changed in the rings file: its
    code table is filled anew and the first cycle starts over, so codes issued before may
    be issued again. Asks for confirmation unless --yes.
    """
    app = app_context(ctx)
    service = app.service()
    config = service.ring(ring)
    stored = app.store().record(ring)
    if not yes:
        now = (
            f"now {_shape(stored.base_length, stored.profanity_filter)}"
            if stored is not None and stored.filled
            else "not filled yet"
        )
        confirm(
            f"Rebuild ring {ring!r} ({now}) with "
            f"{_shape(config.base_length, config.profanity_filter)}? "
            "Its table is filled anew and it starts over at the first cycle; codes issued "
            "before may be issued again.",
            f"ring {ring!r} was not rebuilt",
        )
    with fill_progress() as progress:
        rows = service.rebuild(ring, progress=progress(config))
    click.echo(
        f"ring {ring!r} rebuilt with {_shape(config.base_length, config.profanity_filter)}: "
        f"{rows:,} codes, first cycle"
    )


def main() -> None:
    """Entry point of the ``coder-ring`` console script."""
    cli(prog_name=PROG_NAME)


if __name__ == "__main__":
    main()
