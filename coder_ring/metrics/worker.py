"""A worker's own ring metrics, served on ``CODER_RING_METRICS_PORT`` (off by default).

:class:`WorkerMetrics` belongs to one worker process. It is given only what it shows:
the worker's node name and member id, and callables that read, at scrape time, the rings
it has seats for, the pools of those it serves, a ring's status and the database's
health. Counters and the latency histogram are updated while it serves
(:meth:`coder_ring.celery.ring_tasks.RingTask.serve`) and by the lease thread's hooks:

- :meth:`WorkerMetrics.saw_holders` each round: who held each ring;
- :meth:`WorkerMetrics.notice`: a RELEASED notice (a holder handed a ring off);
- :meth:`WorkerMetrics.won`: this worker won a ring's lock. A ring won from another
  holder is a *handoff* if that holder released it (its notice came), else a
  *failover* (its lock expired). A ring nobody was seen holding counts as neither.

The notice is published right after the release; a round that wins the ring in the
instant between the two would count a handoff as a failover (the notice also wakes
the round, so a handoff is normally seen first).

Nothing here imports Celery (tests/unit/test_floors.py checks it).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import Metric

from coder_ring.errors import CoderRingError, UnknownRing
from coder_ring.metrics.catalog import (
    LATENCY_BUCKETS,
    METRICS,
    OTHER_EXTRAS,
    WORKER,
    Families,
    MetricsServer,
)
from coder_ring.registry.notices import RELEASED
from coder_ring.ring_server import MAX_POOLED_EXTRAS
from coder_ring.status import RingStatus

log = logging.getLogger("coder_ring.metrics")

#: The short task names (``coder_ring.get_code`` -> ``get_code``) whose failures are
#: draw errors.
DRAW_TASKS = frozenset({"get_code", "get_codes", "refill"})
#: Tasks whose result is codes handed to a caller.
ISSUING_TASKS = frozenset({"get_code", "get_codes"})
#: ``kind`` of an error that is not one of coder_ring's own (a bug, a bad request).
UNEXPECTED = "unexpected"


class WorkerMetrics:
    """What one worker process counts and serves. Thread-safe.

    ``rings``: the rings it has a seat for; ``pools``: ring -> codes pooled per extra,
    for each ring it serves now; ``status``: a ring's status from the database;
    ``healthy``: whether it reaches its database; ``port``: where to serve (None: not
    served)."""

    def __init__(
        self,
        *,
        node: str,
        member_id: str,
        port: int | None,
        rings: Callable[[], Collection[str]],
        pools: Callable[[], Mapping[str, Mapping[str, int]]],
        status: Callable[[str], RingStatus],
        healthy: Callable[[], bool],
    ) -> None:
        self.node = node
        self.member_id = member_id
        self.port = port
        self._rings = rings
        self._pools = pools
        self._status = status
        self._healthy = healthy
        self.registry = CollectorRegistry()
        self._mutex = threading.Lock()
        #: ring -> extra -> codes issued (the first extras served, then OTHER_EXTRAS).
        self._issued: dict[str, dict[str, int]] = {}
        self._requests: Counter[tuple[str, str]] = Counter()
        self._errors: Counter[tuple[str, str]] = Counter()
        self._requeued: Counter[str] = Counter()
        self._failovers: Counter[str] = Counter()
        self._handoffs: Counter[str] = Counter()
        #: ring -> member id last seen holding it; rings released since then.
        self._last_holder: dict[str, str] = {}
        self._released: set[str] = set()
        self._won_at: dict[str, float] = {}
        self.latency = Histogram(
            "coder_ring_get_code_seconds",
            METRICS["coder_ring_get_code_seconds"].help,
            ["ring"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        #: ring -> its child of the latency histogram (labels() costs a lock per call).
        self._latency: dict[str, Any] = {}
        self.registry.register(self)
        self.server: MetricsServer | None = None

    # -- serving ----------------------------------------------------------------------

    def start(self) -> None:
        """Serve on the settings' metrics port, if one is set (an error is logged: the
        worker serves its rings all the same)."""
        port = self.port
        if port is None or self.server is not None:
            return
        try:
            self.server = MetricsServer(self.registry, port).start()
        except OSError as error:
            log.error("cannot serve metrics on port %d: %s", port, error)
            return
        log.info("ring metrics on %s", self.server.url)

    def close(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    # -- hooks of the lease thread ------------------------------------------------------

    def saw_holders(self, holders: Mapping[str, str]) -> None:
        """A round read the lock of each ring (ring -> holder's member id)."""
        with self._mutex:
            for ring, member in holders.items():
                if ring in self._rings() and self._last_holder.get(ring) != member:
                    self._last_holder[ring] = member
                    self._released.discard(ring)

    def notice(self, kind: str, ring: str) -> None:
        """A notice came (a RELEASED one says the ring was handed off)."""
        if kind == RELEASED and ring in self._rings():
            with self._mutex:
                self._released.add(ring)

    def won(self, ring: str) -> None:
        """This worker won ``ring``'s lock: count a failover or a handoff."""
        me = self.member_id
        with self._mutex:
            before = self._last_holder.get(ring)
            if before is not None and before != me:
                if ring in self._released:
                    self._handoffs[ring] += 1
                else:
                    self._failovers[ring] += 1
            self._last_holder[ring] = me
            self._released.discard(ring)
            self._won_at[ring] = time.monotonic()

    # -- hooks of the tasks -----------------------------------------------------------

    def requeued(self, ring: str) -> None:
        """A request went back to the ring's queue (not served here)."""
        with self._mutex:
            self._requeued[ring] += 1

    def failed(self, task: str, ring: str, error: BaseException) -> None:
        """A request of ``task`` (short name) failed with ``error``."""
        kind = type(error).__name__ if isinstance(error, CoderRingError) else UNEXPECTED
        with self._mutex:
            self._requests[ring, task] += 1
            if task in DRAW_TASKS:
                self._errors[ring, kind] += 1

    def finished(self, task: str, ring: str, extra: object, result: object, seconds: float) -> None:
        """A request of ``task`` returned ``result`` after ``seconds``."""
        issued = 0
        if task in ISSUING_TASKS:
            issued = len(result) if isinstance(result, list) else int(isinstance(result, str))
        if task == "get_code":
            latency = self._latency.get(ring)
            if latency is None:
                latency = self._latency[ring] = self.latency.labels(ring)
            latency.observe(seconds)
        with self._mutex:
            self._requests[ring, task] += 1
            if issued and isinstance(extra, str):
                counts = self._issued.setdefault(ring, {})
                if extra not in counts and len(counts) >= MAX_POOLED_EXTRAS:
                    # A series is never moved or dropped (rate() would count its codes
                    # again): the first extras keep theirs, later ones share one.
                    extra = OTHER_EXTRAS
                counts[extra] = counts.get(extra, 0) + issued

    # -- the scrape -------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """Every family of a worker's view (prometheus_client's Collector protocol)."""
        families = Families(WORKER)
        now = time.monotonic()
        database_up = self._healthy()
        rings = sorted(self._rings())
        pools = self._served()
        for ring, pooled in sorted(pools.items()):
            families.info("coder_ring_holder", [ring], {"holder": self.node})
            families.add("coder_ring_lock_age_seconds", [ring], now - self._won_at.get(ring, now))
            try:
                state = self._status(ring)
            except UnknownRing:
                continue  # removed from the rings file meanwhile
            except CoderRingError as error:
                log.warning("metrics: cannot read ring %s: %s", ring, error)
                database_up = False
                continue
            families.ring_status(state.served_by(self.node, pooled), extras=pooled)
        families.add("coder_ring_database_up", [], 1 if database_up else 0)
        with self._mutex:
            for ring in rings:
                for name, counter in (
                    ("coder_ring_failovers", self._failovers),
                    ("coder_ring_handoffs", self._handoffs),
                    ("coder_ring_requeued", self._requeued),
                ):
                    families.add(name, [ring], counter[ring])
            for (ring, task), count in sorted(self._requests.items()):
                families.add("coder_ring_requests", [ring, task], count)
            for (ring, kind), count in sorted(self._errors.items()):
                families.add("coder_ring_draw_errors", [ring, kind], count)
            for ring, counts in sorted(self._issued.items()):
                for extra, count in sorted(counts.items()):
                    families.add("coder_ring_codes_issued", [ring, extra], count)
        yield from families

    def _served(self) -> dict[str, dict[str, int]]:
        """ring -> pooled codes per extra, for the rings served now."""
        with contextlib.suppress(RuntimeError):  # a pool or seat changed while copied
            return {ring: dict(pooled) for ring, pooled in self._pools().items()}
        return {}
