"""The one member that places rings, elected by a lease.

Why one decision-maker rather than a rule every member computes: members read Redis
at different moments, so a computed rule would briefly disagree after every join or
death and two members could chase the same ring. One coordinator writes one
assignment; the others follow it. If the coordinator dies its lease expires and the
next member to ask takes over within the TTL. A duplicate holder is still harmless:
the ring lock admits one consumer and the database epoch fences any stale writer.

Each round the coordinator reads the live members and where rings are held, runs
:func:`coder_ring.registry.placement.place`, and writes the assignment (only if it is still the
coordinator: the write is fenced by its lease). Rebalancing waits until membership
has not changed for ``rebalance_after`` seconds, and at most ``max_moves`` rings (or one
per :data:`RINGS_PER_MOVE` rings, if more) are on their way between members at any time
(moves assigned in earlier rounds and not completed yet count), so a flapping member
causes no storm; failovers do not wait.

A cold start (no ring held, no ring assigned to a live member) waits for the cluster to
form: the first member up would otherwise be assigned every ring, lock and claim them
all, then hand two thirds of them off a few at a time (at 1,000 rings on 3 workers that
took 30 to 70 s, issue 19). So a young coordinator places nothing until membership has
held still for ``formation`` seconds, and at most ``3 * formation`` seconds after it
started (a leave does not restart the wait); members take no unassigned ring meanwhile
(:class:`~coder_ring.celery.ring_locks.RingLocks`). An old coordinator never waits (a
wiped Redis looks cold too, and its rings must be served again at once), nor does one
with no more than ``max_moves`` rings (one batch of handoffs costs less than the wait).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence

import redis

from coder_ring.registry.keys import assignment_key, assignment_version_key, coordinator_key
from coder_ring.registry.lease import Lease, as_text
from coder_ring.registry.membership import MemberInfo
from coder_ring.registry.placement import Candidate, place
from coder_ring.registry.redis_clock import RedisClock

log = logging.getLogger("coder_ring.worker")

# One HSET per ring: unpack() of every ring at once fails beyond about 4,000 rings (Lua's
# C stack: "too many results to unpack").
# KEYS: the coordinator's lease, the assignment, its version; ARGV: the lease's token, a
# new version, then ring, member, ring, member...
_WRITE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[2])
for i = 3, #ARGV, 2 do redis.call('hset', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('set', KEYS[3], ARGV[2])
return 1
"""


#: Beyond ``max_moves``, one ring in flight per this many rings: a fifth worker joining
#: 10,000 rings takes 2,000, which 10 moves at a time took over 10 minutes (issue 19).
RINGS_PER_MOVE = 40


