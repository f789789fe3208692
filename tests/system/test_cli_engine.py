"""The engine's command line (``coder_ring.cli.build_cli``) on SQLite and PostgreSQL.

Most tests run the group in this process with click's runner (quick: no interpreter
start-up per command), each with a fresh group from :func:`build_cli`, a real
database and a real rings file. :func:`test_the_console_scripts` runs the installed
``coder-ring`` script and ``python -m coder_ring.cli`` as subprocesses.

The serving layer (``get`` without ``--direct``, the holder and pool columns of
``status``, the worker told of a reset or rebuild) is a protocol the Celery layer
implements; :class:`RecordingLayer` is this test's own implementation of it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from coder_ring import RingService, SqlStore, StoreUnavailable, __version__, load_rings
from coder_ring.alphabet import ALPHABET
from coder_ring.cli import PROG_NAME, STATUS_HEADERS, build_cli
from coder_ring.cli_support import AppContext, ServingLayer
from coder_ring.config import sample_rings
from coder_ring.profanity import space_of
from coder_ring.status import RingStatus
from coder_ring.store import RingRecord

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).parent / "coder-ring"
ENGINE_MODULE = (sys.executable, "-m", "coder_ring.cli")
CODE_CHAR = f"[{ALPHABET}]"
ENGINE_COMMANDS = ("init", "migrate", "populate", "get", "status", "reset", "rebuild")
HEAD = "0002"  # the newest migration

RINGS_TOML = """\
[rings.doodad]
base_length = 1

