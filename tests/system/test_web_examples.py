"""The web examples (examples/) in their real servers, loaded over HTTP with wrk.

One real worker serves ring "voucher"; the Flask example runs under gunicorn (gthread,
2 processes x 8 threads) and the FastAPI example under uvicorn, each loaded for
``CODER_RING_WEB_LOAD_SECONDS`` (default 7 s: both together about 15 s). Every response
must be a code (no error, no timeout, no socket error) and no code may repeat, within a
server or across the two. The figures (requests/s, p50, p99) are printed:
``pytest tests/system/test_web_examples.py -s``.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from coder_ring import ALPHABET
from examples.timeouts import timeout_for
from tests.harness import REPO, ProcessGroup, free_port, wait_until, worker_env, write_rings
from tests.harness.processes import ManagedProcess
from tests.system.web_load import (
    GUNICORN,
    UVICORN,
    Load,
    first_answer,
    run_wrk,
    wait_listening,
    wrk_path,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

RING = "voucher"
EXTRA = "W-"
SECONDS = float(os.environ.get("CODER_RING_WEB_LOAD_SECONDS", "7"))
CONNECTIONS = 16


def _serve(group: ProcessGroup, name: str, argv: list[str], env: dict[str, str]) -> int:
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in argv]
    process = ManagedProcess(name, argv, env, group.directory / f"{name}.log", REPO)
    process.kind = name
    group.add(process)
    wait_listening(port, process)
    return port


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
        flask_port = _serve(group, "gunicorn", [*GUNICORN, "examples.flask_app:app"], env)
        # At WARNING the worker logs no line per request (as in production); wait for
        # its lock, then for one code through the example.
        wait_until(lambda: worker.holds(RING), 30, 0.05, f"the worker to hold {RING!r}")
        first_answer(f"http://127.0.0.1:{flask_port}/codes/{RING}")
        # Longer than the examples wait (README: the visibility timeout + 2 lock TTLs + 2 s).
        timeout = timeout_for(visibility, float(env["CODER_RING_LOCK_TTL"])) + 1.0
        flask = _load("flask", flask_port, tmp_path, timeout)
        fastapi_port = _serve(group, "uvicorn", [*UVICORN, "examples.fastapi_app:app"], env)
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