class Coordinator:
    """This member's bid for the coordinator's lease, and the rounds it runs if elected."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        member_id: str,
        ttl: float,
        *,
        rebalance_after: float,
        max_moves: int,
        formation: float = 0.0,
        clock: RedisClock | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        #: Seconds membership must stay unchanged before rings move to even the loads.
        self.rebalance_after = rebalance_after
        self.max_moves = max_moves
        #: Seconds membership must hold still before a cold start's first placement.
        self.formation = formation
        self._born = time.monotonic()
        self._lease = Lease(client, coordinator_key(namespace), member_id, ttl, clock)
        self._write = client.register_script(_WRITE)
        self.leading = False
        self._members: frozenset[str] = frozenset()
        self._changed_at = self._joined_at = time.monotonic()

    def round(
        self,
        members: Sequence[MemberInfo],
        holders: Mapping[str, str],
        stored: dict[str, str] | None = None,
    ) -> dict[str, str] | None:
        """Run one round if this member is (or becomes) the coordinator; the assignment it
        wrote, or None when another member coordinates. ``stored``: the assignment as the
        caller just read it (else read here; at thousands of rings a read costs)."""
        if not self.lead(members):
            return None
        return self.place(members, holders, stored)

    def lead(self, members: Sequence[MemberInfo]) -> bool:
        """Note the healthy members, and take or renew the coordinator's lease: whether
        this member coordinates (then :meth:`place`, with every ring's holder)."""
        ids = frozenset(member.id for member in members if member.healthy)
        now = time.monotonic()
        # Kept by every member, not only the leader: a member that takes over in a
        # rolling restart knows whether the cluster is still forming.
        if ids - self._members:
            self._joined_at = now
        if ids != self._members:
            self._members, self._changed_at = ids, now
        self.leading = self._lease.acquire_or_renew() is not None
        return self.leading

    def place(
        self,
        members: Sequence[MemberInfo],
        holders: Mapping[str, str],
        stored: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """The leader's round (after :meth:`lead`): place the rings and store the
        assignment if it changed; the assignment."""
        healthy = [member for member in members if member.healthy]
        ids = frozenset(member.id for member in healthy)
        now = time.monotonic()
        if stored is None:
            stored = read_assignment(self.client, self.namespace)
        # A member that says it holds a ring whose lock is free has stopped serving it
        # (its lease ends before the lock expires). Cut off, or with heartbeats reaching
        # Redis late, it stays live for a TTL after its last one: its rings go elsewhere
        # now, not once it is gone.
        lapsed = {(m.id, ring) for m in healthy for ring in m.holding if ring not in holders}
        # Where a ring is meant to be, if that member lives; else where it is held.
        current = {ring: holder for ring, holder in holders.items() if holder in ids}
        current.update({r: m for r, m in stored.items() if m in ids and (m, r) not in lapsed})
        rings = {ring for member in healthy for ring in member.rings}
        if not current and len(rings) > self.max_moves and self._forming(now):
            # Nothing placed yet: wait for the others. A stale assignment (every member
            # it names is gone) is cleared, or members would take its rings meanwhile.
            # A few rings (no more than one batch of moves) are placed at once: their
            # handoffs cost less than the wait.
            if stored:
                self._store({})
            return {}
        # Moves assigned earlier and not completed yet (the member it is assigned to does
        # not hold the ring) use up the cap: every notice (ASSIGNED, RELEASED) runs another
        # round at once, so a cap on the moves of one round alone let a join reassign
        # every ring it would ever move within a few milliseconds.
        in_transit = sum(
            1
            for ring, member in stored.items()
            if ring in rings and member in ids and holders.get(ring) != member
        )
        placement = place(
            rings,
            [
                Candidate(m.id, frozenset(r for r in m.rings if (m.id, r) not in lapsed))
                for m in healthy
            ],
            current,
            rebalance=now - self._changed_at >= self.rebalance_after,
            max_moves=max(0, max(self.max_moves, len(rings) // RINGS_PER_MOVE) - in_transit),
        )
        if placement.placed or placement.moved:
            log.info(
                "coordinator: %d rings placed, %d moved, over %d members",
                placement.placed,
                placement.moved,
                len(healthy),
            )
        if stored != placement.assignment:
            self._store(placement.assignment)
        return placement.assignment

    def _forming(self, now: float) -> bool:
        """Whether a cold start's first placement still waits for members to join. Only a
        join restarts the wait: after a leave (the last old worker of a rolling restart)
        the members that will serve are all here."""
        return now - self._joined_at < self.formation and now - self._born < 3 * self.formation

    def _store(self, assignment: dict[str, str]) -> None:
        flat = [item for pair in sorted(assignment.items()) for item in pair]
        self._write(
            keys=[
                self._lease.key,
                assignment_key(self.namespace),
                assignment_version_key(self.namespace),
            ],
            args=[self._lease.token, uuid.uuid4().hex, *flat],
        )

    def resign(self) -> None:
        """Give the lease up (a graceful stop): another member takes over at once."""
        if self.leading:
            self._lease.release()
            self.leading = False


def read_assignment(client: redis.Redis, namespace: str) -> dict[str, str]:
    """The coordinator's last assignment, ring -> member id."""
    raw = client.hgetall(assignment_key(namespace))
    return {as_text(key): as_text(value) for key, value in raw.items()}


class AssignmentCache:
    """The assignment, read again only when the coordinator wrote one since: its version
    is a new random token each write (a failover back to an older copy changes it too),
    one GET a round instead of every ring's entry."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.client, self.namespace = client, namespace
        self._version: bytes | str | None = None
        self._assignment: dict[str, str] = {}

    def read(self) -> dict[str, str]:
        """The assignment now (read before its version changes at worst: read again
        next time)."""
        version = self.client.get(assignment_version_key(self.namespace))
        if version is None or version != self._version:
            self._assignment = read_assignment(self.client, self.namespace)
            self._version = version
        return self._assignment
