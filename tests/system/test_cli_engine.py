"""The engine's command line (``coder_ring.cli.build_cli``) on SQLite and PostgreSQL:
help, usage errors, ``init``, ``migrate``, ``populate``, ``get --direct`` and ``status``.

Most tests run the group in this process with click's runner (quick: no interpreter
start-up per command), each with a fresh group from :func:`build_cli`, a real
database and a real rings file (:mod:`tests.harness.cli`; the fixtures ``cli``,
``sqlite_cli`` and ``ready`` are in ``tests/system/conftest.py``). Reset, rebuild, bad
URLs and rings files, the serving layer and the console scripts are in
``test_cli_engine_changes.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from coder_ring import SqlStore, __version__, load_rings
from coder_ring.cli import STATUS_HEADERS, build_cli
from coder_ring.config import sample_rings
from coder_ring.profanity import space_of
from coder_ring.status import RingStatus
from tests.harness.cli import CODE_CHAR, Cli, assert_one_line_error, ready_cli, table_rows

ROOT = Path(__file__).resolve().parents[2]
ENGINE_COMMANDS = ("init", "migrate", "populate", "get", "status", "reset", "rebuild")
HEAD = "0004"  # the newest migration
PAIR_CODES = space_of(2, True).total


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
        # cycle, percent used, issued, received, pooled, holder, epoch
        ["doodad", "1", "32", '""', "0", "-", "27", "15.6%", "5", "-", "-", "-", "0"],
        ["pair", "2", "1,024", '""', "0", "-", "1,023", "0.1%", "1", "-", "-", "-", "0"],
        ["-", "-", "-", "2026", "0", "-", "1,021", "0.3%", "3", "-", "-", "-", "-"],
    ]
    assert_one_line_error(ready.run("status", "nosuch"), "'nosuch'", code=1)


def test_status_of_rings_never_used_and_before_migrate(sqlite_cli: Cli) -> None:
    assert_one_line_error(sqlite_cli.run("status"), "coder-ring migrate", code=1)
    ready_cli(sqlite_cli)
    state = sqlite_cli.status()
    assert (state["doodad"]["total_codes"], state["doodad"]["remaining_in_cycle"]) == (32, 32)
    assert state["doodad"]["extras"] == []
    assert table_rows(sqlite_cli.ok("status", "doodad").stdout) == [
        # A ring never used shows its default extra, as its JSON does ("extra": "").
        ["doodad", "1", "32", '""', "0", "-", "32", "0.0%", "0", "-", "-", "-", "0"]
    ]
