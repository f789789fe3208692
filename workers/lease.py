"""A ring's Redis lock: who may serve it. One key per ring, holding the holder's token.

Acquire is ``SET NX PX``; renew and release are scripts that act only while the key
still holds our token, so a holder whose lock expired can never extend or delete
the next holder's lock. The lock decides who consumes; the database epoch (see
:mod:`coder_ring.pool`) is what makes a former holder's writes impossible.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

import redis

from workers.names import lock_key

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
TOKEN_SEPARATOR = "|"


def new_token(hostname: str | None = None) -> str:
    """A token unique to this process: ``hostname|pid|random``."""
    host = hostname or socket.gethostname()
    return TOKEN_SEPARATOR.join((host, str(os.getpid()), uuid.uuid4().hex[:8]))


def holder_name(token: str | bytes | None) -> str | None:
    """The hostname part of a lock token."""
    if token is None:
        return None
    text = token.decode() if isinstance(token, bytes) else token
    return text.split(TOKEN_SEPARATOR, 1)[0]


class Lease:
    """This process's claim on one ring's lock."""

    def __init__(self, client: redis.Redis, ring: str, token: str, ttl: float) -> None:
        self.client = client
        self.key = lock_key(ring)
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
            # 10% margin for clock-rate differences between this host and Redis.
            return started + 0.9 * self.ttl_ms / 1000
        return None

    def release(self) -> bool:
        """Delete the lock if it is still ours."""
        return bool(self._release(keys=[self.key], args=[self.token]))


def current_holder(client: redis.Redis, ring: str) -> str | None:
    """Hostname of the worker holding ``ring``'s lock, if any."""
    return holder_name(client.get(lock_key(ring)))
