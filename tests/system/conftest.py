"""Fixtures of the system tests: ``group`` (processes, gone afterwards) and, for the
engine command line's tests (``test_cli_engine*.py``): a
:class:`~tests.harness.cli.Cli` on a real database and the rings file
:data:`~tests.harness.cli.RINGS_TOML` (``cli``: SQLite and PostgreSQL; ``sqlite_cli``;
``ready``: ``cli`` with its database migrated)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ProcessGroup
from tests.harness.cli import RINGS_TOML, Cli, ready_cli


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


@pytest.fixture
def ready(cli: Cli) -> Cli:
    return ready_cli(cli)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """The processes of one test, all gone afterwards; the tails of their logs are printed
    (pytest shows them when the test fails)."""
    group = ProcessGroup(tmp_path / "processes")
    try:
        yield group
    finally:
        group.close()
        for process in group.processes:
            print(process.log_tail(60))
