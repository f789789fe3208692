"""Red team 6: callers publish ring requests with ``declare=()`` (commit 7b88bbe).

The change relies on Celery converting the request to the anonymous exchange (the
ring's list by its name, no binding needed). Celery does so only for a *direct*
exchange with no explicit exchange and routing key. A caller that passes its own
``exchange_type`` (or names the ring queue's own exchange and routing key, as a
router's output or an explicit ``apply_async(exchange=..., routing_key=...)`` does)
publishes through the exchange, and kombu's Redis transport then looks the route up in
``_kombu.binding.<queue>``: before the change, the caller's own declare wrote that
binding; now only a worker's consumer does. Until a worker has consumed the ring's
queue once (a fresh Redis, a cold start, a ring just added to the rings file, a Redis
restarted empty), the lookup finds nothing and kombu drops the request with an
``UndeliverableWarning``: the caller waits its whole timeout for a request nobody will
ever serve (lost, though the call "succeeded").

Control (not kept as a test case): the same request with ``declare=None`` (Celery's
declare, as before 7b88bbe) was served in 4 of 5 runs; it failed once in a run beside
the other red-team-6 files, for a reason not looked into.

Fixed: a request given its own ``exchange``, ``routing_key`` or ``exchange_type`` keeps
Celery's declare (:meth:`RingTask.apply_async`).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import redis

from coder_ring.celery.names import ring_queue
from coder_ring.settings import DEFAULT_NAMESPACE
from tests.harness import caller_app, members, wait_until, worker_env, write_rings
from tests.servers import private_redis

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

# More than 10 rings: a cold-started coordinator waits for membership to settle before
# placing them (README, "A cold start waits"), so the worker is a live member (the
# caller's fail-fast check passes) while no ring queue has been consumed yet.
RINGS = [f"nd{index:02d}" for index in range(12)]
TIMEOUT = 20.0


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "how",
    [
        {"exchange_type": "topic"},
        "own_exchange",  # exchange=<ring queue>, routing_key=<ring queue>
    ],
)
def test_request_sent_before_the_queue_was_ever_consumed_is_served(
    tmp_path: Path, pg_url: str, group: Any, how: Any
) -> None:
    """Shows: a request sent by a coder_ring caller with a routing option Celery accepts
    (``exchange_type``, or the queue's own exchange and routing key) during a cold start,
    after the worker registered but before it consumed the ring's queue, is silently
    dropped (no binding, no declare): never served, the caller times out. Before
    ``declare=()`` the caller declared and bound the queue itself and it was served.
    Severity: lost request (caller waits its full timeout; a request that was "sent")."""
    rings_file = write_rings(
        tmp_path / "rings.toml", **{ring: {"base_length": 2, "pool_size": 4} for ring in RINGS}
    )
    with private_redis() as server:
        env = worker_env(redis_url=server.url, database_url=pg_url, rings_file=rings_file)
        client = redis.Redis.from_url(server.url)
        with caller_app(env) as app:
            app.ring_tasks.get_code  # noqa: B018 -- tasks bound before the worker starts
            group.worker("a", env)
            wait_until(lambda: bool(members(env)), TIMEOUT, 0.01)
            sent = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # kombu's UndeliverableWarning
                for ring in RINGS:
                    queue = ring_queue(DEFAULT_NAMESPACE, ring)
                    bound = client.exists(f"_kombu.binding.{queue}")
                    options = (
                        {"exchange": queue, "routing_key": queue}
                        if how == "own_exchange"
                        else dict(how)
                    )
                    result = app.ring_tasks.get_code.apply_async((ring,), **options)
                    sent.append((ring, bound, result))
            unbound = [ring for ring, bound, _ in sent if not bound]
            assert unbound, "precondition: some ring's queue had never been declared"
            started = time.monotonic()
            lost = []
            for ring, bound, result in sent:
                try:
                    result.get(timeout=max(1.0, TIMEOUT - (time.monotonic() - started)))
                except Exception as error:  # noqa: BLE001 -- TimeoutError expected
                    lost.append((ring, bool(bound), type(error).__name__))
        client.close()
    assert not lost, f"{len(lost)} of {len(RINGS)} requests never served ({lost})"