[rings.pair]
base_length = 2
profanity_filter = true
"""
PAIR_CODES = space_of(2, True).total

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


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    config = tmp_path / "rings.toml"
    config.write_text(RINGS_TOML)
    return Cli(database_url, config)


@pytest.fixture
def sqlite_cli(sqlite_url: str, tmp_path: Path) -> Cli:
    config = tmp_path / "rings.toml"
    config.write_text(RINGS_TOML)
    return Cli(sqlite_url, config)


def ready_cli(cli: Cli) -> Cli:
    """``cli`` with its database migrated (in-process: ``migrate`` has its own test)."""
    service = cli.service()
    try:
        service.migrate()
    finally:
        service.close()
    return cli


@pytest.fixture
def ready(cli: Cli) -> Cli:
    return ready_cli(cli)


# --------------------------------------------------------------------------------------
# Help, version, usage errors


def test_help_of_every_command_and_the_version(sqlite_cli: Cli) -> None:
    group = build_cli()
    assert set(group.commands) == set(ENGINE_COMMANDS)
    for command in ENGINE_COMMANDS:
        for flag in ("--help", "-h"):
            done = sqlite_cli.ok(command, flag)
            assert done.stdout.startswith(f"Usage: coder-ring {command} "), done.stdout
    version = sqlite_cli.ok("--version").stdout
    assert version == f"coder-ring {__version__}\n"
    main_help = sqlite_cli.ok("--help").stdout
    for text in ("--database-url", "--config", "CODER_RING_DATABASE_URL", "CODER_RING_CONFIG"):
        assert text in main_help
    for command in ENGINE_COMMANDS:
        assert f"  {command} " in main_help
    get_help = sqlite_cli.ok("get", "--help").stdout
    for option in ("--count", "--extra", "--bump", "--direct", "--timeout"):
        assert option in get_help
    reset_help = " ".join(sqlite_cli.ok("reset", "-h").stdout.split())
    assert "--yes" in reset_help and "may be issued again" in reset_help
    assert_one_line_error(sqlite_cli.run("frobnicate"), "'frobnicate'", "--help", code=2)


#: Refused by click before anything runs (usage errors, exit 2).
BAD_USAGE = [
    (["-n", "abc"], ["'abc'", "-n"]),
    (["--timeout", "-1"], ["--timeout", "-1"]),
    (["--timeout", "soon"], ["--timeout", "'soon'"]),
    (["--bogus"], ["--bogus"]),
    (["--bump", "yes"], ["unexpected extra argument (yes)"]),
]


def test_usage_errors_are_one_line(sqlite_cli: Cli) -> None:
    for args, named in BAD_USAGE:
        assert_one_line_error(sqlite_cli.run("get", "doodad", "--direct", *args), *named, code=2)
    assert_one_line_error(sqlite_cli.run("get"), "missing argument 'RING'", code=2)
    assert_one_line_error(sqlite_cli.run("reset"), "missing argument 'RING'", code=2)
    assert_one_line_error(sqlite_cli.run("status", "--bogus"), "--bogus", code=2)


# --------------------------------------------------------------------------------------
# init, migrate, populate


def test_init_writes_a_rings_file_that_loads_and_never_overwrites(tmp_path: Path) -> None:
    cli = Cli(f"sqlite:///{tmp_path / 'rings.db'}", tmp_path / "etc" / "rings.toml")
    done = cli.ok("init")  # the --config path (here from the environment); dirs made
    assert str(cli.config) in done.stdout
    assert cli.config.read_text() == sample_rings()
    assert set(load_rings(cli.config)) == {"widget", "doodad"}
    # The repository's sample is the same file.
    assert (ROOT / "config" / "rings.toml").read_text() == sample_rings()

    elsewhere = tmp_path / "other.toml"
    assert str(elsewhere) in cli.ok("init", str(elsewhere)).stdout
    cli.config.write_text("[rings.mine]\n")
    for args in (("init",), ("init", str(cli.config)), ("--config", str(elsewhere), "init")):
        assert_one_line_error(cli.run(*args), "exists already", "not overwritten", code=1)
    assert cli.config.read_text() == "[rings.mine]\n"
    assert elsewhere.read_text() == sample_rings()


def test_migrate_is_idempotent_and_needs_no_rings_file(cli: Cli) -> None:
    cli.config.unlink()
    first = cli.ok("migrate").stdout
    assert "applied migration 0001" in first
    assert f"applied migration {HEAD}" in first
    assert f"schema created at revision {HEAD}" in first
    second = cli.ok("migrate").stdout
    assert f"already up to date (revision {HEAD})" in second
    assert "applied" not in second


def test_populate_registers_rings_without_filling(sqlite_cli: Cli) -> None:
    assert_one_line_error(sqlite_cli.run("populate"), "coder-ring migrate", code=1)
    ready_cli(sqlite_cli)
    populated = sqlite_cli.ok("populate")
    assert populated.stderr == ""  # nothing to fill: no progress bars
    first = populated.stdout.splitlines()
    assert first == [
        "doodad: ready, 32 codes per cycle (nothing to fill)",
        f"pair: ready, {PAIR_CODES:,} codes per cycle (nothing to fill)",
    ]
    state = sqlite_cli.state("doodad")
    assert (state["stored_positions"], state["extras"], state["remaining_in_cycle"]) == (0, [], 32)
    assert sqlite_cli.ok("populate", "pair").stdout.splitlines() == first[1:]
    line = assert_one_line_error(sqlite_cli.run("populate", "nosuch"), "'nosuch'", code=1)
    assert "doodad, pair" in line  # the configured rings are named
    sqlite_cli.config.write_text("")
    empty = sqlite_cli.ok("populate").stdout
    assert empty.strip() == f"no rings are configured in {sqlite_cli.config}"


# --------------------------------------------------------------------------------------
# get --direct


def test_get_direct_prints_distinct_codes(ready: Cli) -> None:
    codes = ready.ok("get", "doodad", "--direct", "-n", "5").stdout.splitlines()
    assert len(codes) == 5 and len(set(codes)) == 5
    assert all(re.fullmatch(CODE_CHAR, code) for code in codes), codes

    [one] = ready.ok("get", "pair", "--direct").stdout.splitlines()
    assert re.fullmatch(CODE_CHAR * 2, one)
    year = ready.ok("get", "pair", "--direct", "--extra", "2026", "--count", "3").stdout.split()
    assert len(set(year)) == 3
    assert all(re.fullmatch("2026" + CODE_CHAR * 2, code) for code in year), year
    [bumped] = ready.ok("get", "doodad", "--direct", "--bump").stdout.split()
    assert re.fullmatch("X" + CODE_CHAR, bumped), bumped

    doodad = ready.state("doodad")
    assert (doodad["cycle"], doodad["uniquizer"], doodad["remaining_in_cycle"]) == (1, "X", 31)
    assert ready.state("pair")["extra"] == "2026"


#: Refused by the engine (exit 1): the arguments, and the texts the error names.
BAD_DRAWS = [
    (["-n", "0"], ["invalid count 0"]),
    (["-n", "10001"], ["invalid count 10001", "from 1 to 10000"]),
    (["--extra", "a b"], ["invalid extra 'a b'"]),
    (["--extra", "x" * 33], ["invalid extra", "at most 32"]),
    (["--extra", "X"], ["extra 'X'", "extra ''"]),  # all-alphabet: could meet ""'s codes
    (["--extra", "hiX"], ["extra 'hiX'", "extra 'hi'"]),  # extends "hi" (used below)
]


def test_bad_draws_are_one_line_errors_and_change_nothing(ready: Cli) -> None:
    ready.draw("doodad", 2)
    ready.draw("doodad", 1, extra="hi")
    before = ready.state("doodad")
    for args, named in BAD_DRAWS:
        assert_one_line_error(ready.run("get", "doodad", "--direct", *args), *named, code=1)
    line = assert_one_line_error(ready.run("get", "nosuch", "--direct"), "'nosuch'", code=1)
    assert "doodad, pair" in line
    assert ready.state("doodad") == before  # not even a version bump
    codes = ready.ok("get", "doodad", "--direct", "-n", "30").stdout.split()
    assert len(set(codes)) == 30
    assert ready.state("doodad")["remaining_in_cycle"] == 0


def test_get_without_direct_needs_a_serving_layer(sqlite_cli: Cli) -> None:
    line = assert_one_line_error(sqlite_cli.run("get", "doodad", "--timeout", "2"), code=1)
    assert "--direct" in line and "worker" in line
    # Arguments are checked before the missing layer is reported.
    assert_one_line_error(sqlite_cli.run("get", "doodad", "-n", "0"), "invalid count 0", code=1)
    assert_one_line_error(sqlite_cli.run("get", "Bad-Name"), "invalid ring name 'Bad-Name'")


# --------------------------------------------------------------------------------------
# status


def test_status_one_row_per_ring_and_extra(ready: Cli) -> None:
    ready.draw("doodad", 5)
    ready.draw("pair", 3, extra="2026")
    ready.draw("pair", 1)

    rows = json.loads(ready.ok("status", "--json").stdout)
    service = ready.service()
    try:
        assert rows == [service.status(ring).as_dict() for ring in ("doodad", "pair")]
    finally:
        service.close()
    doodad, pair = rows
    assert set(doodad) == set(RingStatus.from_dict(doodad).as_dict())
    assert (doodad["total_codes"], doodad["remaining_in_cycle"]) == (32, 27)
    assert doodad["percent_used"] == pytest.approx(15.625)
    assert (doodad["holder"], doodad["pooled"]) == (None, None)
    assert [extra["extra"] for extra in pair["extras"]] == ["", "2026"]  # latest first
    assert [row["ring"] for row in json.loads(ready.ok("status", "--json", "pair").stdout)] == [
        "pair"
    ]

    table = ready.ok("status").stdout
    assert f"coder_ring rings ({SqlStore(ready.database_url).dialect})" in table
    for header in STATUS_HEADERS:
        for word in header.split("\n"):
            assert word in table, word
    assert table_rows(table) == [
        # ring, base length, codes per cycle, extra, cycle, uniquizer, remaining in
        # cycle, percent used, issued, pooled, holder, epoch
        ["doodad", "1", "32", '""', "0", "-", "27", "15.6%", "5", "-", "-", "0"],
        ["pair", "2", "1,024", '""', "0", "-", "1,023", "0.1%", "1", "-", "-", "0"],
        ["-", "-", "-", "2026", "0", "-", "1,021", "0.3%", "3", "-", "-", "-"],
    ]
    assert_one_line_error(ready.run("status", "nosuch"), "'nosuch'", code=1)


def test_status_of_rings_never_used_and_before_migrate(sqlite_cli: Cli) -> None:
    assert_one_line_error(sqlite_cli.run("status"), "coder-ring migrate", code=1)
    ready_cli(sqlite_cli)
    state = sqlite_cli.status()
    assert (state["doodad"]["total_codes"], state["doodad"]["remaining_in_cycle"]) == (32, 32)
    assert state["doodad"]["extras"] == []
    assert table_rows(sqlite_cli.ok("status", "doodad").stdout) == [
        ["doodad", "1", "32", "-", "0", "-", "32", "0.0%", "0", "-", "-", "0"]
    ]


# --------------------------------------------------------------------------------------
# reset, rebuild


def test_reset_asks_for_confirmation(ready: Cli) -> None:
    ready.draw("doodad", 5)
    ready.draw("doodad", 2, extra="hi")
    before = ready.state("doodad")

    refused = ready.run("reset", "doodad", input="n\n")
    assert refused.returncode == 1
    assert "Reset ring 'doodad'?" in refused.stderr and "may repeat codes" in refused.stderr
    assert "aborted: ring 'doodad' was not reset" in refused.stderr
    no_answer = ready.run("reset", "doodad")  # end of input: no answer is no
    assert no_answer.returncode == 1 and "was not reset" in no_answer.stderr
    assert_one_line_error(ready.run("reset", "nosuch", "--yes"), "'nosuch'", code=1)
    assert ready.state("doodad") == before

    done = ready.ok("reset", "doodad", "--yes")
    assert done.stdout.strip() == (
        f"ring 'doodad' reset: every extra starts at its first cycle, epoch "
        f"{before['epoch'] + 1}; codes issued before the reset may repeat"
    )
    after = ready.state("doodad")
    assert (after["extras"], after["remaining_in_cycle"]) == ([], 32)

    ready.draw("doodad", 2, extra="hi")
    assert "ring 'doodad' reset" in ready.ok("reset", "doodad", input="y\n").stdout
    assert ready.state("doodad")["extras"] == []


def test_rebuild_after_changing_base_length(ready: Cli) -> None:
    ready.draw("doodad", 3)
    ready.config.write_text(RINGS_TOML.replace("base_length = 1", "base_length = 2"))
    shown = ("base_length=1", "base_length=2", "coder-ring rebuild doodad")
    assert_one_line_error(ready.run("get", "doodad", "--direct"), *shown, code=1)
    assert_one_line_error(ready.run("populate", "doodad"), *shown, code=1)

    refused = ready.run("rebuild", "doodad", input="n\n")
    assert refused.returncode == 1
    assert "Rebuild ring 'doodad' (now base_length=1, profanity_filter=false) with" in (
        refused.stderr
    )
    assert "base_length=2" in refused.stderr and "was not rebuilt" in refused.stderr
    assert ready.state("doodad")["total_codes"] == 32

    done = ready.ok("rebuild", "doodad", "--yes")
    assert done.stderr == ""  # nothing to fill: no progress bars
    epoch = ready.state("doodad")["epoch"]
    assert done.stdout.strip() == (
        "ring 'doodad' rebuilt with base_length=2, profanity_filter=false: "
        f"1,024 codes per cycle, first cycle, epoch {epoch}"
    )
    state = ready.state("doodad")
    assert (state["base_length"], state["total_codes"], state["remaining_in_cycle"]) == (
        2,
        1024,
        1024,
    )
    codes = ready.ok("get", "doodad", "--direct", "-n", "4").stdout.split()
    assert len(set(codes)) == 4
    assert all(re.fullmatch(CODE_CHAR * 2, code) for code in codes), codes


# --------------------------------------------------------------------------------------
# Bad database URLs, bad rings files


def test_bad_database_urls_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "rings.toml"
    config.write_text(RINGS_TOML)
    cases = [
        ("nonsense", "invalid database URL 'nonsense'"),
        ("mysql://user@host/db", "unsupported database URL 'mysql://user@host/db'"),
        ("postgresql://user@host:5x32/db", "port is not a number"),
        ("postgresql://postgres@127.0.0.1:1/test", "127.0.0.1:1"),
        (f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", "unable to open database file"),
    ]
    valid = Cli(f"sqlite:///{tmp_path / 'valid.db'}", config)
    for url, named in cases:
        # From the global option (over a valid environment value)...
        assert_one_line_error(valid.run("--database-url", url, "migrate"), named, code=1)
        # ... and from the environment.
        assert_one_line_error(Cli(url, config).run("status"), named, code=1)
    assert not (tmp_path / "no").exists()
    assert not (tmp_path / "valid.db").exists()


def test_rings_file_errors(sqlite_cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    cli = Cli(sqlite_cli.database_url, missing)
    cli.ok("migrate")  # the schema does not depend on the rings file
    for args in (["populate"], ["get", "doodad", "--direct"], ["status"], ["reset", "doodad"]):
        assert_one_line_error(
            cli.run(*args),
            f"cannot read rings file {str(missing)!r}",
            "CODER_RING_CONFIG",
            "coder-ring init",
            code=1,
        )
    bad = tmp_path / "bad.toml"
    bad.write_text("[rings.doodad]\nbase_lenght = 1\n")
    # --config overrides the environment.
    assert_one_line_error(
        cli.run("--config", str(bad), "status"), "bad.toml", "'doodad'", "'base_lenght'", code=1
    )
    assert "doodad: ready" in cli.ok("--config", str(sqlite_cli.config), "populate").stdout


# --------------------------------------------------------------------------------------
# The serving layer seam


@dataclass
class RecordingLayer:
    """A :class:`~coder_ring.cli_support.ServingLayer` of this test's own: fixed answers,
    and a record of what the CLI asked."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)

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
        self.calls.append(("get", ring, count, extra, bump, timeout, app.settings.config_path))
        if ring == "pair":
            raise StoreUnavailable("the workers' broker is down")
        return [f"{extra}W{index}" for index in range(count)]

    def served(self, app: AppContext, statuses: Sequence[RingStatus]) -> list[RingStatus]:
        self.calls.append(("served", *(state.ring for state in statuses)))
        return [
            state.served_by("w1@host", {"": 7, "hi": 2}) if state.ring == "doodad" else state
            for state in statuses
        ]

    def changed(self, app: AppContext, ring: str, record: RingRecord) -> str:
        self.calls.append(("changed", ring, record.epoch))
        return f"the serving worker of {ring!r} took epoch {record.epoch} up"


