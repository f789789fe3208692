"""What every ``coder-ring`` command shares: the invocation's context, the serving layer
the Celery layer plugs in, one-line errors, consoles and tables.

This module does not import Celery.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import click
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from coder_ring.errors import CoderRingError
from coder_ring.service import RingService
from coder_ring.settings import Settings, WorkerSettings
from coder_ring.sql.store import SqlStore
from coder_ring.status import RingStatus
from coder_ring.store import RingRecord

#: Every command takes -h as well as --help (set on each command, so a command keeps it
#: whatever group, or none, it is used in).
HELP = {"help_option_names": ["-h", "--help"]}
#: Exit code of a :class:`CoderRingError` (and of a refused confirmation).
EXIT_ERROR = 1
#: Shown in columns that have no value.
NO_VALUE = "-"
#: Widest table printed into a pipe or a file (a terminal's width is respected).
MAX_PIPE_WIDTH = 1000


class ServingLayer(Protocol):
    """What a serving layer (the Celery workers) adds to the engine's commands.

    Every method gets arguments already checked and raises a ``CoderRingError`` (one
    ``error:`` line) for anything that went wrong.
    """

    def get_codes(
        self,
        app: AppContext,
        ring: str,
        count: int,
        *,
        extra: str,
        bump: bool,
        timeout: float | None,
    ) -> Sequence[str]:
        """``count`` codes of ``ring`` from the worker serving it, in issue order."""

    def served(self, app: AppContext, statuses: Sequence[RingStatus]) -> list[RingStatus]:
        """``statuses`` with each ring's holder and its pool filled in."""

    def changed(self, app: AppContext, ring: str, record: RingRecord) -> str:
        """Tell the worker serving ``ring`` that it was reset or rebuilt (now at
        ``record``); wait until it took that up. A line to print."""


@dataclass
class AppContext:
    """The settings of one invocation (env, overridden by the global options), the
    serving layer, and the store and service built on first use. ``ctx.obj``."""

    settings: Settings
    layer: ServingLayer | None = None
    _store: SqlStore | None = field(default=None, repr=False)
    _service: RingService | None = field(default=None, repr=False)

    def store(self) -> SqlStore:
        """The store on ``settings.database_url`` (does not need the rings file)."""
        if self._store is None:
            self._store = SqlStore(self.settings.database_url)
        return self._store

    def worker_settings(self) -> WorkerSettings:
        """The worker settings of the environment, with this invocation's engine settings
        (--database-url, --config)."""
        return dataclasses.replace(WorkerSettings.from_env(), engine=self.settings)

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
    """A click group whose commands report engine and usage errors as one ``error:``
    line instead of a traceback or a usage block."""

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


def app_context(ctx: click.Context) -> AppContext:
    """The invocation's :class:`AppContext` (built from the environment if missing)."""
    app = ctx.find_object(AppContext)
    if app is None:  # a command invoked outside the group
        app = AppContext(Settings.from_env())
        ctx.obj = app
        ctx.call_on_close(app.close)
    return app


def out_console() -> Console:
    """Rich console on stdout (tables, summaries)."""
    return Console(highlight=False)


def print_table(table: Table) -> None:
    """Print ``table`` on stdout; into a pipe or file at its natural width, not 80 columns."""
    console = out_console()
    if not console.is_terminal:
        options = console.options.update_width(MAX_PIPE_WIDTH)
        console.width = max(console.width, Measurement.get(console, options, table).maximum)
    console.print(table)


def cell(value: object) -> Text:
    """A table cell showing ``value`` verbatim: text from callers or the database (an extra
    such as ``[/x]``) is never read as markup. None and "" show as ``-``."""
    return Text(NO_VALUE if value is None or value == "" else str(value))


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
