"""The registry's part of a lease round: heartbeat, take a turn as coordinator if
elected, and read the assignment -- or, when Redis fails, the view read last.

One failed read (a timeout on a slow link) says nothing new about where the rings
belong. Treating it as "no assignment" made a worker take every free lock (rings on
their way between workers, a cold start's unplaced rings), pulling them off the workers
they were assigned to, and back again a round later.
"""

from __future__ import annotations

import contextlib
import time

import redis

from coder_ring.celery.wait_clock import WaitClock
from coder_ring.metrics.worker import WorkerMetrics
from coder_ring.registry import notices
from coder_ring.registry.coordinator import AssignmentCache, Coordinator
from coder_ring.registry.member_lease import lock_holders
from coder_ring.registry.membership import MemberInfo, Membership, live_members
from coder_ring.registry.reachability import Reachability
from coder_ring.registry.redis_clock import LateRequest, RedisClock

#: Rings on their way between members at once, at most (a join converges in a few batches).
MAX_MOVES_PER_ROUND = 10


class RegistryView:
    """Where one worker reads (and, as coordinator, writes) where the rings belong."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        member_id: str,
        ttl: float,
        *,
        metrics: WorkerMetrics,
        reach: Reachability,
        clock: RedisClock | None = None,
    ) -> None:
        self.clock = clock = clock or RedisClock(client)
        self.client = client
        self.member_id = member_id
        self.namespace = namespace
        self.membership = Membership(client, namespace, ttl, clock)
        self.assignments = AssignmentCache(client, namespace)
        self.coordinator = Coordinator(
            client,
            namespace,
            member_id,
            ttl,
            rebalance_after=ttl,
            max_moves=MAX_MOVES_PER_ROUND,
            # Two or three lease rounds: enough for members started together to register.
            formation=ttl / 2,
            clock=clock,
        )
        self.metrics = metrics
        self.reach = reach
        #: The assignment (ring -> member id) and the healthy live members, as last read.
        self.assignment: dict[str, str] = {}
        self.live: set[str] = set()
        #: The other members as last read, and when (monotonic).
        self.peers: list[MemberInfo] = []
        self.read_at = float("-inf")
        #: Seconds the last round's Redis calls took, the coordinator's placement aside.
        self.call_seconds = 0.0
        self.waits = WaitClock()  # the lease thread's

    def round(self, info: MemberInfo, healthy: bool) -> bool:
        """Heartbeat ``info``, coordinate if elected and ``healthy``, and read the
        assignment into :attr:`assignment` and :attr:`live` (kept as they were when
        Redis fails). Whether Redis answered at all."""
        answered = False
        # The link's share of the round (see coder_ring.celery.wait_clock).
        began, placing = self.waits.mark(), 0.0
        try:
            self.membership.heartbeat(info)
            answered = True
            members = self._read_members()
            live = {member.id for member in members if member.healthy}
            before = self.assignments.read()
            # Every ring's holder (an MGET of every lock) only for the coordinator, to
            # place them: a round costs the others the same at any number of rings. The
            # metrics (a failover or a handoff) go by the holders the records name.
            leading = healthy and self.coordinator.lead(members)
            if leading:
                placing_began = self.waits.mark()
                rings = {ring for member in members for ring in member.rings}
                holders = lock_holders(self.client, self.namespace, rings)
            else:
                holders = {ring: member.id for member in members for ring in member.holding}
            self.metrics.saw_holders(holders)
            assignment = self.coordinator.place(members, holders, before) if leading else None
            placing = self.waits.since(placing_began) if leading else 0.0
            if assignment is None:
                assignment = before
            elif assignment != before:
                notices.publish(self.client, self.namespace, notices.ASSIGNED)
            self.assignment, self.live = assignment, live
            self.reach.reached()
        except redis.RedisError as error:
            # A heartbeat refused as late was answered, slowly: a slow round for the
            # link's health (a slow link degrades the worker), not a cut.
            answered = answered or isinstance(error, LateRequest)
            self.reach.failed(error)  # one line per outage; the last assignment is followed
        finally:
            # Every call's time but the coordinator's reads of every lock and its
            # placement (they grow with the rings: a coordinator among 10,000 rings is no
            # slow link); a failed placement counts whole.
            self.call_seconds = max(self.waits.since(began) - placing, 0.0)
        return answered

    def read_peers(self) -> bool:
        """Read the other members' records again, out of turn (a worker whose round was
        slow asks how theirs went meanwhile); False when Redis did not answer."""
        try:
            self._read_members()
        except redis.RedisError:
            return False
        return True

    def _read_members(self) -> list[MemberInfo]:
        """Every live member's record; the others' kept in :attr:`peers`."""
        members = live_members(self.client, self.namespace)
        self.peers = [member for member in members if member.id != self.member_id]
        self.read_at = time.monotonic()
        return members

    def say(self, info: MemberInfo) -> None:
        """Heartbeat ``info`` out of turn (a worker giving its rings up); a Redis error is
        ignored: the next round's heartbeat says it again."""
        with contextlib.suppress(redis.RedisError):
            self.membership.heartbeat(info)

    def quick_peer_since(self, limit: float, period: float) -> float | None:
        """The latest monotonic time by which a lease round of another healthy member
        surely began that its Redis answered well within ``limit`` (None: no such
        member). Cautious on every count, since a wrong "quick" makes this worker give
        its rings up: half the limit (members make a few calls more or less a round).

        Its record says when that round began, in Redis's clock as the member reckons it
        (never late). Read back through this worker's own reckoning (late at most by the
        trip back of its best reply, well under a millisecond on a LAN: replies of a
        slow link are on time as often as not), and dated half the limit earlier still:
        Redis may have turned slow for everyone while this worker's first slow round was
        under way, after another member's quick round began, and that round's calls,
        quick, took less than that. A record without it (a worker of an earlier release)
        is dated by its heartbeat two periods back: written at the start of the member's
        next round, which may begin a period after the last one ended, and stamped late by
        a slow Redis. Both wait for the member's next heartbeat: a slow link is found a
        round or two after it turns slow."""
        offset = self.clock.estimate()
        began = []
        for peer in self.peers:
            seconds = peer.redis_seconds
            if not peer.healthy or seconds is None or seconds > limit / 2:
                continue
            if peer.redis_began is not None and offset is not None:
                dated = peer.redis_began - offset - limit / 2
                # Never after the record was written (its age is Redis's own reckoning):
                # a member whose clock samples predate a step back of Redis's clock (a
                # failover, an NTP step) publishes its rounds late (red team 6).
                if peer.age is not None:
                    dated = min(dated, self.read_at - peer.age)
                began.append(dated)
            elif peer.age is not None:
                began.append(self.read_at - peer.age - 2 * period)
        return max(began, default=None)