def test_the_serving_layer_serves_get_status_and_hears_of_changes(sqlite_cli: Cli) -> None:
    layer = RecordingLayer()
    cli = ready_cli(Cli(sqlite_cli.database_url, sqlite_cli.config, layer))
    cli.draw("doodad", 3)

    done = cli.ok("get", "doodad", "-n", "3", "--extra", "hi", "--bump", "--timeout", "2.5")
    assert done.stdout.split() == ["hiW0", "hiW1", "hiW2"]
    assert cli.ok("get", "doodad").stdout.split() == ["W0"]
    assert layer.calls == [
        ("get", "doodad", 3, "hi", True, 2.5, cli.config),
        ("get", "doodad", 1, "", False, None, cli.config),
    ]
    layer.calls.clear()
    # --direct never asks the layer; arguments are checked before it is asked.
    assert re.fullmatch(CODE_CHAR, cli.ok("get", "doodad", "--direct").stdout.strip())
    assert_one_line_error(cli.run("get", "Bad-Name"), "invalid ring name 'Bad-Name'", code=1)
    assert_one_line_error(cli.run("get", "doodad", "--extra", "a b"), "invalid extra 'a b'")
    assert layer.calls == []
    # The layer's error is the command's one-line error.
    assert_one_line_error(cli.run("get", "pair"), "the workers' broker is down", code=1)

    layer.calls.clear()
    rows = {row["ring"]: row for row in json.loads(cli.ok("status", "--json").stdout)}
    assert layer.calls == [("served", "doodad", "pair")]
    assert (rows["doodad"]["holder"], rows["doodad"]["pooled"]) == ("w1@host", 9)
    pooled = {extra["extra"]: extra["pooled"] for extra in rows["doodad"]["extras"]}
    assert pooled == {"": 7, "hi": 2}  # "hi" has no row yet: only the worker knows it
    assert (rows["pair"]["holder"], rows["pair"]["pooled"]) == (None, None)
    assert table_rows(cli.ok("status").stdout) == [
        ["doodad", "1", "32", '""', "0", "-", "28", "12.5%", "4", "7", "w1@host", "0"],
        ["-", "-", "-", "hi", "0", "-", "32", "0.0%", "0", "2", "-", "-"],
        ["pair", "2", "1,024", "-", "0", "-", "1,024", "0.0%", "0", "-", "-", "0"],
    ]

    layer.calls.clear()
    reset = cli.ok("reset", "doodad", "--yes").stdout.splitlines()
    rebuilt = cli.ok("rebuild", "doodad", "--yes").stdout.splitlines()
    epoch = cli.state("doodad")["epoch"]
    assert layer.calls == [("changed", "doodad", epoch - 1), ("changed", "doodad", epoch)]
    assert reset[-1] == f"the serving worker of 'doodad' took epoch {epoch - 1} up"
    assert rebuilt[-1] == f"the serving worker of 'doodad' took epoch {epoch} up"
    # A refused confirmation tells no worker.
    assert cli.run("reset", "doodad", input="n\n").returncode == 1
    assert layer.calls[2:] == []


