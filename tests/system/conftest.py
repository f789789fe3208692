"""Fixtures of the engine command line's tests (``test_cli_engine*.py``): a
:class:`~tests.harness.cli.Cli` on a real database and the rings file
:data:`~tests.harness.cli.RINGS_TOML` (``cli``: SQLite and PostgreSQL; ``sqlite_cli``;
``ready``: ``cli`` with its database migrated)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
