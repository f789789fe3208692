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
    assert link.round(0.15, answered=True) is None  # one slow round: a blip
    assert link.round(0.01, answered=True) is None
    assert link.round(0.15, answered=True) is None
    assert link.round(0.15, answered=False) is None  # nothing answered (a cut): no count
    assert link.healthy
    assert link.round(0.15, answered=True) == "lost"  # the second slow round in a row
    assert not link.healthy
    assert link.round(0.01, answered=True) is None  # quick, but not for the hold yet
    time.sleep(0.25)
    assert link.round(0.01, answered=True) == "back"
    # Degraded again soon after: the hold doubles.
    link.round(0.15, answered=True)
    assert link.round(0.15, answered=True) == "lost"
    link.round(0.01, answered=True)
    time.sleep(0.25)
    assert link.round(0.01, answered=True) is None, "the hold did not double"
    time.sleep(0.2)
    assert link.round(0.01, answered=True) == "back"
    # One round that took its whole period (twice the limit): degraded at once.
    assert LinkHealth(limit=0.1, grace=0.2).round(0.25, answered=True) == "lost"
