"""Redis's clock as this process reckons it, so that a request reaching Redis after its
sender gave up on it does nothing (issue 20, fault 6: late heartbeats).

A worker counts its lease from the send of its last *answered* renewal and stops serving
when that runs out. A renewal whose reply never came (the call timed out) that still
reached Redis, late, kept the lease -- and so every ring lock under it, and the member's
record -- alive in Redis past that: its rings waited with nobody serving them, up to the
delay longer. So each write that extends a lease is a script (:func:`clocked`) run
through :meth:`RedisClock.call`: it gets its send time in Redis's clock and how long its
sender waits for a reply, and once that is over it changes nothing and answers ``late``
(:class:`LateRequest`, which callers treat as a failed call). What it does extend lives
until its send time plus the TTL (``lasting``), never longer, nor more than the TTL from
its arrival.

The offset of Redis's clock from ``time.monotonic()``: a reply Redis stamped ``T`` that
arrived at local time ``e`` was handled at or before ``e``, so ``T - e`` is a lower bound.
The estimate is the best (highest) of the last :data:`SAMPLES` (every script here
returns its ``T``), so a failover to a Redis with another clock, or drift, is followed
within a few rounds. Why a lower bound, and why nothing here can make two holders (a
lease ending too early is only churn, too late only a wait):

* Too low an offset dates a send early: a request its sender would still have taken may
  be refused (the renewal counts as failed: at worst locks lapse and move, which is
  churn), and a lease ends that much before send + TTL. Its holder counts on
  :data:`~coder_ring.registry.lease.SAFE_SHARE` of the TTL from before the send, so an
  error under a tenth of the TTL still ends the holder's belief first; the error is the
  reply's trip of the best sample (well under a millisecond on a LAN). And were a lease
  to end first, the next holder's claim raises the ring's epoch in the database, which
  fences every draw and give-back of the old one.
* Too high an offset (after a failover to a Redis whose clock is behind, until its
  samples replace the old ones) dates a send late: a late request is taken as before
  this check, and what it extends lives at most the TTL from its arrival: later expiry
  is only unavailability, never a second holder.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import redis
from redis.commands.core import Script

#: Samples of the offset kept: a round and the keeper between rounds give three or so a
#: second, so a change of clock is followed within about a TTL.
SAMPLES = 8
#: The start of every script run through :meth:`RedisClock.call`. ARGV[1]: the send time
#: (ms, Redis's clock), ARGV[2]: how long the sender waits for the reply (ms), ARGV[3]: the
#: TTL (ms); the script's own arguments follow. Every reply starts with Redis's time (ms).
_PRELUDE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local sent, ttl = tonumber(ARGV[1]), tonumber(ARGV[3])
if now >= sent + math.min(tonumber(ARGV[2]), ttl) then return {now, 'late'} end
local lasting = math.min(ttl, sent + ttl - now)
"""
#: The reply of a refused request after Redis's time (as redis-py types it either way).
_LATE = ("late", b"late")


def clocked(body: str) -> str:
    """A script for :meth:`RedisClock.call`: ``body`` runs only if the request is not late,
    with ``now`` (Redis's time, ms) and ``lasting`` (what it extends lives that many ms)."""
    return _PRELUDE + body


class LateRequest(redis.RedisError):
    """Redis refused a request that reached it after its sender stopped waiting for it."""


class RedisClock:
    """The offset of ``client``'s Redis clock from ``time.monotonic()``, and the calls of
    scripts that refuse to act on a request its sender gave up on (see the module)."""

    def __init__(self, client: redis.Redis, samples: int = SAMPLES) -> None:
        self.client = client
        # How long a call waits for its reply: a client without a timeout waits for ever,
        # and then only a request arriving after its lease would be over is refused.
        timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
        self.patience_ms = None if timeout is None else max(1, int(timeout * 1000))
        self._bounds: deque[float] = deque(maxlen=samples)
        self._lock = threading.Lock()

    def offset(self) -> float:
        """Seconds to add to ``time.monotonic()`` for Redis's clock (a lower bound); the
        first call asks Redis its time (a RedisError if it does not answer)."""
        known = self.estimate()
        if known is not None:
            return known
        seconds, micros = self.client.time()
        self.observe(seconds * 1000 + micros // 1000, time.monotonic())
        with self._lock:
            return max(self._bounds)

    def estimate(self) -> float | None:
        """:meth:`offset` as known now, asking Redis nothing (None: no reply seen yet)."""
        with self._lock:
            return max(self._bounds, default=None)

    def observe(self, redis_ms: int, received: float) -> None:
        """A reply stamped ``redis_ms`` by Redis arrived at ``received`` (monotonic)."""
        with self._lock:
            self._bounds.append(redis_ms / 1000 - received)

    def call(self, script: Script, keys: list[Any], args: list[Any], ttl_ms: int) -> list[Any]:
        """Run ``script`` (made by :func:`clocked`) with ``args``, as a request sent now
        under a lease of ``ttl_ms``: its reply after Redis's time, or :class:`LateRequest`.

        A refusal that came back at all was wrong: its sender was still waiting. The send
        was stamped before what the call did first (a connection to open after a timeout
        closed the last one, two round trips more on a slow link; a script to load), or
        the estimate was off (a new Redis's clock, which the refusal's time corrects). So
        it is tried once more, stamped anew, before :class:`LateRequest`."""
        patience = ttl_ms if self.patience_ms is None else self.patience_ms
        for _ in range(2):
            offset = self.offset()
            sent_ms = int((time.monotonic() + offset) * 1000)  # rounded down: earlier
            reply = script(keys=keys, args=[sent_ms, patience, ttl_ms, *args])
            now_ms = int(reply[0])
            self.observe(now_ms, time.monotonic())
            if len(reply) < 2 or reply[1] not in _LATE:
                return list(reply[1:])
        raise LateRequest(
            f"a request reached Redis {(now_ms - sent_ms) / 1000:.2f} s after it was sent, "
            f"its sender waiting {min(patience, ttl_ms) / 1000:.2f} s: refused"
        )
