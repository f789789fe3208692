"""How long each lease round's Redis calls took: published in the worker's heartbeat for
the other members, and judged against theirs (:class:`~coder_ring.celery.health.LinkHealth`).

A slow link shows only against the others: when Redis itself is slow, every member's
rounds are. So each member publishes how its last round went and when it began, in
Redis's clock (the one clock all members read alike), and a worker whose rounds are slow
degrades only when another member's round that began after its own slow ones was quick
(:meth:`~coder_ring.celery.registry_view.RegistryView.quick_peer_since`).
"""

from __future__ import annotations

import math

from coder_ring.celery.health import LinkHealth
from coder_ring.celery.registry_view import RegistryView
from coder_ring.celery.ring_locks import RingLocks


class LinkWatch:
    """One worker's lease rounds as its link's health sees them."""

    def __init__(
        self, health: LinkHealth, registry: RegistryView, locks: RingLocks, period: float
    ) -> None:
        self.health, self.registry, self.locks, self.period = health, registry, locks, period
        #: Seconds of the Redis calls of the last healthy round (None: not a fair figure).
        self.seconds: float | None = None
        #: When that round began, in Redis's clock as this worker reckons it (a lower
        #: bound, rounded down: the others never date it late); None when not known.
        self.began: float | None = None

    def round(self, started: float, answered: bool, healthy: bool) -> str | None:
        """After a round begun at ``started`` (monotonic) in which Redis ``answered``,
        the worker ``healthy`` before it: what :meth:`LinkHealth.round` says."""
        # The heartbeat's and renewal's own time, and the registry reads', not the
        # coordinator's reads of every lock nor the seats' bookkeeping (busy among 10,000
        # rings: no slow link).
        seconds = self.registry.call_seconds + self.locks.call_seconds
        offset = self.registry.clock.estimate()
        # Unfair figures for the others: an unhealthy round (no bid), a failed one (cut short).
        fair = answered and healthy
        self.seconds = seconds if fair else None
        self.began = (
            math.floor((started + offset) * 1000) / 1000 if fair and offset is not None else None
        )
        limit = self.health.limit
        verdict = self.health.round(
            seconds, answered, self.registry.quick_peer_since(limit, self.period)
        )
        # Slow enough, but the others' records were read early in the round, before any
        # round of theirs that began after this worker's slow ones: read them again now
        # rather than a whole round later (a round more without a code on a slow link).
        if verdict is None and self.health.undecided and self.registry.read_peers():
            verdict = self.health.confirm(self.registry.quick_peer_since(limit, self.period))
        return verdict
