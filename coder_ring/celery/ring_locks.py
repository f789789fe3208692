"""Following the assignment with the rings' locks, each lease round, in one script call
(:class:`~coder_ring.registry.member_lease.MemberLease`) however many rings a worker holds.

A round plans what each seat's lock needs (take or keep it, keep it through a handoff,
let it go), asks Redis once, then applies the answers seat by seat under each seat's
transition lock. A seat whose state changed between the plan and the answer (a handoff
ended meanwhile) ignores this round's answer, and a lock taken for it is let go.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from coder_ring.celery.seat import RingSeat
from coder_ring.celery.wait_clock import WaitClock
from coder_ring.registry.member_lease import MemberLease
from coder_ring.registry.redis_clock import LateRequest

log = logging.getLogger("coder_ring.worker")


@dataclass(frozen=True)
class _Plan:
    """What one seat's lock needs this round, and the seat's state it was made from."""

    target: str | None  # the member the assignment names
    wanted: bool
    held: bool
    lapsed: bool
    handing_off: bool

    @property
    def asks(self) -> bool:
        """Whether Redis is asked about the lock at all."""
        return self.handing_off or self.wanted or (self.held and not self.lapsed)

    @property
    def takes(self) -> bool:
        """Whether a free lock is taken (else only ours is extended)."""
        return self.wanted and not self.handing_off


class RingLocks:
    """Takes, keeps and lets go the ring locks of one worker (``member_id``)."""

    def __init__(
        self,
        book: MemberLease,
        member_id: str,
        node: str,
        *,
        won: Callable[[RingSeat], None],
        lost: Callable[[RingSeat], None],
        leave: Callable[[RingSeat, str], None],
    ) -> None:
        self.book = book
        self.member_id = member_id
        self.node = node
        self._won, self._lost, self._leave = won, lost, leave
        #: Seconds the last round's renewal took in Redis (its script calls).
        self.call_seconds = 0.0
        self.waits = WaitClock()  # the lease thread's

    def follow(
        self,
        seats: Iterable[RingSeat],
        assignment: dict[str, str],
        live: set[str],
        *,
        healthy: bool,
        stopping: bool,
    ) -> bool:
        """One round: every seat's lock as the assignment says. A ring assigned to a member
        not alive may be taken by anyone (the lock decides, the coordinator then keeps it
        there). A ring the assignment does not name is left alone: the coordinator has
        not placed it yet (a cold start waits for the members to join; taking it would
        make the first member up take every ring). Whether Redis answered (False also
        when nothing was asked)."""
        plans = [
            (seat, plan) for seat in seats if (plan := self._plan(seat, assignment, live, healthy))
        ]
        began = self.waits.mark()  # the link's share: see coder_ring.celery.wait_clock
        granted, until, error = self._ask([(seat, plan.takes) for seat, plan in plans if plan.asks])
        self.call_seconds = self.waits.since(began)
        for seat, plan in plans:
            with seat.transition:
                mine = until if granted.get(seat.ring) else None
                self._apply(seat, plan, mine, error, stopping)
        # A renewal refused as late was answered, slowly: a slow round for the link's
        # health (a slow link degrades the worker at once), not a cut.
        return (error is None and bool(granted)) or isinstance(error, LateRequest)

    def keep(self, seats: Iterable[RingSeat]) -> None:
        """While the worker stops: extend the locks still held (their pools are on their
        way back), take none."""
        held = [seat for seat in seats if seat.has_lock()]
        granted, until, error = self._ask([(seat, False) for seat in held])
        if error is not None:
            return  # asked again next round: a closed seat serves nothing meanwhile
        for seat in held:
            with seat.transition:
                if seat.has_lock():
                    seat.valid_until = until if granted.get(seat.ring) else 0.0

    def prolong(self, seats: Iterable[RingSeat], member_key: str) -> None:
        """Between rounds: extend the lease alone and, with it, every seat whose lock it
        still covers. No other member can have taken a lock of ours while our lease
        lived, and a seat still valid when this began had it alive until then; a lease
        found gone extends nothing (the next round's tend sees what was taken)."""
        try:
            started, until = self.book.prolong(member_key)
        except redis.RedisError:
            return  # the round tries again
        if until is None:
            return
        for seat in seats:
            with seat.transition:
                if seat.has_lock() and seat.valid_until > started:
                    seat.valid_until = max(seat.valid_until, until)

    def give_up(self, seats: Iterable[RingSeat]) -> list[RingSeat]:
        """Stop serving every seat holding a lock (handing off or not) and release the
        locks in one call, giving nothing back (the database is unreachable: the pools
        are dropped, their codes lost, never repeated). The seats given up."""
        gone = []
        for seat in seats:
            with seat.transition:
                if seat.has_lock():
                    seat.valid_until = 0.0
                    gone.append(seat)
        # Tried twice: a lost packet on a lossy link times the call out, and the locks then
        # stay ours, nobody serving them, until the next round's tend lets them go.
        for _ in range(2 if gone else 0):
            try:
                self.book.release([seat.lease.key for seat in gone])
                break
            except redis.RedisError:
                continue  # if both fail, the next round's tend lets them go
        return gone

    def _plan(
        self, seat: RingSeat, assignment: dict[str, str], live: set[str], healthy: bool
    ) -> _Plan | None:
        """What ``seat``'s lock needs this round; None for nothing at all (neither held,
        nor wanted, nor handed off: most seats of a worker among many rings)."""
        target = assignment.get(seat.ring)
        wanted = (
            healthy
            and not seat.closed
            and (target == self.member_id or (target is not None and target not in live))
        )
        held = seat.has_lock()
        if not (wanted or held or seat.handing_off):
            return None
        lapsed = held and seat.valid_until <= time.monotonic()
        return _Plan(target, wanted, held, lapsed, seat.handing_off)

    def _ask(
        self, asked: list[tuple[RingSeat, bool]]
    ) -> tuple[dict[str, bool], float, redis.RedisError | None]:
        try:  # even asking about no lock: the lease is renewed, strays let go
            until, granted = self.book.tend([(seat.lease.key, take) for seat, take in asked])
        except redis.RedisError as error:
            return {}, 0.0, error
        return {seat.ring: ok for (seat, _), ok in zip(asked, granted, strict=True)}, until, None

    def _apply(
        self,
        seat: RingSeat,
        plan: _Plan,
        until: float | None,
        error: redis.RedisError | None,
        stopping: bool,
    ) -> None:
        """Act on Redis's answer for ``seat`` (its transition lock held)."""
        if (seat.has_lock(), seat.handing_off) != (plan.held, plan.handing_off):
            if until is not None and not seat.has_lock():
                _release(seat)  # taken or kept for a seat that let go meanwhile
            return
        if error is not None:
            # It says nothing of the lock: a held one stays ours until its time runs out
            # (the seat stops serving then by itself), so one slow or lost reply drops no
            # pool; asked again next round. Once the time ran out, it is lost (below).
            if not (plan.held and plan.lapsed) or plan.handing_off:
                return
            # INFO: the worker said "Redis unreachable" once, and "lock lost" follows.
            log.info("ring %s: lock unreachable (%s); stop serving", seat.ring, error)
        if plan.handing_off:
            seat.valid_until = until or 0.0  # kept until the pool is home
            return
        if plan.held and not plan.wanted and not plan.lapsed and until is not None:
            seat.valid_until = until
            if plan.target == self.member_id:
                why = "this worker is unhealthy"
            else:
                why = f"assigned to {plan.target}" if plan.target else "released"
            self._leave(seat, why)
            return
        if stopping:
            if until is not None and not plan.held:
                _release(seat)  # won just as the worker stops: nothing to give back
            return
        if plan.lapsed:
            # The lease lapsed before this renewal (the process was paused, or this thread
            # starved, past the TTL): another worker may have held the ring meanwhile, so
            # it is a loss even if the renewal worked; the ring is claimed anew next round.
            until = None
        seat.valid_until = until or 0.0
        if until is not None and not plan.held:
            log.info("ring %s: lock won by %s", seat.ring, self.node)
            self._won(seat)
        elif until is None and plan.held:
            log.warning("ring %s: lock lost; pool dropped", seat.ring)
            self._lost(seat)


class LeaseKeeper:
    """A thread renewing the worker's lease (and membership) every TTL/3 between lease
    rounds (:meth:`RingLocks.prolong`): 10,000 rings on a busy machine made rounds
    outlast the TTL, and every ring of a worker lapsed at once, then was taken again,
    round after round. A round stuck for :data:`STUCK_ROUNDS` TTLs is not covered: its
    worker's rings fail over as before."""

    STUCK_ROUNDS = 3

    def __init__(
        self, locks: RingLocks, seats: Callable[[], list[RingSeat]], member_key: str, ttl: float
    ) -> None:
        self.locks, self.seats, self.member_key, self.ttl = locks, seats, member_key, ttl
        #: monotonic() time the round under way (or the last one) began.
        self.round_began = time.monotonic()
        self._stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="ring-lease", daemon=True).start()

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self.ttl / 3):
            if time.monotonic() - self.round_began < self.STUCK_ROUNDS * self.ttl:
                self.locks.prolong(self.seats(), self.member_key)


def _release(seat: RingSeat) -> None:
    with contextlib.suppress(redis.RedisError):  # if so, it expires by itself
        seat.lease.release()
