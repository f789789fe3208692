"""The lease round's check that the rings a worker serves still carry its epochs: an
operator's ``reset`` or ``rebuild`` of a ring reaches a worker here (or at once, by a
notice), and a database that does not answer within the round's budget starts a failure
for :class:`~coder_ring.celery.health.DatabaseHealth` to time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from coder_ring.celery.health import Bounded, DatabaseHealth
from coder_ring.celery.seat import RingSeat
from coder_ring.errors import CoderRingError, StoreUnavailable
from coder_ring.store import Store

log = logging.getLogger("coder_ring.worker")


class EpochCheck:
    """Checks ``store``'s epochs of the seats served on ``checks``' thread, reporting to
    ``health``; ``stale(seat)`` claims a seat whose ring was reset or rebuilt again."""

    def __init__(
        self,
        store: Store,
        checks: Bounded,
        health: DatabaseHealth,
        stale: Callable[[RingSeat], object],
    ) -> None:
        self.store, self.checks, self.health, self.stale = store, checks, health, stale

    def run(self, seats: Iterable[RingSeat], budget: float) -> None:
        """Check the epochs of ``seats`` served (or, serving none while healthy, that the
        database answers), waiting at most ``budget``: no answer is a failure."""
        started = time.monotonic()
        active = [s for s in seats if s.can_serve() and s.server.epoch is not None]
        if not active and not self.health.healthy:
            return  # the health check probes on its own schedule
        try:
            if not active:
                self.checks.run(self.store.ping, budget)
                self.health.ok()
                return
            rings = [seat.ring for seat in active]
            records = self.checks.run(lambda: self.store.ring_records(rings), budget)
        except StoreUnavailable:
            self.health.failed(since=started)  # unhealthy once it has lasted a TTL
            return
        except CoderRingError:
            return  # requests meet the failure and report it
        self.health.ok()
        for seat in active:
            record = records.get(seat.ring)
            if record is not None and not seat.server.still_current(record):
                log.info(
                    "ring %s: reset or rebuilt (epoch %d): pool dropped, claiming it again",
                    seat.ring,
                    record.epoch,
                )
                self.stale(seat)
