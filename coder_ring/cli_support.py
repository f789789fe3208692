"""What every ``coder-ring`` command shares: the invocation's context, the hooks the
Celery layer fills, one-line errors, consoles, progress bars and tables.

This module does not import Celery.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import click
from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from coder_ring.config import RingConfig
from coder_ring.errors import CoderRingError
from coder_ring.service import ProgressFactory, RingService, RingStatus
from coder_ring.settings import Settings
from coder_ring.sql.store import SqlStore
from coder_ring.store import ProgressCallback

#: Exit code of a :class:`CoderRingError` (and of a refused confirmation).
EXIT_ERROR = 1
#: Shown in status columns that have no value (or no hook to give one).
NO_VALUE = "-"
#: Widest table printed into a pipe or a file (a terminal's width is respected).
MAX_PIPE_WIDTH = 1000


@dataclass
class AppContext:
    """The settings of one invocation (env, overridden by the global options), and the
    store and service built from them on first use. ``ctx.obj`` of every command."""

    settings: Settings
    _store: SqlStore | None = field(default=None, repr=False)
    _service: RingService | None = field(default=None, repr=False)

    def store(self) -> SqlStore:
        """The store on ``settings.database_url`` (does not need the rings file)."""
        if self._store is None:
            self._store = SqlStore(self.settings.database_url)
        return self._store

    def service(self) -> RingService:
        """The engine, serving the rings of ``settings.config_path``."""
        if self._service is None:
            rings = self.settings.load_rings()
            self._service = RingService(self.store(), rings)
        return self._service

    def close(self) -> None:
        """Release the database connections, if any were opened."""
        if self._store is not None:
            self._store.dispose()


class CeleryGet(Protocol):
    """How ``coder-ring get`` (without ``--direct``) obtains codes through Celery.

    Called with arguments already checked: ``ring`` is a well-formed ring name (whether it
    is configured is for the hook, or the worker, to say), ``count`` is in 1..10,000 and
    ``extra`` is a valid prefix. ``timeout`` is ``--timeout`` in seconds (None when not
    given). Returns the codes in issue order; raises a ``CoderRingError`` (one ``error:``
    line) for anything that went wrong.
    """

    def __call__(
        self,
        app: AppContext,
        ring: str,
        count: int,
        *,
        extra: str,
        bump: bool,
        timeout: float | None,
    ) -> Sequence[str]: ...


@dataclass(frozen=True)
class StatusExtras:
    """The Celery layer's columns of one ring in ``status`` (None shows as ``-``)."""

    lock_holder: str | None = None
    pool: str | int | None = None


#: ``(app, statuses) -> {ring name: StatusExtras}``; rings left out show ``-``.
StatusHook = Callable[[AppContext, Sequence[RingStatus]], Mapping[str, StatusExtras]]


class CliError(click.ClickException):
    """Ends the command with ``error: <message>`` on stderr and ``exit_code``."""

    exit_code = EXIT_ERROR

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {one_line(self.format_message())}", err=True)


class CliUsageError(CliError):
    """A usage error (bad option value, unknown command...), as one ``error:`` line."""

    exit_code = 2


def one_line(message: str) -> str:
    """``message`` with its lines joined (an error is reported on exactly one line)."""
    return " ".join(part.strip() for part in message.strip().splitlines() if part.strip())


def _usage_error(error: click.UsageError) -> click.ClickException:
    # Click 8.2+ shows the help (not an error) for a group called without a command.
    if type(error).__name__ == "NoArgsIsHelpError":
        return error
    hint = ""
    if error.ctx is not None:
        hint = f" (see '{error.ctx.command_path} --help')"
    message = error.format_message()
    return CliUsageError(message[:1].lower() + message[1:] + hint)


class RingGroup(click.Group):
    """A click group whose commands, and those the Celery layer adds, report engine and
    usage errors as one ``error:`` line instead of a traceback or a usage block."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:
            raise _usage_error(error) from None
        except CoderRingError as error:
            raise CliError(str(error)) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise _usage_error(error) from None
        except CoderRingError as error:
            raise CliError(str(error)) from None


# --------------------------------------------------------------------------------------
# Output helpers.


def out_console() -> Console:
    """Rich console on stdout (tables, summaries)."""
    return Console(highlight=False)


def err_console() -> Console:
    """Rich console on stderr (progress bars, so stdout stays parseable)."""
    return Console(stderr=True, highlight=False)


@contextmanager
def fill_progress() -> Iterator[ProgressFactory]:
    """A rich progress display on stderr, and a factory of one bar per ring filled.

    The display starts on the first report, so an already filled ring shows nothing.
    """
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("codes"),
        TimeElapsedColumn(),
        console=err_console(),
    )
    started: list[bool] = []

    def factory(ring: RingConfig) -> ProgressCallback:
        task: list[TaskID] = []

        def report(done: int, total: int) -> None:
            if not started:
                progress.start()
                started.append(True)
            if not task:
                task.append(progress.add_task(f"filling {ring.name}", total=total))
            progress.update(task[0], completed=done, total=total)

        return report

    try:
        yield factory
    finally:
        if started:
            progress.stop()


def app_context(ctx: click.Context) -> AppContext:
    """The invocation's :class:`AppContext` (built from the environment if missing)."""
    app = ctx.find_object(AppContext)
    if app is None:  # a command invoked outside the group
        app = AppContext(Settings.from_env())
        ctx.obj = app
        ctx.call_on_close(app.close)
    return app


#: The status table's headers and their alignment.
STATUS_COLUMNS: tuple[tuple[str, JustifyMethod], ...] = (
    ("ring", "left"),
    ("base\nlength", "right"),
    ("total", "right"),
    ("remaining\nin cycle", "right"),
    ("percent\nused", "right"),
    ("cycle", "right"),
    ("uniquizer", "left"),
    ("extra", "left"),
    ("epoch", "right"),
    ("filled", "left"),
    ("lock\nholder", "left"),
    ("pool", "left"),
)


def print_table(table: Table) -> None:
    """Print ``table`` on stdout; into a pipe or file at its natural width, not 80 columns."""
    console = out_console()
    if not console.is_terminal:
        options = console.options.update_width(MAX_PIPE_WIDTH)
        console.width = max(console.width, Measurement.get(console, options, table).maximum)
    console.print(table)


def cell(value: str | int | None) -> str:
    return NO_VALUE if value is None or value == "" else str(value)


def confirm(question: str, refused: str) -> None:
    """Ask ``question``; end the command (exit 1) with ``refused`` unless answered yes."""
    try:
        answered = click.confirm(question, default=False, err=True)
        if sys.stdin is None or not sys.stdin.isatty():
            click.echo(err=True)  # a piped answer is not echoed: end the prompt's line
    except click.Abort:  # no answer (end of input, Ctrl-C)
        answered = False
        click.echo(err=True)
    if not answered:
        click.echo(f"aborted: {refused}", err=True)
        raise click.exceptions.Exit(EXIT_ERROR)
