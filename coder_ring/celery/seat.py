"""One ring as a worker sees it: its lease, its pool server, and the serving of a request.

Nothing here imports Celery (tests/unit/test_floors.py checks it):
:mod:`coder_ring.celery.ring_tasks` turns :class:`NotServedHere` into a requeue.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import redis

from coder_ring.errors import CoderRingError, Fenced, NotHolding
from coder_ring.registry.member_lease import RingLock
from coder_ring.ring_server import RingServer

T = TypeVar("T")


class NotServedHere(CoderRingError):
    """This worker does not serve the ring now: the request goes back to the ring's queue
    for the worker that does."""


class RingSeat:
    """A ring this worker may serve: its lease and, while held, its pool server."""

    def __init__(self, ring: str, lease: RingLock, server: RingServer) -> None:
        self.ring = ring
        self.lease = lease
        self.server = server
        #: monotonic() time until which the lease is surely ours; 0 when not held.
        self.valid_until = 0.0
        #: The ring left this worker's rings (file changed, or the worker stops).
        self.closed = False
        #: Moving to another worker: no new request is served, the lock is still ours.
        self.handing_off = False
        #: Held while a request is served; a handoff waits for it.
        self.serving = threading.Lock()
        #: Held while the lease's state changes (the lease thread's tend, letting go), so
        #: a handoff ending midway through a tend cannot look like a new win.
        self.transition = threading.Lock()

    def has_lock(self) -> bool:
        """True from winning the lock until letting it go (or losing it), a handoff
        included: see :meth:`can_serve` for whether requests are served."""
        return self.valid_until > 0

    def can_serve(self, now: float | None = None) -> bool:
        """True while this worker may serve the ring's requests: its lease is valid (at
        ``now``, monotonic, if given) and it is neither handing the ring off nor closing
        it."""
        valid = self.valid_until > (time.monotonic() if now is None else now)
        return valid and not self.closed and not self.handing_off

    def pooled(self) -> dict[str, int]:
        """extra -> codes pooled ({} until the ring is claimed in the database)."""
        return {} if self.server.epoch is None else self.server.pooled_by_extra()

    def recheck(self) -> bool:
        """Ask Redis now whether the lease is still ours (after a fenced write)."""
        if self.closed or self.handing_off:
            return False
        try:
            until = self.lease.renew()
        except redis.RedisError:
            until = None
        self.valid_until = until or 0.0
        return until is not None

    def let_go(self, give_back: bool) -> tuple[int, bool]:
        """Stop serving: wait for the request in flight, give the pool back (when
        ``give_back``), then release the lock. Returns (codes given back, whether a held
        lock was released)."""
        try:
            returned = self.drop_claim(give_back)
        finally:
            # Even when giving back failed (the pool is dropped first: its codes are lost,
            # never repeated): a seat left handing off would renew its lock for ever.
            with self.transition:
                # A seat handing off may have lost track of its lock (a failed renewal):
                # release it anyway (only our own token is deleted) so nobody waits a TTL.
                was_held = self.has_lock() or self.handing_off
                self.valid_until = 0.0
                if was_held:
                    with contextlib.suppress(redis.RedisError):  # if so, it expires by itself
                        was_held = self.lease.release()
                self.handing_off = False
        return returned, was_held

    def drop_claim(self, give_back: bool) -> int:
        """Drop the claim and the pools once the request in flight is done (giving the
        codes back when ``give_back``); the lock stays as it is. A request cannot claim
        again midway, which would leave its fresh claim's fill to be dropped."""
        with self.serving:
            return self.server.deactivate(give_back=give_back)

    def ensure_active(self) -> None:
        """Claim the ring in the database if this server has not yet (or was fenced)."""
        if self.server.epoch is None and self.can_serve():
            # The pool fills in the background: activations stay one transaction each.
            self.server.activate(if_inactive=True, fill_now=False)

    def serve(self, action: Callable[[RingServer], T]) -> T:
        """Run ``action`` on the pool server if this worker holds the ring; else
        :class:`NotServedHere`. A request in flight finishes before any handoff."""
        if not self.can_serve():
            raise NotServedHere(f"ring {self.ring!r} is not served by this worker now")
        with self.serving:
            if not self.can_serve():
                raise NotServedHere(f"ring {self.ring!r} moved away from this worker")
            try:
                self.ensure_active()
                return action(self.server)
            except (Fenced, NotHolding):
                # Fenced by an operator's reset/rebuild while we still hold the lock: claim
                # again. Fenced by another holder: we lost the ring; its holder serves.
                if self.recheck():
                    self.ensure_active()
                    return action(self.server)
                raise NotServedHere(f"ring {self.ring!r} was taken over") from None


def served_pools(seats: Mapping[str, RingSeat]) -> dict[str, dict[str, int]]:
    """ring -> codes pooled per extra, for those of ``seats`` that serve now (what a
    worker's metrics show)."""
    return {ring: seat.pooled() for ring, seat in list(seats.items()) if seat.can_serve()}
