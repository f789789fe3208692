"""Ring locks under one lease per member: renewing a worker's locks costs the same
whatever the number of rings it holds (issue 19).

A ring's lock (:func:`~coder_ring.registry.keys.lock_key`) holds its holder's member id
and has no TTL of its own. It is valid while that member's lease
(:func:`~coder_ring.registry.keys.member_lease_key`) lives: the one key a worker renews
each round, by Redis's clock (a renewal that reaches Redis after the worker gave up on it
does nothing: :mod:`~coder_ring.registry.redis_clock`). A claim takes a lock that is
missing or whose holder's lease is gone, in one script, so two members never both take
it; a worker whose lease lapsed finds its locks taken by the next round's read, and is
fenced by the database epoch (see :mod:`coder_ring.ring_server`) for anything it writes
meanwhile. A release deletes a lock only while it names us.

Each round is one script call per :data:`LOCKS_PER_CALL` locks: the lease's ``SET``, one
``MGET`` of the locks asked about (which of them still name us), and a ``SET`` per lock
taken. Idle, that is three commands per worker and round.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence

import redis

from coder_ring.registry.keys import lock_key, member_lease_key
from coder_ring.registry.lease import SAFE_SHARE, as_text, holder_name
from coder_ring.registry.redis_clock import RedisClock, clocked

# KEYS[1]: our lease, KEYS[2..]: ring locks. After the clock's ARGV[1..3], ARGV[4]: our
# member id, ARGV[5]: the prefix of a member's lease key, ARGV[5 + i]: what to do with
# KEYS[1 + i]: 't' keep it or take it if free, 'k' keep it only, 'd' delete it if ours.
# Returns 1 per lock that names us afterwards. A lock with a TTL of its own is a worker's
# of the version before member leases (0.2.0, stopped for the upgrade but its lock not
# yet expired): it is valid while its TTL runs. Versions do not run side by side (README).
_TEND = clocked("""
redis.call('set', KEYS[1], ARGV[4], 'PX', lasting)
local result = {now}
if #KEYS == 1 then return result end
local holders = redis.call('mget', unpack(KEYS, 2))
local alive = {}
for index = 1, #holders do
  local holder, key, op = holders[index], KEYS[index + 1], ARGV[index + 5]
  local ours = 0
  if holder == ARGV[4] then
    if op == 'd' then redis.call('del', key) else ours = 1 end
  elseif op == 't' then
    if holder and alive[holder] == nil then
      alive[holder] = redis.call('exists', ARGV[5] .. holder) == 1 or redis.call('pttl', key) > 0
    end
    if not holder or not alive[holder] then
      redis.call('set', key, ARGV[4])
      ours = 1
    end
  end
  result[index + 1] = ours
end
return result
""")
# Per key: delete it if it still names us (a late release does no harm: only ours goes).
_RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then
    released = released + redis.call('del', key)
  end
end
return released
"""
# Whether the lock at KEYS[1] is ours (ARGV[4]): it names us and our lease (KEYS[2]) lives
# (extended).
_RECHECK = clocked("""
if redis.call('get', KEYS[1]) == ARGV[4] and redis.call('pexpire', KEYS[2], lasting) == 1 then
  return {now, 1}
end
return {now, 0}
""")
# Between rounds: our lease (KEYS[1], ARGV[4]) extended if it still exists, and our
# member record (KEYS[2]) with it. Whether the lease was.
_PROLONG = clocked("""
local kept = redis.call('set', KEYS[1], ARGV[4], 'XX', 'PX', lasting)
redis.call('pexpire', KEYS[2], lasting)
if kept then return {now, 1} end
return {now, 0}
""")
#: Locks one script call tends at most: a script holds Redis while it runs (about a
#: millisecond per thousand keys), so more go in several calls.
LOCKS_PER_CALL = 1000
_TAKE, _KEEP, _DROP = "t", "k", "d"


