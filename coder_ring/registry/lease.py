"""A Redis lock holding its holder's member id, with a TTL of its own: the coordinator's
(who places the rings). Ring locks live under their holder's lease instead
(:mod:`coder_ring.registry.member_lease`).

Acquire-or-renew and release are scripts that act only while the key is free or holds
our id, so a holder whose lock expired can never extend or delete the next holder's
lock. Expiry is Redis's own clock; a renewal that reaches Redis after its sender gave up
on it does nothing (:mod:`~coder_ring.registry.redis_clock`): the coordinator's, landing
late, would keep every other member from coordinating while it cannot.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

import redis

from coder_ring.registry.redis_clock import RedisClock, clocked

# Take the lock if it is free, or extend it if it holds our id (ARGV[4]); whether it is ours.
_ACQUIRE = clocked("""
local holder = redis.call('get', KEYS[1])
if holder == ARGV[4] then return {now, redis.call('pexpire', KEYS[1], lasting)} end
if holder then return {now, 0} end
redis.call('set', KEYS[1], ARGV[4], 'PX', lasting)
return {now, 1}
""")
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
TOKEN_SEPARATOR = "|"
#: Share of the TTL a holder counts on: the rest covers clock-rate differences.
SAFE_SHARE = 0.9


def new_member_id(hostname: str | None = None) -> str:
    """An id unique to this process's life: ``node-name|pid|random``."""
    host = hostname or socket.gethostname()
    return TOKEN_SEPARATOR.join((host, str(os.getpid()), uuid.uuid4().hex[:8]))


def as_text(value: str | bytes) -> str:
    """A Redis reply as text (redis-py types replies as either)."""
    return value.decode() if isinstance(value, bytes) else value


def holder_name(token: str | bytes | None) -> str | None:
    """The node-name part of a member id (what status shows as the holder)."""
    if token is None:
        return None
    return as_text(token).split(TOKEN_SEPARATOR, 1)[0]


class Lease:
    """This process's claim on the lock at ``key`` (:func:`~coder_ring.registry.keys.lock_key`
    for a ring), with ``token`` (its member id) as the value."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        token: str,
        ttl: float,
        clock: RedisClock | None = None,
    ) -> None:
        self.client = client
        self.key = key
        self.token = token
        self.ttl_ms = max(1, int(ttl * 1000))
        self.clock = clock or RedisClock(client)
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    def acquire_or_renew(self) -> float | None:
        """Take or extend the lock. Returns the monotonic time until which it is surely
        ours (measured from before the request), or None if another process holds it
        (a RedisError, :class:`~coder_ring.registry.redis_clock.LateRequest` among them,
        if Redis did not answer in time)."""
        started = time.monotonic()
        [ours] = self.clock.call(self._acquire, [self.key], [self.token], self.ttl_ms)
        return started + SAFE_SHARE * self.ttl_ms / 1000 if ours else None

    def release(self) -> bool:
        """Delete the lock if it is still ours."""
        return bool(self._release(keys=[self.key], args=[self.token]))
