"""The web examples (examples/) in their real servers, as the README runs them (Flask
under gunicorn gthread 2x8, FastAPI under uvicorn), loaded over HTTP with ``wrk`` as
their test does (tests/system/web_load.py), beside the anchor called from the same
server: each app served has one more route, ``POST /anchor``, calling the anchor's
no-op as the example calls get_code. Each server writes down the id of every task it
sends (to ``$BENCH_WEB_TASK_IDS.<pid>``), so that their results are deleted."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from celery.signals import after_task_publish

from bench.anchor_app import NOOP
from bench.anchor_app import app as anchor
from bench.calls import Clients
from bench.worker import READY_TIMEOUT, Workers, anchor_env
from coder_ring.celery.demo.local_redis import free_port
from coder_ring.settings import WorkerSettings
from examples import fastapi_app, flask_app
from tests.system.web_load import GUNICORN, UVICORN, first_answer, run_wrk, wait_listening

IDS_ENV = "BENCH_WEB_TASK_IDS"
SERVERS = {"flask": [*GUNICORN, "bench.web:flask"], "fastapi": [*UVICORN, "bench.web:fastapi"]}
PATHS = {"get_code": "codes/main", "anchor": "anchor"}  # the kinds of call: their URL path
CONNECTIONS = 16
Figures = dict[str, float]


@after_task_publish.connect  # type: ignore[untyped-decorator]
def _written_down(headers: dict[str, Any], **_: Any) -> None:
    if path := os.environ.get(IDS_ENV):  # one write of a line: threads do not mix theirs
        descriptor = os.open(f"{path}.{os.getpid()}", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(descriptor, f"{headers['id']}\n".encode())
        os.close(descriptor)


def _noop() -> dict[str, str]:
    result = anchor.tasks[NOOP].delay()
    result.get(timeout=flask_app.TIMEOUT)
    return {"code": result.id}  # answered as the example answers


flask, fastapi = flask_app.app, fastapi_app.app
flask.post("/anchor")(_noop)


@fastapi.post("/anchor")
async def _anchor() -> dict[str, str]:
    return await asyncio.to_thread(_noop)  # waits as aget_code does


def run_web(workers: Workers, clients: Clients, main: WorkerSettings, seconds: float) -> Figures:
    """Each server started with the settings of group ``main`` (ring ``main``) and the
    anchor's, each kind loaded for ``seconds`` after 2 s of warm-up; the
    figures ``web.<server>.<kind>.<figure>``. Each server is stopped when measured; the
    codes handed out and the ids of the servers' tasks go to ``clients.recorder``."""
    figures: Figures = {}
    ids, recorder, endpoints = workers.workdir / "web-task-ids", clients.recorder, clients.endpoints
    env = main.to_env() | anchor_env(main, endpoints.anchor_queue) | {IDS_ENV: str(ids)}
    try:
        for name, argv in SERVERS.items():
            port = free_port()
            server = workers.start(name, [arg.format(port=port) for arg in argv], env)
            wait_listening(port, server, READY_TIMEOUT)
            for kind, path in PATHS.items():
                url = f"http://127.0.0.1:{port}/{path}"
                first_answer(url, READY_TIMEOUT)  # then wrk's warm-up, on every thread
                for run, length in (("warmup", 2.0), (kind, seconds)):
                    load = run_wrk(f"{name}-{run}", url, workers.workdir, seconds=length,
                                   connections=CONNECTIONS, timeout=endpoints.timeout)  # fmt: skip
                    if kind == "get_code":  # the run checks that no code came twice
                        recorder.codes.setdefault("main", []).extend(load.codes)
                key, errors = f"web.{name}.{kind}", float(len(load.failures) + load.socket_errors)
                figures |= {f"{key}.per_s": load.requests_per_s, f"{key}.p50_ms": load.p50_ms,
                            f"{key}.p99_ms": load.p99_ms, f"{key}.errors": errors}  # fmt: skip
            server.stop()
    finally:
        for written in workers.workdir.glob(f"{ids.name}.*"):
            recorder.task_ids += written.read_text(encoding="ascii").split()
    return figures
