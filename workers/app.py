"""The Celery app: ``celery -A workers.app worker|beat|flower``.

Building it reads settings from the environment and connects to nothing.
"""

from __future__ import annotations

from typing import Any

import click
from celery import Celery

from coder_ring.config import RingConfig
from workers.names import MISC_QUEUE, RING_TASKS, ring_queue
from workers.ownership import RingOwnership
from workers.settings import WorkerSettings


def route_ring_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, str] | None:
    """Send every ring task to its ring's queue (also for ``send_task`` by name)."""
    if name not in RING_TASKS:
        return None
    ring = args[0] if args else (kwargs or {}).get("ring")
    return {"queue": ring_queue(str(ring))}


def create_app(settings: WorkerSettings | None = None, *, set_as_current: bool = True) -> Any:
    """A Celery app for ``settings`` (default: from the environment)."""
    settings = settings or WorkerSettings.from_env()
    app = Celery("coder_ring", set_as_current=set_as_current)
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend,
        broker_connection_retry_on_startup=True,
        task_default_queue=MISC_QUEUE,
        task_routes=(route_ring_task,),
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A request is acknowledged after it ran: one held by a killed worker goes back
        # to the queue and is served by the next holder (never twice: see the README).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=1,
        worker_pool="threads",
        worker_send_task_events=True,
        task_send_sent_event=True,
        result_expires=3600,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            # Scan for a dead worker's requests every second (kombu's default: 100 s).
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": max(15, int(settings.visibility_timeout)),
        },
        result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
        beat_scheduler="workers.beat:RingRefillScheduler",
        imports=["workers.tasks"],
    )
    app.coder_ring_settings = settings
    app.coder_ring_runtime = None
    app.user_options["worker"].add(
        click.Option(
            ["--rings"],
            default="",
            help="Comma-separated rings this worker may serve (default: all configured).",
        )
    )
    app.steps["consumer"].add(RingOwnership)
    return app


def configured_rings(app: Any) -> dict[str, RingConfig]:
    """The rings file's rings, read once per app (callers validate against them)."""
    rings: dict[str, RingConfig] | None = getattr(app, "coder_ring_rings", None)
    if rings is None:
        rings = app.coder_ring_settings.engine.load_rings()
        app.coder_ring_rings = rings
    return rings


app = create_app()
