"""The live workers as an operator sees them (``coder-ring workers``): each member's own
record, whether it coordinates, the rings assigned to it and its uptime."""

from __future__ import annotations

import time
from typing import Any

import redis

from coder_ring.errors import Unreachable
from coder_ring.registry.client import registry_client
from coder_ring.registry.coordinator import read_assignment
from coder_ring.registry.keys import coordinator_key
from coder_ring.registry.lease import as_text
from coder_ring.registry.membership import live_members
from coder_ring.settings import WorkerSettings
from coder_ring.urls import redact_url


def roster(settings: WorkerSettings) -> list[dict[str, Any]]:
    """One row per live member of the settings' namespace, sorted by member id: its record's fields
    plus ``coordinator``, ``assigned`` and ``uptime`` (seconds). :class:`Unreachable`
    when Redis does not answer."""
    namespace = settings.namespace
    client = registry_client(settings, 2.0)
    try:
        members = live_members(client, namespace)
        coordinator = client.get(coordinator_key(namespace))
        assignment = read_assignment(client, namespace)
    except redis.RedisError as error:
        where = redact_url(settings.redis_url)
        raise Unreachable(f"cannot reach Redis at {where}: {error}") from None
    finally:
        client.close()
    leader = as_text(coordinator) if coordinator else None
    return [
        {
            **member.__dict__,
            "coordinator": member.id == leader,
            "assigned": sorted(ring for ring, m in assignment.items() if m == member.id),
            "uptime": round(time.time() - member.started, 1),
        }
        for member in members
    ]
