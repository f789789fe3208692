"""The lease thread's bounds (issue 20): database calls waited for at most a budget,
Redis calls never retried."""

from __future__ import annotations

import threading
import time

import pytest

from coder_ring.celery.health import Bounded, DatabaseHealth, LinkHealth
from coder_ring.errors import StoreUnavailable
from coder_ring.registry.client import redis_client


def test_a_call_is_waited_for_at_most_its_budget_and_blocks_the_next() -> None:
    bounded, release = Bounded(), threading.Event()
    try:
        assert bounded.run(lambda: 7, 1.0) == 7
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="did not answer within"):
            bounded.run(release.wait, 0.2)
        assert time.monotonic() - started < 1.0
        with pytest.raises(StoreUnavailable, match="earlier check"):
            bounded.run(lambda: 1, 1.0)  # the stuck one is still stuck: fails at once
        release.set()
        time.sleep(0.05)
        assert bounded.run(lambda: 2, 1.0) == 2
    finally:
        release.set()
        bounded.close()


def test_a_probe_that_does_not_answer_makes_the_worker_unhealthy_after_the_grace() -> None:
    bounded, release = Bounded(), threading.Event()
    try:
        health = DatabaseHealth(lambda: bounded.run(release.wait, 0.05), 0.2, "db")
        health.healthy = True
        health.failed(since=time.monotonic() - 0.3)
        assert health.check() == "lost"
        assert not health.healthy
    finally:
        release.set()
        bounded.close()


def test_registry_clients_never_retry() -> None:
    client = redis_client("redis://127.0.0.1:1/0", 0.5)
    connection = client.connection_pool.make_connection()
    assert connection.retry.get_retries() == 0
    assert connection.socket_timeout == connection.socket_connect_timeout == 0.5


def test_a_link_is_degraded_by_two_slow_rounds_in_a_row_and_well_after_its_hold() -> None:
    link = LinkHealth(limit=0.1, grace=0.2)

    def peer() -> float:
        return time.monotonic()  # another member's round just began, and was quick

    assert link.round(0.15, answered=True, quick_peer_since=peer()) is None  # a blip
    assert link.round(0.01, answered=True) is None
    assert link.round(0.15, answered=True, quick_peer_since=peer()) is None
    assert link.round(0.15, answered=False) is None  # nothing answered (a cut): no count
    assert link.healthy
    assert link.round(0.15, answered=True, quick_peer_since=peer()) == "lost"  # 2 in a row
    assert not link.healthy
    assert link.round(0.01, answered=True) is None  # quick, but not for the hold yet
    time.sleep(0.25)
    assert link.round(0.01, answered=True) == "back"
    # Degraded again soon after: the hold doubles.
    link.round(0.15, answered=True, quick_peer_since=peer())
    assert link.round(0.15, answered=True, quick_peer_since=peer()) == "lost"
    link.round(0.01, answered=True)
    time.sleep(0.25)
    assert link.round(0.01, answered=True) is None, "the hold did not double"
    time.sleep(0.2)
    assert link.round(0.01, answered=True) == "back"
    # One round that took its whole period (twice the limit): degraded at once.
    assert LinkHealth(limit=0.1, grace=0.2).round(0.25, True, peer()) == "lost"


def test_a_redis_slow_for_every_member_degrades_none() -> None:
    # Red team 3: Redis itself slow (every worker's calls late) made every worker give
    # every ring up at once. A worker is degraded only by a peer's quick round that began
    # after its own slow rounds began: the others do answer in time.
    link = LinkHealth(limit=0.1, grace=0.2)
    before = time.monotonic() - 1.0  # the peers' last quick round: before the slowness
    for _ in range(5):
        assert link.round(0.25, answered=True, quick_peer_since=before) is None
        assert link.round(0.25, answered=True, quick_peer_since=None) is None
    assert link.healthy
    # A peer quick since: this worker's link is the slow one.
    assert link.round(0.25, answered=True, quick_peer_since=time.monotonic()) == "lost"


def test_a_slow_round_without_news_of_the_others_waits_for_a_fresher_look() -> None:
    # The others' records are read early in a round: a slow link's first slow rounds see
    # none of their rounds since. The worker reads them again at the end of the round
    # (confirm) instead of a round later; what it finds decides as a round would.
    link = LinkHealth(limit=0.1, grace=0.2)
    before = time.monotonic() - 1.0
    assert link.round(0.15, answered=True, quick_peer_since=before) is None
    assert not link.undecided  # one slow round (under twice the limit): not enough
    assert link.round(0.15, answered=True, quick_peer_since=before) is None
    assert link.undecided
    assert link.confirm(before) is None  # still no quick round of another since
    assert link.healthy and link.undecided
    assert link.confirm(time.monotonic()) == "lost"
    assert not link.healthy and not link.undecided
    assert link.confirm(time.monotonic()) is None  # decided once
    # A cut (nothing answered) or a quick round ends the waiting.
    other = LinkHealth(limit=0.1, grace=0.2)
    assert other.round(0.25, answered=True, quick_peer_since=None) is None
    assert other.undecided
    assert other.round(0.25, answered=False) is None
    assert not other.undecided and other.confirm(time.monotonic()) is None
    assert other.round(0.25, answered=True, quick_peer_since=None) is None
    assert other.round(0.01, answered=True) is None
    assert not other.undecided and other.healthy
