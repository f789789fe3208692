"""Red team 6: ``redis_began`` (732b14f) after Redis's clock steps back.

A member publishes when its last quick round began in Redis's clock as *it* reckons it
(its :class:`RedisClock` estimate: the best of its last 8 samples), and another member
reads it back through *its own* estimate. ``redis_clock``'s doc reasons that a wrong
offset only ends a lease early or late; for link health it matters in another way.
When Redis's clock steps back by D (a Sentinel failover to a replica whose clock is
behind, an NTP step on the Redis host), each process keeps its old, higher samples
until 8 new ones replaced them: for a few seconds, a member whose samples turned over
(a worker started after the failover, or one that sampled more) and one whose did not
disagree by D. The stale one publishes its quick rounds D late; the fresh one, slow
since just after that quick round (Redis slow for everyone), dates the peer's round D
after its own slow ones began and gives every ring up. The half-limit margin (TTL/12)
covers only sub-second differences.

Fixed: a peer's quick round is dated no later than its record was written (its age is
Redis's own reckoning), :meth:`RegistryView.quick_peer_since`.
"""

from __future__ import annotations

import logging
import time
import types
import uuid

import pytest
import redis

from coder_ring.celery.health import LOST, LinkHealth
from coder_ring.celery.link_watch import LinkWatch
from coder_ring.celery.registry_view import RegistryView
from coder_ring.metrics.worker import WorkerMetrics
from coder_ring.registry.membership import MemberInfo, Membership
from coder_ring.registry.reachability import Reachability
from coder_ring.registry.redis_clock import SAMPLES, RedisClock

pytestmark = [pytest.mark.redis]

TTL = 3.0
PERIOD, LIMIT = TTL / 3, TTL / 6
STEP = 2.0  # seconds Redis's clock stepped back (the new primary's clock is behind)


def view_of(client: redis.Redis, namespace: str, member_id: str, clock: RedisClock) -> RegistryView:
    metrics = WorkerMetrics(
        node=member_id,
        member_id=member_id,
        port=None,
        rings=lambda: [],
        pools=lambda: {},
        status=lambda ring: pytest.fail("no ring status asked"),
        healthy=lambda: True,
    )
    reach = Reachability(logging.getLogger(), TTL)
    return RegistryView(
        client, namespace, member_id, TTL, metrics=metrics, reach=reach, clock=clock
    )


def test_a_clock_step_back_degrades_no_worker_on_a_redis_slow_for_everyone(redis_url: str) -> None:
    """Shows: peer P's samples still include the old Redis clock (STEP s ahead of the
    current one); worker W's are all from the current clock. P's last quick round began
    0.3 s *before* W's slow rounds (Redis then slow for everyone: P's later rounds are
    slow and not published as quick). W nevertheless gives every ring up after its
    second slow round: it dates P's quick round STEP s late. Severity: false give-up
    (for the seconds the stale samples last after a failover or clock step)."""
    client = redis.Redis.from_url(redis_url)
    namespace = f"rt6{uuid.uuid4().hex[:8]}"
    try:
        # W: a process whose samples are all of the current clock.
        clock_w = RedisClock(client)
        for _ in range(SAMPLES):
            clock_w.offset()
            seconds, micros = client.time()
            clock_w.observe(seconds * 1000 + micros // 1000, time.monotonic())
        # P: its last 8 samples of the old primary (STEP s ahead), none yet of this one.
        clock_p = RedisClock(client)
        for _ in range(SAMPLES):
            seconds, micros = client.time()
            clock_p.observe(int((seconds + micros / 1e6 + STEP) * 1000), time.monotonic())
        view_p = view_of(client, namespace, "p", clock_p)
        view_w = view_of(client, namespace, "w", clock_w)
        # P's quick round (0.05 s of Redis calls), published by its next heartbeat.
        watch_p = LinkWatch(
            LinkHealth(LIMIT, TTL), view_p, types.SimpleNamespace(call_seconds=0.0), PERIOD
        )  # type: ignore[arg-type]
        view_p.call_seconds = 0.05
        quick_began = time.monotonic()
        assert watch_p.round(quick_began, answered=True, healthy=True) is None
        info = MemberInfo(
            id="p", node="p", pid=1, started=0.0, rings=("r",), healthy=True,
            database="sqlite://", redis_seconds=watch_p.seconds, redis_began=watch_p.began,
        )  # fmt: skip
        Membership(client, namespace, TTL, clock_p).heartbeat(info)
        # Redis turns slow for everyone 0.3 s after P's quick round began: W's rounds
        # (and P's: not quick, so P publishes nothing newer that counts) take 0.6 s.
        link_w = LinkHealth(LIMIT, TTL)
        slow_began = quick_began + 0.3
        time.sleep(max(0.0, slow_began + 0.6 - time.monotonic()))
        assert view_w.read_peers()
        assert link_w.round(0.6, True, view_w.quick_peer_since(LIMIT, PERIOD)) is None
        time.sleep(max(0.0, slow_began + PERIOD + 0.6 - time.monotonic()))
        assert view_w.read_peers()
        quick_since = view_w.quick_peer_since(LIMIT, PERIOD)
        assert quick_since is not None
        verdict = link_w.round(0.6, True, quick_since)
    finally:
        client.close()
    assert verdict != LOST, (
        f"W gave its rings up: P's quick round, which began 0.3 s before W's slow ones, "
        f"is dated {quick_since - quick_began:+.2f} s from when it began (clock step "
        f"{STEP} s, P's samples stale)"
    )
