"""The ``coder-ring`` command line in a test: :class:`Cli` runs a fresh group in this
process with click's runner, :class:`ScriptCli` through a real process (the console
script by default), :func:`run_many` several processes at once, and the checks of a
one-line error and of a status table's rows.

:data:`RINGS_TOML` is the engine CLI tests' rings file (``ready_cli`` migrates a
:class:`Cli`'s database).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from coder_ring import RingService, SqlStore, load_rings
from coder_ring.alphabet import ALPHABET
from coder_ring.cli import PROG_NAME, build_cli
from coder_ring.cli_support import ServingLayer

CONSOLE_SCRIPT = Path(sys.executable).parent / "coder-ring"
ENGINE_MODULE = (sys.executable, "-m", "coder_ring.cli")
CODE_CHAR = f"[{ALPHABET}]"

RINGS_TOML = """\
[rings.doodad]
base_length = 1

[rings.pair]
base_length = 2
profanity_filter = true
"""

Completed = subprocess.CompletedProcess


def clean_env() -> dict[str, str | None]:
    """No CODER_RING_* variable of the calling environment leaks into a test."""
    return {name: None for name in os.environ if name.startswith("CODER_RING_")}


@dataclass
class Cli:
    """Runs a fresh ``coder-ring`` group (``build_cli(layer)``) in this process, with
    ``database_url`` and ``config`` in the environment."""

    database_url: str
    #: The rings file (None: CODER_RING_CONFIG unset, the default path is read).
    config: Path | None
    layer: ServingLayer | None = None
    more_env: dict[str, str] = field(default_factory=dict)
    #: Builds the group to run (default: ``build_cli(layer)``, the engine's own).
    group: Callable[[], click.Group] | None = None

    def env(self) -> dict[str, str | None]:
        env = {**clean_env(), "CODER_RING_DATABASE_URL": self.database_url, **self.more_env}
        if self.config is not None:
            env["CODER_RING_CONFIG"] = str(self.config)
        return env

    def run(self, *args: str, input: str | None = None) -> Completed[str]:
        result = CliRunner().invoke(
            self.group() if self.group else build_cli(self.layer),
            list(args),
            input=input,
            env=self.env(),
            prog_name=PROG_NAME,
            catch_exceptions=False,  # a bug is a traceback here, not an exit code
        )
        return Completed(list(args), result.exit_code, result.stdout, result.stderr)

    def ok(self, *args: str, input: str | None = None) -> Completed[str]:
        done = self.run(*args, input=input)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    def status(self, *rings: str) -> dict[str, dict[str, Any]]:
        """``status --json``, by ring."""
        rows = json.loads(self.ok("status", "--json", *rings).stdout)
        return {row["ring"]: row for row in rows}

    def service(self) -> RingService:
        """The engine on the same database and rings file, in this process."""
        assert self.config is not None
        return RingService(SqlStore(self.database_url), load_rings(self.config))

    def draw(self, ring: str, count: int, extra: str = "") -> list[str]:
        """Codes drawn in-process, to set a test up."""
        service = self.service()
        try:
            return service.get_codes(ring, count, extra=extra)
        finally:
            service.close()

    def state(self, ring: str) -> dict[str, Any]:
        """Ring ``ring``'s status as the engine reads it."""
        service = self.service()
        try:
            return service.status(ring).as_dict()
        finally:
            service.close()


@dataclass
class ScriptCli(Cli):
    """:class:`Cli` through a real process: ``command`` (the console script by default)."""

    command: Sequence[str] = (str(CONSOLE_SCRIPT),)

    def process_env(self) -> dict[str, str]:
        env = {**os.environ, **{k: v for k, v in self.env().items() if v is not None}}
        return {k: v for k, v in env.items() if k in self.env() or not k.startswith("CODER_")}

    def run(self, *args: str, input: str | None = None) -> Completed[str]:
        return subprocess.run(
            [*self.command, *args],
            env=self.process_env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def run_all(self, *calls: Sequence[str]) -> list[Completed[str]]:
        """Run independent invocations at once (each pays the interpreter's start-up)."""
        return run_many([(self, args) for args in calls])


def run_many(invocations: Sequence[tuple[ScriptCli, Sequence[str]]]) -> list[Completed[str]]:
    """Run every ``(cli, args)`` at once; their results in the same order."""
    started = [
        subprocess.Popen(
            [*cli.command, *args],
            env=cli.process_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cli, args in invocations
    ]
    done = []
    try:
        for (_, args), process in zip(invocations, started, strict=True):
            stdout, stderr = process.communicate(timeout=90)
            done.append(Completed(list(args), process.returncode, stdout, stderr))
    finally:
        for process in started:  # none is left running, whatever happened
            if process.poll() is None:
                process.kill()
                process.communicate()
    return done


def assert_one_line_error(done: Completed[str], *named: str, code: int | None = None) -> str:
    """The command failed with exactly one ``error: ...`` line naming ``named``."""
    assert done.returncode != 0, (done.stdout, done.stderr)
    if code is not None:
        assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    for text in named:
        assert text in lines[0], (text, lines[0])
    assert done.stdout == ""
    return lines[0]


def table_rows(stdout: str) -> list[list[str]]:
    """The data rows of a status table (below its rule), split into cells."""
    lines = stdout.splitlines()
    rule = next(index for index, line in enumerate(lines) if line.strip().startswith("─"))
    return [line.split() for line in lines[rule + 1 :] if line.strip()]


def ready_cli(cli: Cli) -> Cli:
    """``cli`` with its database migrated (in-process: ``migrate`` has its own test)."""
    service = cli.service()
    try:
        service.migrate()
    finally:
        service.close()
    return cli
