"""The web examples (examples/) in their real servers, loaded over HTTP with wrk.

One real worker serves ring "voucher"; the Flask example runs under gunicorn (gthread,
2 processes x 8 threads) and the FastAPI example under uvicorn, each loaded for
``CODER_RING_WEB_LOAD_SECONDS`` (default 7 s: both together about 15 s). Every response
must be a code (no error, no timeout, no socket error) and no code may repeat, within a
server or across the two. The figures (requests/s, p50, p99) are printed:
``pytest tests/system/test_web_examples.py -s``.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from coder_ring import ALPHABET
from examples.timeouts import timeout_for
from tests.harness import BIN, REPO, ProcessGroup, free_port, wait_until, worker_env, write_rings
from tests.harness.processes import ManagedProcess
from tests.system.web_load import Load, run_wrk, wrk_path

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

RING = "voucher"
EXTRA = "W-"
SECONDS = float(os.environ.get("CODER_RING_WEB_LOAD_SECONDS", "7"))
CONNECTIONS = 16


def _listening(port: int, process: ManagedProcess) -> bool:
    if not process.alive():
        raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _serve(group: ProcessGroup, name: str, argv: list[str], env: dict[str, str]) -> int:
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in argv]
    process = ManagedProcess(name, argv, env, group.directory / f"{name}.log", REPO)
    process.kind = name
    group.add(process)
    wait_until(lambda: _listening(port, process), 30, 0.1, f"{name} to listen on {port}")
    return port


def _first_code(port: int) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/codes/{RING}", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        code: str = json.load(response)["code"]
    return code


def _load(name: str, port: int, tmp_path: Path, timeout: float) -> Load:
    url = f"http://127.0.0.1:{port}/codes/{RING}?extra={EXTRA}"
    load = run_wrk(
        name, url, tmp_path / "wrk", seconds=SECONDS, connections=CONNECTIONS, timeout=timeout
    )
    print(load.line())
    return load


def test_flask_under_gunicorn_and_fastapi_under_uvicorn(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    wrk_path()  # fail at once, not after starting everything
    env = worker_env(
        redis_url=redis_url,
        database_url=pg_url,
        rings_file=write_rings(tmp_path / "rings.toml", **{RING: {"base_length": 4}}),
    )
    visibility = float(env["CODER_RING_VISIBILITY_TIMEOUT"])
    started = time.monotonic()
    with ProcessGroup(tmp_path / "processes") as group:
        worker = group.worker("web", env, [RING], loglevel="WARNING")
        gunicorn = [str(BIN / "gunicorn"), "--worker-class", "gthread", "--workers", "2"]
        gunicorn += ["--threads", "8", "--bind", "127.0.0.1:{port}", "examples.flask_app:app"]
        flask_port = _serve(group, "gunicorn", gunicorn, env)
        # At WARNING the worker logs no line per request (as in production); wait for
        # its lock, then for one code through the example.
        wait_until(lambda: worker.holds(RING), 30, 0.05, f"the worker to hold {RING!r}")
        _first_code(flask_port)
        # Longer than the examples wait (README: the visibility timeout + 2 lock TTLs).
        timeout = timeout_for(visibility, float(env["CODER_RING_LOCK_TTL"])) + 1.0
        flask = _load("flask", flask_port, tmp_path, timeout)
        uvicorn = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", "{port}"]
        uvicorn += ["--no-access-log", "examples.fastapi_app:app"]
        fastapi_port = _serve(group, "uvicorn", uvicorn, env)
        fastapi = _load("fastapi", fastapi_port, tmp_path, timeout)
    for load in (flask, fastapi):
        assert load.codes, f"{load.name}: no code at all"
        assert not load.failures, f"{load.name}: failed responses: {load.failures[:5]}"
        assert load.socket_errors == 0, load.line()
    codes = flask.codes + fastapi.codes
    repeated = [code for code, n in Counter(codes).items() if n > 1]
    assert not repeated, f"{len(repeated)} codes handed out twice: {repeated[:10]}"
    assert all(c.startswith(EXTRA) and set(c[len(EXTRA) :]) <= set(ALPHABET) for c in codes)
    print(f"{len(codes)} distinct codes in {time.monotonic() - started:.1f} s")
