"""The consumer bootstep that makes a worker consume a ring's queue only while it
serves the ring.

The lease thread (:class:`~coder_ring.celery.runtime.WorkerRuntime`) decides; this step only
reconciles what the consumer consumes with what the seats say, always on the event
loop's thread (kombu consumers are not thread-safe): right away through
``hub.call_soon`` when a seat changes, and every half second as a backstop.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from celery import bootsteps

from coder_ring.celery.app import CoderRingApp
from coder_ring.celery.names import ring_queue
from coder_ring.celery.runtime import WorkerRuntime
from coder_ring.errors import CoderRingError
from coder_ring.registry.keys import doorbell_key

log = logging.getLogger("coder_ring.worker")
RECONCILE_SECONDS = 0.5
#: Ring queues a reconcile starts consuming at most: each costs kombu two round trips
#: (its declare), and none is consumed before the pass ends and the event loop polls
#: again (at 10,000 rings, 2,500 queues in one pass kept every request waiting).
QUEUES_PER_PASS = 200
ALL_RINGS = "all"


def asked_pool(argv: Sequence[str]) -> str | None:
    """The pool named on the command line (``-P x``, ``--pool x``, ``--pool=x``), if any:
    Celery takes an explicit ``--pool prefork`` for its default and runs the configured
    solo pool instead, without a word."""
    asked = None  # the last one counts, as for click
    for index, arg in enumerate(argv):
        if arg in ("-P", "--pool") and index + 1 < len(argv):
            asked = argv[index + 1]
        elif arg.startswith("--pool="):
            asked = arg.partition("=")[2]
        elif arg.startswith("-P") and len(arg) > 2:
            asked = arg[2:]
    return asked


def check_pool(controller: Any, argv: Sequence[str]) -> None:
    """Refuse a pool other than solo; warn once when the command line asked for prefork
    or a concurrency above 1, which a ring worker does not run (it serves each ring's
    requests in order, in one process: run more workers to spread rings)."""
    pool_cls = getattr(controller, "pool_cls", None)
    module = getattr(pool_cls, "__module__", "") or ""
    if pool_cls is not None and not module.endswith(".solo"):
        raise SystemExit(
            f"error: a ring worker runs in the solo pool, not {module.rpartition('.')[2]!r} "
            "(start it with --pool solo, or with `coder-ring worker`)"
        )
    asked = asked_pool(argv)
    concurrency = getattr(controller, "concurrency", 1) or 1
    if (asked not in (None, "solo")) or concurrency != 1:
        log.warning(
            "this ring worker runs in the solo pool with concurrency 1, not %s: each "
            "worker serves its rings one request at a time (codes are drawn from pools in "
            "memory, so one process is fast); run more workers to spread the rings",
            " with ".join(
                x
                for x in (
                    f"--pool {asked}" if asked not in (None, "solo") else "",
                    f"--concurrency {concurrency}" if concurrency != 1 else "",
                )
                if x
            ),
        )


def parse_rings(option: str | None) -> list[str]:
    """``--rings widget,doodad`` -> ["widget", "doodad"]; empty or "all" -> [] (all)."""
    names = [name.strip() for name in (option or "").split(",") if name.strip()]
    return [] if names == [ALL_RINGS] else names


class RingOwnership(bootsteps.StartStopStep):  # type: ignore[misc]
    """Consume ``coder_ring.<namespace>.<ring>`` exactly while this worker serves ``<ring>``."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, rings: str | None = None, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        app = c.app
        if not isinstance(app, CoderRingApp):
            raise SystemExit(
                "error: the ring worker needs the coder_ring app (coder_ring.celery.app)"
            )
        check_pool(c.controller, sys.argv)
        self.consumer = c
        self.timer: Any = None
        #: A reconcile is queued on the event loop: changes meanwhile need no other one
        #: (a worker taking 2,500 rings queued 2,500 passes over every seat: minutes).
        self._queued = threading.Event()
        self.prefix = ring_queue(app.settings.namespace, "")
        try:
            self.runtime = WorkerRuntime(app.settings, parse_rings(rings), c.hostname)
        except CoderRingError as error:
            raise SystemExit(f"error: {error}") from None
        app.runtime = self.runtime

    def start(self, c: Any) -> None:
        # Wait on this worker's doorbell, not on every ring queue (doorbell.py); also
        # after a broker reconnect (a new channel), before the loop consumes again.
        use_doorbell = getattr(c.task_consumer.channel, "use_doorbell", None)
        if use_doorbell is not None:
            use_doorbell(doorbell_key(self.runtime.namespace, self.runtime.member_id))
        hub = c.hub
        if hub is not None:
            self.runtime.on_change = lambda: self._soon(hub)
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

    def _soon(self, hub: Any) -> None:
        if not self._queued.is_set():
            self._queued.set()
            hub.call_soon(self.reconcile)

    def reconcile(self) -> None:
        """Start or stop consuming ring queues to match the seats (event loop only)."""
        self._queued.clear()  # before reading the seats: a change from now on queues again
        task_consumer = self.consumer.task_consumer
        if task_consumer is None:
            return
        now = time.monotonic()  # one clock read for every seat (10,000 rings: 20,000 a second)
        wanted = {
            self.prefix + ring
            for ring, seat in list(self.runtime.seats.items())
            if seat.can_serve(now)
        }
        added = [queue for queue in sorted(wanted) if not task_consumer.consuming_from(queue)]
        if len(added) > QUEUES_PER_PASS:
            added = added[:QUEUES_PER_PASS]
            if self.consumer.hub is not None:
                self._soon(self.consumer.hub)  # the rest after the loop polled once
        if added:
            # What Consumer.add_task_queue does, but one consume() for them all: it
            # re-registers every queue consumed, so one call per queue is quadratic (at
            # 10,000 rings it took 40 % of the event loop while rings moved in).
            queues = self.consumer.app.amqp.queues
            for queue in added:
                if queue in queues:  # `in`: a lookup would create missing queues
                    selected = queues.select_add(queues[queue])
                else:
                    selected = queues.select_add(
                        queue, exchange=queue, exchange_type="direct", routing_key=None
                    )
                task_consumer.add_queue(selected)
            task_consumer.consume()
            log.info("consuming from %d more ring queues", len(added))
        for queue in sorted({queue.name for queue in task_consumer.queues} - wanted):
            if queue.startswith(self.prefix) and task_consumer.consuming_from(queue):
                self.consumer.cancel_task_queue(queue)
