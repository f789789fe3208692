"""The engine's CLI end to end, in real subprocesses, on SQLite and PostgreSQL.

Most commands run as ``python -m coder_ring.cli`` (the engine's own CLI, whatever the
``coder-ring`` script is pointed at later); :func:`test_console_script` checks the
installed ``coder-ring`` script itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from coder_ring import RingService, SqlStore, load_rings
from coder_ring.alphabet import ALPHABET

ENGINE_CLI = [sys.executable, "-m", "coder_ring.cli"]
CONSOLE_SCRIPT = Path(sys.executable).parent / "coder-ring"
CODE_CHAR = f"[{ALPHABET}]"

RINGS_TOML = """\
[rings.doodad]
base_length = 1

[rings.pair]
base_length = 2
profanity_filter = true
"""


@dataclass
class Cli:
    """Runs the CLI against one database and one rings file."""

    database_url: str
    config: Path
    command: Sequence[str] = tuple(ENGINE_CLI)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODER_RING_")}
        env["CODER_RING_DATABASE_URL"] = self.database_url
        env["CODER_RING_CONFIG"] = str(self.config)
        return env

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, *args],
            env=self.env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def run_all(self, *calls: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
        """Run independent invocations at once (each pays the interpreter's start-up)."""
        started = [
            (
                list(args),
                subprocess.Popen(
                    [*self.command, *args],
                    env=self.env(),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
            for args in calls
        ]
        done = []
        for args, process in started:
            stdout, stderr = process.communicate(timeout=60)
            done.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
        return done

    def ok(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, input=input)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    def status(self, *rings: str) -> dict[str, dict[str, Any]]:
        """``status --json``, by ring."""
        rows = json.loads(self.ok("status", "--json", *rings).stdout)
        return {row["ring"]: row for row in rows}

    def service(self) -> RingService:
        """The engine on the same database and rings file, in this process."""
        return RingService(SqlStore(self.database_url), load_rings(self.config))

    def draw(self, ring: str, count: int, extra: str = "") -> list[str]:
        """Codes drawn in-process, to set a test up."""
        service = self.service()
        try:
            return service.get_codes(ring, count, extra=extra)
        finally:
            service.close()

    def state(self, ring: str) -> dict[str, object]:
        """Ring ``ring``'s status read in-process (quicker than a subprocess)."""
        service = self.service()
        try:
            return service.status(ring).as_dict()
        finally:
            service.close()


def assert_one_line_error(
    done: subprocess.CompletedProcess[str], *named: str, code: int | None = None
) -> str:
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


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    config = tmp_path / "rings.toml"
    config.write_text(RINGS_TOML)
    return Cli(database_url, config)


def ready_cli(cli: Cli) -> Cli:
    """``cli`` with its database migrated and populated (in-process: quicker, and the
    commands themselves are tested on their own)."""
    service = cli.service()
    try:
        service.migrate()
        service.populate()
    finally:
        service.close()
    return cli


@pytest.fixture
def ready(cli: Cli) -> Cli:
    """Migrated and populated."""
    return ready_cli(cli)


def test_migrate_is_idempotent(cli: Cli) -> None:
    first = cli.ok("migrate").stdout
    assert "applied migration 0001" in first
    assert "schema created at revision 0001" in first
    second = cli.ok("migrate").stdout
    assert "already up to date (revision 0001)" in second
    assert "applied" not in second


def test_populate_shows_progress_and_rows(cli: Cli) -> None:
    cli.ok("migrate")
    first = cli.ok("populate")
    assert "doodad: 32 codes written" in first.stdout
    assert "pair: 1,024 codes written (0 left out by the profanity filter)" in first.stdout
    # The progress bars go to stderr (stdout stays one line per ring).
    assert re.search(r"filling doodad .*32/32", first.stderr), first.stderr
    assert re.search(r"filling pair .*1024/1024", first.stderr), first.stderr

    again = cli.ok("populate", "pair")
    assert again.stdout.splitlines() == ["pair: already filled"]
    assert again.stderr == ""

    assert_one_line_error(cli.run("populate", "nosuch"), "'nosuch'", "doodad, pair", code=1)


def test_get_direct_prints_distinct_codes(ready: Cli) -> None:
    codes = ready.ok("get", "doodad", "--direct", "-n", "5").stdout.splitlines()
    assert len(codes) == 5
    assert len(set(codes)) == 5
    assert all(re.fullmatch(CODE_CHAR, code) for code in codes), codes

    [one] = ready.ok("get", "pair", "--direct").stdout.splitlines()
    assert re.fullmatch(CODE_CHAR * 2, one)
    extra = ready.ok("get", "pair", "--direct", "--extra", "26", "--count", "3").stdout.split()
    assert len(set(extra)) == 3
    assert all(re.fullmatch("26" + CODE_CHAR * 2, code) for code in extra), extra
    [bumped] = ready.ok("get", "doodad", "--direct", "--bump").stdout.split()
    assert re.fullmatch("X" + CODE_CHAR, bumped), bumped

    assert ready.state("doodad")["cycle"] == 1
    assert ready.state("doodad")["remaining_in_cycle"] == 31
    assert ready.state("pair")["extra"] == "26"


#: Refused by the engine (exit 1), on each database.
BAD_DRAWS = [
    (["-n", "0"], ["invalid count 0"]),
    (["-n", "10001"], ["invalid count 10001"]),
    (["--extra", "a b"], ["invalid extra 'a b'"]),
    (["--extra", "x" * 33], ["invalid extra"]),
]
#: Refused by click before anything runs (usage errors, exit 2).
BAD_USAGE = [
    (["-n", "abc"], ["'abc'", "-n"]),
    (["--timeout", "-1"], ["--timeout", "-1"]),
    (["--timeout", "soon"], ["--timeout", "'soon'"]),
    (["--bogus"], ["--bogus"]),
]


def test_get_bad_arguments_are_one_line_errors(ready: Cli) -> None:
    ready.draw("doodad", 2)
    before = ready.state("doodad")
    calls = [["get", "doodad", "--direct", *args] for args, _ in BAD_DRAWS]
    *refused, unknown = ready.run_all(*calls, ["get", "nosuch", "--direct"])
    for done, (_, named) in zip(refused, BAD_DRAWS, strict=True):
        assert_one_line_error(done, *named, code=1)
    line = assert_one_line_error(unknown, "'nosuch'", code=1)
    assert "doodad, pair" in line  # the configured rings are named
    assert ready.state("doodad") == before  # nothing changed: the cycle goes on
    codes = ready.ok("get", "doodad", "--direct", "-n", "30").stdout.split()
    assert len(set(codes)) == 30
    assert ready.state("doodad")["remaining_in_cycle"] == 0


def test_get_usage_errors_are_one_line(sqlite_url: str, tmp_path: Path) -> None:
    cli = Cli(sqlite_url, tmp_path / "rings.toml")
    *refused, missing = cli.run_all(
        *(["get", "doodad", "--direct", *args] for args, _ in BAD_USAGE), ["get"]
    )
    for done, (_, named) in zip(refused, BAD_USAGE, strict=True):
        assert_one_line_error(done, *named, code=2)
    assert_one_line_error(missing, "missing argument 'RING'", code=2)


def test_get_without_direct_needs_the_worker_layer(sqlite_url: str, tmp_path: Path) -> None:
    config = tmp_path / "rings.toml"
    config.write_text(RINGS_TOML)
    cli = Cli(sqlite_url, config)
    no_layer, bad_count = cli.run_all(
        ["get", "doodad", "--timeout", "2"], ["get", "doodad", "-n", "0"]
    )
    line = assert_one_line_error(no_layer, "--direct", code=1)
    assert "worker" in line
    # Arguments are checked before the missing layer is reported.
    assert_one_line_error(bad_count, "invalid count 0", code=1)


def test_status_table_and_json(ready: Cli) -> None:
    ready.draw("doodad", 5)
    ready.draw("pair", 3, extra="26")

    json_all, json_pair, table_run, unknown = ready.run_all(
        ["status", "--json"], ["status", "--json", "pair"], ["status"], ["status", "nosuch"]
    )
    assert json_all.returncode == 0, json_all.stderr
    state = {row["ring"]: row for row in json.loads(json_all.stdout)}
    assert list(state) == ["doodad", "pair"]
    doodad = state["doodad"]
    assert doodad["base_length"] == 1
    assert doodad["total_codes"] == 32
    assert doodad["remaining_in_cycle"] == 27
    assert doodad["percent_used"] == pytest.approx(15.625)
    assert doodad["cycle"] == 0
    assert doodad["uniquizer"] == ""
    assert doodad["filled"] is True
    assert doodad["lock_holder"] is None
    assert doodad["pool"] is None
    assert isinstance(doodad["epoch"], int)
    assert state["pair"]["remaining_in_cycle"] == 1021
    assert state["pair"]["extra"] == "26"
    assert state["pair"]["profanity_filter"] is True
    assert [row["ring"] for row in json.loads(json_pair.stdout)] == ["pair"]

    assert table_run.returncode == 0, table_run.stderr
    table = table_run.stdout
    for header in ("ring", "base", "total", "remaining", "used", "cycle", "uniquizer"):
        assert header in table
    for header in ("extra", "epoch", "filled", "lock", "holder", "pool"):
        assert header in table
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    # ring, base length, total, remaining, used, cycle, uniquizer, extra, epoch, filled,
    # lock holder, pool: one row per ring, never folded when printed into a pipe.
    assert rows["doodad"][:8] == ["doodad", "1", "32", "27", "15.6%", "0", "-", "-"]
    assert rows["doodad"][9:] == ["yes", "-", "-"]
    assert rows["pair"][:8] == ["pair", "2", "1,024", "1,021", "0.3%", "0", "-", "26"]

    assert_one_line_error(unknown, "'nosuch'", code=1)


def test_status_before_populate(cli: Cli) -> None:
    assert_one_line_error(cli.run("status"), "coder-ring migrate", code=1)
    cli.ok("migrate")
    state = cli.status()
    assert state["doodad"]["filled"] is False
    assert state["doodad"]["total_codes"] == 0
    assert_one_line_error(cli.run("get", "doodad", "--direct"), "coder-ring populate", code=1)


def test_reset_asks_for_confirmation(ready: Cli) -> None:
    ready.draw("doodad", 5)
    before = ready.state("doodad")

    refused = ready.run("reset", "doodad", input="n\n")
    assert refused.returncode == 1
    assert "may repeat codes" in refused.stderr
    assert "aborted: ring 'doodad' was not reset" in refused.stderr
    assert "Traceback" not in refused.stderr
    no_answer, unknown = ready.run_all(["reset", "doodad"], ["reset", "nosuch", "--yes"])
    assert no_answer.returncode == 1  # end of input: no answer is no
    assert "was not reset" in no_answer.stderr
    assert_one_line_error(unknown, "'nosuch'", code=1)
    assert ready.state("doodad") == before

    done = ready.ok("reset", "doodad", "--yes")
    assert "ring 'doodad' reset" in done.stdout
    assert "may repeat" in done.stdout
    after = ready.state("doodad")
    assert (after["remaining_in_cycle"], after["cycle"], after["extra"]) == (32, 0, "")
    assert int(str(after["epoch"])) > int(str(before["epoch"]))

    ready.draw("doodad", 2, extra="26")
    assert "ring 'doodad' reset" in ready.ok("reset", "doodad", input="y\n").stdout
    after = ready.state("doodad")
    assert (after["remaining_in_cycle"], after["extra"]) == (32, "")


def test_rebuild_after_changing_base_length(ready: Cli) -> None:
    ready.draw("doodad", 3)
    ready.config.write_text(RINGS_TOML.replace("base_length = 1", "base_length = 2"))

    get, populate = ready.run_all(["get", "doodad", "--direct"], ["populate", "doodad"])
    line = assert_one_line_error(get, "base_length=1", code=1)
    assert "coder-ring rebuild doodad" in line
    assert_one_line_error(populate, "coder-ring rebuild doodad", code=1)

    refused = ready.run("rebuild", "doodad", input="n\n")
    assert refused.returncode == 1
    assert "base_length=1" in refused.stderr
    assert "base_length=2" in refused.stderr
    assert "was not rebuilt" in refused.stderr
    assert ready.state("doodad")["total_codes"] == 32

    done = ready.ok("rebuild", "doodad", "--yes")
    assert "rebuilt with base_length=2" in done.stdout
    assert "1,024 codes" in done.stdout
    assert re.search(r"filling doodad .*1024/1024", done.stderr), done.stderr
    state = ready.state("doodad")
    assert (state["base_length"], state["total_codes"], state["remaining_in_cycle"]) == (
        2,
        1024,
        1024,
    )
    codes = ready.ok("get", "doodad", "--direct", "-n", "4").stdout.split()
    assert len(set(codes)) == 4
    assert all(re.fullmatch(CODE_CHAR * 2, code) for code in codes), codes


def test_bad_database_url_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "rings.toml"
    config.write_text(RINGS_TOML)
    cases = [
        ("nonsense", "invalid database URL 'nonsense'"),
        ("mysql://user@host/db", "unsupported database URL"),
        ("postgresql://postgres@127.0.0.1:1/test", "127.0.0.1"),
        (f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}", "unable to open database file"),
    ]
    # From the global option (over a valid env value)...
    valid = Cli(f"sqlite:///{tmp_path / 'valid.db'}", config)
    results = valid.run_all(*(["--database-url", url, "migrate"] for url, _ in cases))
    for done, (_, named) in zip(results, cases, strict=True):
        assert_one_line_error(done, named, code=1)
    # ... and from the environment.
    for url, named in cases[:2]:
        assert_one_line_error(Cli(url, config).run("status"), named, code=1)
    assert not (tmp_path / "no").exists()
    assert not (tmp_path / "valid.db").exists()


def test_config_file_errors(sqlite_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    cli = Cli(sqlite_url, missing)
    # The schema does not depend on the rings file.
    cli.ok("migrate")
    bad = tmp_path / "bad.toml"
    bad.write_text("[rings.doodad]\nbase_lenght = 1\n")
    *unread, invalid = cli.run_all(
        ["populate"],
        ["get", "doodad", "--direct"],
        ["--config", str(bad), "status"],  # --config overrides the environment
    )
    for done in unread:
        assert_one_line_error(done, "cannot read rings file", str(missing), "No such file", code=1)
    assert_one_line_error(invalid, "bad.toml", "'doodad'", "'base_lenght'", code=1)
    good = tmp_path / "good.toml"
    good.write_text(RINGS_TOML)
    assert "doodad: 32 codes written" in cli.ok("--config", str(good), "populate").stdout


def test_help_and_version(sqlite_url: str, tmp_path: Path) -> None:
    cli = Cli(sqlite_url, tmp_path / "rings.toml")
    version, main, get, reset, unknown = cli.run_all(
        ["--version"], ["--help"], ["get", "--help"], ["reset", "-h"], ["frobnicate"]
    )
    assert all(done.returncode == 0 for done in (version, main, get, reset))
    assert re.fullmatch(r"coder-ring \d+\.\d+\.\d+\S*", version.stdout.strip())
    main_help = main.stdout
    for text in ("--database-url", "--config", "CODER_RING_DATABASE_URL", "CODER_RING_CONFIG"):
        assert text in main_help
    for command in ("migrate", "populate", "get", "status", "reset", "rebuild"):
        assert command in main_help
    for option in ("--count", "--extra", "--bump", "--direct", "--timeout"):
        assert option in get.stdout
    assert "--yes" in reset.stdout
    assert "may be issued again" in " ".join(reset.stdout.split())
    assert_one_line_error(unknown, "'frobnicate'", code=2)


HOOKED = textwrap.dedent(
    """
    import sys
    import coder_ring.cli as cli_module
    from coder_ring.errors import InvalidInput, StoreUnavailable

    assert "celery" not in sys.modules

    def celery_get(app, ring, count, *, extra, bump, timeout):
        if ring == "broken":
            raise InvalidInput("the worker says no")
        return [f"{ring}:{count}:{extra}:{bump}:{timeout}:{app.settings.config_path.name}"]

    def status_extras(app, statuses):
        if [status.ring for status in statuses] == ["pair"]:
            raise StoreUnavailable("redis is down")
        return {
            status.ring: cli_module.StatusExtras(lock_holder="w1@host", pool=7)
            for status in statuses
            if status.ring == "doodad"
        }

    cli_module.CELERY_GET = celery_get
    cli_module.STATUS_EXTRAS = status_extras
    cli_module.main()
    """
)


def test_hooks_of_the_worker_layer(sqlite_url: str, tmp_path: Path) -> None:
    config = tmp_path / "rings.toml"
    config.write_text(RINGS_TOML)
    cli = ready_cli(Cli(sqlite_url, config, command=(sys.executable, "-c", HOOKED)))

    results = cli.run_all(
        ["get", "doodad", "-n", "3", "--extra", "26", "--bump", "--timeout", "2.5"],
        ["get", "pair"],
        ["get", "doodad", "--direct"],
        ["get", "broken"],
        ["get", "Bad-Name"],
        ["status", "--json"],
        ["status"],
        ["status", "pair"],
    )
    hooked, plain, direct, broken, bad_name, as_json, table, degraded = results
    assert hooked.stdout.strip() == "doodad:3:26:True:2.5:rings.toml"
    assert plain.stdout.strip() == "pair:1::False:None:rings.toml"
    # --direct never asks the hook.
    assert re.fullmatch(CODE_CHAR, direct.stdout.strip()), direct.stderr
    assert_one_line_error(broken, "the worker says no", code=1)
    assert_one_line_error(bad_name, "invalid ring name 'Bad-Name'", code=1)

    state = {row["ring"]: row for row in json.loads(as_json.stdout)}
    assert (state["doodad"]["lock_holder"], state["doodad"]["pool"]) == ("w1@host", 7)
    assert (state["pair"]["lock_holder"], state["pair"]["pool"]) == (None, None)
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines() if line}
    assert rows["doodad"][-2:] == ["w1@host", "7"]
    assert rows["pair"][-2:] == ["-", "-"]
    # A failing hook still lets the engine's columns through, with a warning.
    assert degraded.returncode == 0
    assert degraded.stderr.strip() == "warning: lock holder and pool unavailable: redis is down"
    rows = {line.split()[0]: line.split() for line in degraded.stdout.splitlines() if line}
    assert rows["pair"][-2:] == ["-", "-"]


def test_console_script(sqlite_url: str, tmp_path: Path) -> None:
    # `make test` installs the package into the venv: the script must be there.
    assert CONSOLE_SCRIPT.exists(), f"{CONSOLE_SCRIPT} is not installed"
    config = tmp_path / "rings.toml"
    config.write_text(RINGS_TOML)
    cli = Cli(sqlite_url, config, command=(str(CONSOLE_SCRIPT),))
    assert "applied migration 0001" in cli.ok("migrate").stdout
    version, populate, bad = cli.run_all(
        ["--version"], ["populate", "doodad"], ["get", "doodad", "--direct", "-n", "0"]
    )
    assert version.stdout.startswith("coder-ring ")
    assert populate.stdout.strip() == "doodad: 32 codes written", populate.stderr
    assert_one_line_error(bad, "invalid count 0")
    codes = cli.ok("get", "doodad", "--direct", "-n", "5").stdout.split()
    assert len(set(codes)) == 5
    assert all(re.fullmatch(CODE_CHAR, code) for code in codes)
