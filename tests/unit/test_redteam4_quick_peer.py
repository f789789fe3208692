"""Red team 4: when another member's quick round began, as a worker dates it
(coder_ring/celery/registry_view.py ``RegistryView.quick_peer_since``).

A peer's record says how its last round went; the round is dated by the record's
heartbeat, minus a period. But the heartbeat is stamped by Redis when it runs: when
Redis is slow for everyone, the stamp is a request's delay later than the peer's round
began, and the peer's last round is dated that much too late. A worker whose slow rounds
began within that delay after the peer's quick one (members' rounds start together:
every notice wakes them all) takes it for a quick round since its own slow ones began,
and gives every ring up although Redis is slow for everyone alike.
"""

from __future__ import annotations

import logging
import time

import pytest
import redis

from coder_ring.celery.health import LinkHealth
from coder_ring.celery.registry_view import RegistryView
from coder_ring.metrics.worker import WorkerMetrics
from coder_ring.registry.membership import MemberInfo, Membership
from coder_ring.registry.reachability import Reachability

pytestmark = [pytest.mark.redis]

TTL = 3.0
PERIOD, LIMIT = TTL / 3, TTL / 6  # the lease round's period, LinkHealth's limit


def member(member_id: str, redis_seconds: float) -> MemberInfo:
    return MemberInfo(
        id=member_id,
        node=member_id,
        pid=1,
        started=0.0,
        rings=("r",),
        healthy=True,
        database="sqlite://",
        redis_seconds=redis_seconds,
    )


def until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def test_a_peer_quick_before_the_slowdown_degrades_no_worker(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    metrics = WorkerMetrics(
        node="w",
        member_id="w",
        port=None,
        rings=lambda: [],
        pools=lambda: {},
        status=lambda ring: pytest.fail("no ring status asked"),
        healthy=lambda: True,
    )
    view = RegistryView(
        client, "rt4", "w", TTL, metrics=metrics, reach=Reachability(logging.getLogger(), TTL)
    )
    link = LinkHealth(LIMIT, TTL)
    peer = Membership(client, "rt4", TTL)
    try:
        began = time.monotonic()  # the peer's last quick round began (0.05 s of Redis)
        # Redis becomes slow for everyone: this worker's round, begun 50 ms later, takes
        # 0.6 s (over the limit); so does the peer's next one, which begins a period
        # after its last and whose heartbeat runs 0.1 s late (the slow Redis).
        until(began + 0.05 + 0.6)
        assert link.round(0.6, True, view.quick_peer_since(LIMIT, PERIOD)) is None
        until(began + PERIOD + 0.1)
        peer.heartbeat(member("p", redis_seconds=0.05))
        view.round(member("w", redis_seconds=0.6), healthy=False)  # reads the peer
        until(began + 2 * PERIOD)  # its second slow round ends
        quick_since = view.quick_peer_since(LIMIT, PERIOD)
        assert quick_since is not None
        dated_late_by = round(quick_since - began, 2)
        assert link.round(0.6, True, quick_since) is None, (
            f"the peer's quick round began 50 ms before this worker's slow ones, dated "
            f"{dated_late_by} s after it began: the worker degraded although Redis is slow "
            f"for everyone alike"
        )
    finally:
        client.close()
