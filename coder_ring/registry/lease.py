"""A Redis lock holding its holder's member id: one per ring (who may serve it), and the
coordinator's (who places the rings).

Acquire is ``SET NX PX``; renew and release are scripts that act only while the key
still holds our id, so a holder whose lock expired can never extend or delete the
next holder's lock. Expiry is Redis's own clock. The lock decides who consumes; the
database epoch (see :mod:`coder_ring.ring_server`) is what makes a former holder's writes
impossible.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence

import redis

from coder_ring.registry.keys import lock_key

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
# Per key: extend it if it holds our token, else take it if free and asked to (ARGV[2 +
# index] is "1"). One call tends every lock of a worker: a round costs one round trip,
# not one per ring.
_TEND_MANY = """
local result = {}
for index, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then
    result[index] = redis.call('pexpire', key, ARGV[2])
  elseif ARGV[index + 2] == '1' and redis.call('set', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
    result[index] = 1
  else
    result[index] = 0
  end
end
return result
"""
# Per key: delete it if it still holds our token.
_RELEASE_MANY = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then
    released = released + redis.call('del', key)
  end
end
return released
"""
#: Locks one script call tends at most: a script holds Redis while it runs (about a
#: millisecond per thousand keys), so more go in several calls.
LOCKS_PER_CALL = 1000
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

    def __init__(self, client: redis.Redis, key: str, token: str, ttl: float) -> None:
        self.client = client
        self.key = key
        self.token = token
        self.ttl_ms = max(1, int(ttl * 1000))
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def acquire_or_renew(self) -> float | None:
        """Take or extend the lock. Returns the monotonic time until which it is surely
        ours (measured from before the request), or None if another process holds it."""
        started = time.monotonic()
        if self._renew(keys=[self.key], args=[self.token, self.ttl_ms]) or self.client.set(
            self.key, self.token, nx=True, px=self.ttl_ms
        ):
            return started + SAFE_SHARE * self.ttl_ms / 1000
        return None

    def renew(self) -> float | None:
        """Extend the lock only if it is ours (never takes a free one)."""
        started = time.monotonic()
        if self._renew(keys=[self.key], args=[self.token, self.ttl_ms]):
            return started + SAFE_SHARE * self.ttl_ms / 1000
        return None

    def release(self) -> bool:
        """Delete the lock if it is still ours."""
        return bool(self._release(keys=[self.key], args=[self.token]))


class LeaseBook:
    """Every lock of one holder (one ``token``, one TTL), tended together: one script
    call for up to :data:`LOCKS_PER_CALL` locks, whatever else each lock's seat does."""

    def __init__(self, client: redis.Redis, token: str, ttl: float) -> None:
        self.token = token
        self.ttl_ms = max(1, int(ttl * 1000))
        self._tend = client.register_script(_TEND_MANY)
        self._release = client.register_script(_RELEASE_MANY)

    def release(self, keys: Sequence[str]) -> int:
        """Delete those of the locks at ``keys`` still ours; how many were."""
        released = 0
        for start in range(0, len(keys), LOCKS_PER_CALL):
            released += int(
                self._release(keys=list(keys[start : start + LOCKS_PER_CALL]), args=[self.token])
            )
        return released

    def tend(self, wants: Sequence[tuple[str, bool]]) -> tuple[float, list[bool]]:
        """For each ``(key, take)``: extend the lock if it is ours, else take it if it is
        free and ``take``. Returns the monotonic time until which the locks extended or
        taken are surely ours (measured from before the first call), and which those
        are. A Redis error ends it (locks of an earlier call may have been extended)."""
        started = time.monotonic()
        granted: list[bool] = []
        for start in range(0, len(wants), LOCKS_PER_CALL):
            chunk = wants[start : start + LOCKS_PER_CALL]
            flags = ["1" if take else "0" for _, take in chunk]
            replies = self._tend(
                keys=[key for key, _ in chunk], args=[self.token, self.ttl_ms, *flags]
            )
            granted += [bool(reply) for reply in replies]
        return started + SAFE_SHARE * self.ttl_ms / 1000, granted


def current_holder(client: redis.Redis, namespace: str, ring: str) -> str | None:
    """Node name of the worker holding ``ring``'s lock, if any."""
    return holder_name(client.get(lock_key(namespace, ring)))


def lock_holders(client: redis.Redis, namespace: str, rings: Iterable[str]) -> dict[str, str]:
    """ring -> member id holding its lock, for those of ``rings`` held now (one MGET)."""
    names = sorted(set(rings))
    if not names:
        return {}
    values = client.mget([lock_key(namespace, ring) for ring in names])
    return {ring: as_text(value) for ring, value in zip(names, values, strict=True) if value}