class MemberLease:
    """This member's (``token``'s) lease and every ring lock naming it, tended together."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        token: str,
        ttl: float,
        clock: RedisClock | None = None,
    ) -> None:
        self.client = client
        #: Every write that extends the lease goes through it: one that reaches Redis
        #: after we gave up on it does nothing (see :mod:`~coder_ring.registry.redis_clock`).
        self.clock = clock or RedisClock(client)
        self.token = token
        self.key = member_lease_key(namespace, token)
        self._prefix = member_lease_key(namespace, "")
        self.ttl_ms = max(1, int(ttl * 1000))
        self._tend = client.register_script(_TEND)
        self._release = client.register_script(_RELEASE)
        self._recheck = client.register_script(_RECHECK)
        self._prolong = client.register_script(_PROLONG)
        #: Lock keys that may name us. One nobody asks about in a round is deleted then:
        #: a lock of ours never expires by itself while we live (a release that failed).
        self._ours: set[str] = set()
        self._ours_lock = threading.Lock()

    def lock(self, key: str) -> RingLock:
        """The lock at ``key`` as one ring's seat sees it."""
        return RingLock(self, key)

    def tend(self, wants: Sequence[tuple[str, bool]]) -> tuple[float, list[bool]]:
        """Renew the lease and, for each ``(key, take)``: keep the lock if it names us,
        else take it if it is free (missing, or its holder's lease is gone) and ``take``.
        Returns the monotonic time until which the locks kept or taken are surely ours
        (measured from before the first call), and which those are. A Redis error ends
        it (the lease may have been renewed; not by a call refused as late)."""
        asked = {key for key, _ in wants}
        with self._ours_lock:
            stray = sorted(self._ours - asked)
        ops = [(key, _TAKE if take else _KEEP) for key, take in wants]
        ops += [(key, _DROP) for key in stray]
        started = time.monotonic()
        ours: list[bool] = []
        for start in range(0, max(1, len(ops)), LOCKS_PER_CALL):  # the lease, if no lock
            chunk = ops[start : start + LOCKS_PER_CALL]
            try:
                replies = self.clock.call(
                    self._tend,
                    [self.key, *(key for key, _ in chunk)],
                    [self.token, self._prefix, *(op for _, op in chunk)],
                    self.ttl_ms,
                )
            except redis.RedisError:
                # Redis may have taken them before the reply was lost: asked about (or let
                # go) next round, never left naming us for good.
                self._note((key, True) for key, op in chunk if op == _TAKE)
                raise
            self._note(zip((key for key, _ in chunk), map(bool, replies), strict=True))
            ours += [bool(reply) for reply in replies]
        return started + SAFE_SHARE * self.ttl_ms / 1000, ours[: len(wants)]

    def prolong(self, member_key: str) -> tuple[float, float | None]:
        """Extend the lease, only if it still exists, and the member's record at
        ``member_key`` (:mod:`~coder_ring.registry.membership`) with it: what a busy
        worker does between its rounds. Returns the monotonic time it started, and the
        time until which the lease surely lives (None: it lapsed, the round decides)."""
        started = time.monotonic()
        [kept] = self.clock.call(self._prolong, [self.key, member_key], [self.token], self.ttl_ms)
        return started, started + SAFE_SHARE * self.ttl_ms / 1000 if kept else None

    def release(self, keys: Sequence[str]) -> int:
        """Delete those of the locks at ``keys`` still ours; how many were."""
        released = 0
        for start in range(0, len(keys), LOCKS_PER_CALL):
            chunk = list(keys[start : start + LOCKS_PER_CALL])
            released += int(self._release(keys=chunk, args=[self.token]))
            self._note((key, False) for key in chunk)
        return released

    def recheck(self, key: str) -> float | None:
        """Whether the lock at ``key`` is still ours (its lease extended): the monotonic
        time until which it surely is, or None."""
        started = time.monotonic()
        [reply] = self.clock.call(self._recheck, [key, self.key], [self.token], self.ttl_ms)
        ours = bool(reply)
        self._note([(key, ours)])
        return started + SAFE_SHARE * self.ttl_ms / 1000 if ours else None

    def end(self) -> None:
        """Delete the lease (every lock let go): a lock left naming us is free at once."""
        self.client.delete(self.key)

    def _note(self, answers: Iterable[tuple[str, bool]]) -> None:
        with self._ours_lock:
            for key, ours in answers:
                if ours:
                    self._ours.add(key)
                else:
                    self._ours.discard(key)


class RingLock:
    """One ring's lock, held under this member's lease (what a ring's seat uses)."""

    def __init__(self, lease: MemberLease, key: str) -> None:
        self.member_lease = lease
        self.key = key

    def renew(self) -> float | None:
        """Whether the lock is still ours: see :meth:`MemberLease.recheck`."""
        return self.member_lease.recheck(self.key)

    def release(self) -> bool:
        """Delete the lock if it is still ours."""
        return bool(self.member_lease.release([self.key]))


def lock_holders(client: redis.Redis, namespace: str, rings: Iterable[str]) -> dict[str, str]:
    """ring -> member id holding its lock, for those of ``rings`` held now: the lock names
    a member whose lease lives (two MGETs)."""
    names = sorted(set(rings))
    if not names:
        return {}
    keys = [lock_key(namespace, ring) for ring in names]
    named = {
        ring: as_text(value)
        for ring, value in zip(names, client.mget(keys), strict=True)
        if value is not None
    }
    members = sorted(set(named.values()))
    if not members:
        return {}
    leases = client.mget([member_lease_key(namespace, member) for member in members])
    alive = {member for member, lease in zip(members, leases, strict=True) if lease is not None}
    return {ring: member for ring, member in named.items() if member in alive}


def current_holder(client: redis.Redis, namespace: str, ring: str) -> str | None:
    """Node name of the worker holding ``ring``'s lock, if any."""
    return holder_name(lock_holders(client, namespace, [ring]).get(ring))
