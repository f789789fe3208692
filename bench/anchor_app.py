"""The anchor: a plain Celery app with a no-op task, as a user would write one.

The bench starts its worker with the ``celery`` command and Celery's defaults::

    celery -A bench.anchor_app worker -P solo --loglevel WARNING

Broker and result backend are the bench's (``BENCH_ANCHOR_BROKER_URL``,
``BENCH_ANCHOR_RESULT_BACKEND``); the queue is ``BENCH_ANCHOR_QUEUE`` (Celery's
``celery`` when unset), so that two bench runs on one Redis database never meet.
Nothing else is configured, and no coder_ring module is imported.
"""

from __future__ import annotations

import os

from celery import Celery

BROKER_ENV = "BENCH_ANCHOR_BROKER_URL"
BACKEND_ENV = "BENCH_ANCHOR_RESULT_BACKEND"
QUEUE_ENV = "BENCH_ANCHOR_QUEUE"
NOOP = "anchor.noop"
_LOCAL_REDIS = "redis://localhost:6379/0"


def make_app(broker_url: str, result_backend: str, queue: str = "celery") -> Celery:
    """A plain ``Celery()`` app with one task, ``anchor.noop``, on ``queue``."""
    app = Celery("anchor", broker=broker_url, backend=result_backend)
    app.conf.task_default_queue = queue

    @app.task(name=NOOP, shared=False)  # type: ignore[untyped-decorator]
    def noop() -> None:
        """Does nothing."""

    return app


#: The app of ``celery -A bench.anchor_app``, configured from the environment.
app = make_app(
    os.environ.get(BROKER_ENV) or _LOCAL_REDIS,
    os.environ.get(BACKEND_ENV) or _LOCAL_REDIS,
    os.environ.get(QUEUE_ENV) or "celery",
)
