"""The Celery app of coder_ring, built from explicit settings.

:class:`CoderRingApp` is a typed Celery app; its ring tasks are bound to it (never to
Celery's thread-local "current app"), so callers in any thread -- a web server's request
threads, ``asyncio.to_thread`` -- send through it. Building it reads settings and
connects to nothing. The app of the environment, for ``celery -A``, is built by the
deployment's module ``workers/app.py``; callers get its tasks from
:mod:`coder_ring.celery`. This module builds no app at import.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import click
from celery import Celery

from coder_ring.celery.caller_errors import CallerErrorLog
from coder_ring.celery.doorbell import transport_for
from coder_ring.celery.names import control_exchange, event_exchange, misc_queue
from coder_ring.celery.ring_tasks import RingTasks, register
from coder_ring.config import RingConfig, RingsFile
from coder_ring.redis_urls import is_sentinel
from coder_ring.registry.caller_view import CallerView
from coder_ring.settings import WorkerSettings

if TYPE_CHECKING:
    from coder_ring.celery.runtime import WorkerRuntime

#: The consumer bootstep of a ring worker, named rather than imported: it imports this
#: module (it checks the app it runs in), and Celery loads steps by name anyway.
OWNERSHIP_STEP = "coder_ring.celery.ownership:RingOwnership"
#: Seconds the result backend waits on a sentinel's reply or a connection to it.
RESULT_TIMEOUT = 5.0


def sentinel_options(
    settings: WorkerSettings, url: str, timeout: float | None = None
) -> dict[str, Any]:
    """The transport options kombu's and Celery's Sentinel support read, when ``url``
    names sentinels: the primary's name, and (``timeout``) how long a sentinel's reply
    may take -- Celery's result backend would otherwise wait on one for ever (it passes
    no socket timeout to the sentinels; kombu passes the broker's own)."""
    if not is_sentinel(url):
        return {}
    options: dict[str, Any] = {"master_name": settings.sentinel_master}
    if timeout is not None:
        options["sentinel_kwargs"] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        }
    return options


class CoderRingApp(Celery):  # type: ignore[misc]
    """A Celery app serving coder_ring's rings with ``settings``."""

    def __init__(self, settings: WorkerSettings) -> None:
        super().__init__("coder_ring", set_as_current=False)
        self.settings = settings
        #: The ring seats of this process when it is a worker (set by the bootstep).
        self.runtime: WorkerRuntime | None = None
        self._rings_file = RingsFile(settings.engine.config_path)
        self._registry_mutex = threading.Lock()
        self._registry: CallerView | None = None
        #: A worker's log of callers' refused requests (once per ring and kind per interval).
        self.caller_errors = CallerErrorLog(settings.log_interval)
        #: True on coder_ring's Redis transports, where a list is a queue: a request
        #: needs no queue declared before it (elsewhere, AMQP say, an undeclared queue
        #: drops it).
        self.publishes_by_name = transport_for(settings.broker_url) is not None
        self.conf.update(
            broker_url=settings.broker_url,
            # kombu's Redis transport, with a doorbell per worker (many rings, issue 19).
            broker_transport=transport_for(settings.broker_url),
            result_backend=settings.result_backend,
            broker_connection_retry_on_startup=True,
            task_default_queue=misc_queue(settings.namespace),
            control_exchange=control_exchange(settings.namespace),
            event_exchange=event_exchange(settings.namespace),
            task_serializer="json",
            result_serializer="json",
            accept_content=["json"],
            # A request is acknowledged after it ran: one held by a killed worker goes
            # back to the queue and is served by the next holder (never twice).
            task_acks_late=True,
            task_reject_on_worker_lost=True,
            # Celery 6's default, and without it Celery warns of the change (9 lines) at
            # every loss of the broker. A solo worker runs no task while its consumer
            # reconnects, so there is nothing to cancel.
            worker_cancel_long_running_tasks_on_connection_loss=True,
            worker_prefetch_multiplier=1,
            worker_concurrency=1,
            worker_pool="solo",
            # Events cost the worker's event loop about half its time; flower needs them,
            # so they are on only where CODER_RING_TASK_EVENTS says (compose: yes).
            worker_send_task_events=settings.task_events,
            task_send_sent_event=False,
            result_expires=3600,
            broker_transport_options={
                "visibility_timeout": settings.visibility_timeout,
                # Scan for a dead worker's requests every second (kombu's default: 100 s).
                "unacked_restore_interval": 1,
                "unacked_restore_throttle": 1,
                "unacked_mutex_expire": max(15, int(settings.visibility_timeout)),
                # No task carries a priority: one list per ring queue, not four. Each
                # message re-issues BRPOP over every queue a worker consumes, so with
                # many rings this halves its cost (measured: p50 -40%, burst +50% at
                # 1,000 rings).
                "priority_steps": [0],
                "coder_ring_namespace": settings.namespace,
                **sentinel_options(settings, settings.broker_url),
            },
            result_backend_transport_options={
                "retry_policy": {"timeout": RESULT_TIMEOUT},
                **sentinel_options(settings, settings.result_backend, RESULT_TIMEOUT),
            },
            beat_scheduler="coder_ring.celery.beat:RingRefillScheduler",
        )
        self.user_options["worker"].add(
            click.Option(
                ["--rings"],
                default="",
                help="Comma-separated rings this worker may serve (default: all configured).",
            )
        )
        self.steps["consumer"].add(OWNERSHIP_STEP)
        #: The ring tasks, bound to this app.
        self.ring_tasks: RingTasks = register(self)

    def configured_rings(self) -> dict[str, RingConfig]:
        """The rings file's rings (read again when the file changes), for caller checks.
        After a bad edit, the last good rings, as the workers serve them (with one
        warning); :class:`~coder_ring.errors.ConfigError` if it was never good here."""
        return self._rings_file.rings_or_last_good()

    @property
    def registry(self) -> CallerView:
        """This process's cached view of the live workers."""
        with self._registry_mutex:
            if self._registry is None:
                self._registry = CallerView(self.settings)
            return self._registry

    def close(self) -> None:
        """Close the app's connections (broker pool, result backend, registry view)."""
        if self._registry is not None:
            self._registry.close()
        super().close()


def create_app(settings: WorkerSettings | None = None) -> CoderRingApp:
    """A coder_ring app for ``settings`` (default: from the environment)."""
    return CoderRingApp(settings or WorkerSettings.from_env())