# --------------------------------------------------------------------------------------
# The console scripts


def test_the_console_scripts(sqlite_url: str, tmp_path: Path) -> None:
    # `make test` installs the package into the venv: the script must be there.
    assert CONSOLE_SCRIPT.exists(), f"{CONSOLE_SCRIPT} is not installed"
    config = tmp_path / "rings.toml"
    config.write_text(RINGS_TOML)
    script = ScriptCli(sqlite_url, config)
    engine = ScriptCli(sqlite_url, config, command=ENGINE_MODULE)
    Cli(sqlite_url, config).ok("migrate")  # in this process: quicker
    version, codes, bad, engine_help, no_layer = run_many(
        [
            (script, ["--version"]),
            (script, ["get", "doodad", "--direct", "-n", "5"]),
            (script, ["get", "doodad", "--direct", "-n", "0"]),
            (engine, ["--help"]),
            (engine, ["get", "doodad"]),
        ]
    )
    assert version.stdout == f"coder-ring {__version__}\n"
    assert codes.returncode == 0, codes.stderr
    assert len(set(codes.stdout.split())) == 5
    assert all(re.fullmatch(CODE_CHAR, code) for code in codes.stdout.split())
    assert_one_line_error(bad, "invalid count 0", code=1)
    # The engine's own group has no worker layer (nor its commands).
    assert not re.search(r"^  worker ", engine_help.stdout, re.MULTILINE), engine_help.stdout
    assert_one_line_error(no_layer, "no worker layer", "--direct", code=1)
