"""The anchor: a plain Celery app with a no-op task, as a user would write one, started by
the bench with Celery's own command and defaults (``celery -A bench.anchor_app worker
-P solo --loglevel WARNING``). Its broker, result backend and queue come from the
environment (a run's own queue: two runs on one Redis database never meet); it imports
no coder_ring module."""

from __future__ import annotations

import os

from celery import Celery

BROKER_ENV = "BENCH_ANCHOR_BROKER_URL"
BACKEND_ENV = "BENCH_ANCHOR_RESULT_BACKEND"
QUEUE_ENV = "BENCH_ANCHOR_QUEUE"
NOOP = "anchor.noop"


def make_app(broker_url: str, result_backend: str, queue: str = "celery") -> Celery:
    """A plain ``Celery()`` app with one task, ``anchor.noop``, on ``queue``."""
    app = Celery("anchor", broker=broker_url, backend=result_backend)
    app.conf.task_default_queue = queue

    @app.task(name=NOOP, shared=False)  # type: ignore[untyped-decorator]
    def noop() -> None:
        """Does nothing."""

    return app


#: The app of ``celery -A bench.anchor_app``.
app = make_app(
    os.environ.get(BROKER_ENV) or "redis://localhost:6379/0",
    os.environ.get(BACKEND_ENV) or "redis://localhost:6379/0",
    os.environ.get(QUEUE_ENV) or "celery",
)
