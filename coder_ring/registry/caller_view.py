"""A caller's view of the registry: which rings some live worker may serve, so that a
request for a ring nobody serves fails at once instead of waiting for its timeout.

The view is cached for :data:`MAX_AGE` seconds and read again before refusing, so a
process makes at most one Redis round trip per second for it, and a worker that just
started is never missed. When the registry cannot be read the request is sent as
usual (the broker reports its own failures).
"""

from __future__ import annotations

import threading
import time

import redis

from coder_ring.errors import NoWorker
from coder_ring.registry.client import registry_client
from coder_ring.registry.membership import MemberInfo, live_members
from coder_ring.settings import WorkerSettings

#: Seconds a caller trusts its view of the live workers.
MAX_AGE = 1.0


class CallerView:
    """Cached live members of the settings' namespace, as seen by a caller."""

    def __init__(self, settings: WorkerSettings, max_age: float = MAX_AGE) -> None:
        self.namespace = settings.namespace
        self.max_age = max_age
        self._client = registry_client(settings, 1.0)
        self._mutex = threading.Lock()
        self._members: list[MemberInfo] | None = None
        self._read_at = -float("inf")

    def members(self, fresh: bool = False) -> list[MemberInfo] | None:
        """The live members (None when the registry cannot be read)."""
        with self._mutex:
            if fresh or time.monotonic() - self._read_at > self.max_age:
                try:
                    self._members = live_members(self._client, self.namespace)
                except redis.RedisError:
                    self._members = None
                self._read_at = time.monotonic()
            return self._members

    def ensure_served(self, ring: str) -> None:
        """:class:`NoWorker` when no live, healthy worker may serve ``ring``."""
        for fresh in (False, True):
            members = self.members(fresh)
            if members is None or any(m.healthy and ring in m.rings for m in members):
                return
        raise NoWorker(
            f"no live worker may serve ring {ring!r} in namespace {self.namespace!r} "
            f"({describe(members or [])}); start one with `coder-ring worker {ring}` "
            "(or --all), with the same CODER_RING_NAMESPACE and rings file"
        )

    def close(self) -> None:
        """Close the view's Redis connections."""
        self._client.close()


def describe(members: list[MemberInfo]) -> str:
    """A short account of ``members`` for an error message."""
    if not members:
        return "no worker is running"
    parts = []
    for member in members[:5]:
        state = "" if member.healthy else ", database unreachable"
        parts.append(f"{member.node} serves {', '.join(member.rings) or 'no ring'}{state}")
    more = f" and {len(members) - 5} more" if len(members) > 5 else ""
    return "; ".join(parts) + more
