"""The consumer bootstep that makes a worker consume a ring's queue only while it
holds the ring's lock.

The lease thread (:class:`~workers.runtime.WorkerRuntime`) decides; this step only
reconciles what the consumer consumes with what the leases say, always on the
event loop's thread (kombu consumers are not thread-safe): right away through
``hub.call_soon`` when a lease changes, and every half second as a backstop.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from coder_ring.errors import CoderRingError
from workers.names import ring_queue
from workers.runtime import WorkerRuntime

log = logging.getLogger("coder_ring.worker")
RECONCILE_SECONDS = 0.5
ALL_RINGS = "all"


def parse_rings(option: str | None) -> list[str]:
    """``--rings widget,doodad`` -> ["widget", "doodad"]; empty or "all" -> [] (all)."""
    names = [name.strip() for name in (option or "").split(",") if name.strip()]
    return [] if names == [ALL_RINGS] else names


class RingOwnership(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consume ``coder_ring.<ring>`` exactly while this worker holds ``<ring>``'s lock."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, rings: str | None = None, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.consumer = c
        self.timer: Any = None
        settings = c.app.coder_ring_settings
        try:
            self.runtime = WorkerRuntime(settings, parse_rings(rings), c.hostname)
        except CoderRingError as error:
            raise SystemExit(f"error: {error}") from None
        c.app.coder_ring_runtime = self.runtime
        # No ring queue is consumed until its lock is won, whatever -Q said.
        c.app.amqp.queues.deselect([ring_queue(ring) for ring in self.runtime.seats])

    def start(self, c: Any) -> None:
        hub = c.hub
        if hub is not None:
            self.runtime.on_change = lambda: hub.call_soon(self.reconcile)
            self.timer = hub.call_repeatedly(RECONCILE_SECONDS, self.reconcile)
        else:  # no event loop (not the Redis transport): the consumer's own timer
            self.timer = c.timer.call_repeatedly(RECONCILE_SECONDS, self.reconcile)
        # Also after a broker reconnect, before the loop consumes again: the consumer
        # resumes the queues it had, which may include a ring lost meanwhile.
        self.reconcile()
        self.runtime.start()

    def stop(self, c: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def shutdown(self, c: Any) -> None:
        self.stop(c)
        self.runtime.on_change = lambda: None
        self.runtime.stop(give_back=True)

    def reconcile(self) -> None:
        """Start or stop consuming ring queues to match the leases (event loop only)."""
        consumer = self.consumer
        if consumer.task_consumer is None:
            return
        for ring, seat in self.runtime.seats.items():
            queue = ring_queue(ring)
            wanted = seat.holding()
            consuming = consumer.task_consumer.consuming_from(queue)
            if wanted and not consuming:
                consumer.add_task_queue(queue)
            elif consuming and not wanted:
                consumer.cancel_task_queue(queue)
