"""The engine's command line (``coder_ring.cli.build_cli``) on SQLite and PostgreSQL:
``reset`` and ``rebuild``, bad database URLs and rings files, the serving layer seam and
the console scripts.

The serving layer (``get`` without ``--direct``, the holder and pool columns of
``status``, the worker told of a reset or rebuild) is a protocol the Celery layer
implements; :class:`RecordingLayer` is this test's own implementation of it.
:func:`test_the_console_scripts` runs the installed ``coder-ring`` script and
``python -m coder_ring.cli`` as subprocesses; the other tests run the group in this
process (:mod:`tests.harness.cli`; fixtures in ``tests/system/conftest.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coder_ring import StoreUnavailable, __version__
from coder_ring.cli_support import AppContext
from coder_ring.status import RingStatus
from coder_ring.store import RingRecord
from tests.harness.cli import (
    CODE_CHAR,
    CONSOLE_SCRIPT,
    ENGINE_MODULE,
    RINGS_TOML,
    Cli,
    ScriptCli,
    assert_one_line_error,
    ready_cli,
    run_many,
    table_rows,
)

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
        ["doodad", "1", "32", '""', "0", "-", "28", "12.5%", "4", "0", "7", "w1@host", "0"],
        ["-", "-", "-", "hi", "0", "-", "32", "0.0%", "0", "0", "2", "-", "-"],
        ["pair", "2", "1,024", '""', "0", "-", "1,024", "0.0%", "0", "-", "-", "-", "0"],
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
