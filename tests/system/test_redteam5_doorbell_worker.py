"""Red team 5: a ring worker waiting on its doorbell (:mod:`coder_ring.celery.doorbell`)
when Redis answers -BUSY for half a second (a script of anyone's ran past
busy-reply-threshold: 5 s by default, 20 ms here to keep the test short).

The sweep (four times a second) is refused, and gives the doorbell up while the worker's
BRPOP on it is in flight; the next name a caller rings is then read as a kombu message
(json.loads of a queue's name), which escapes the event loop: "Unrecoverable error", the
worker stops, and the request just sent waits in its queue with nobody to serve it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.harness import caller_app
from tests.harness.one_worker import one_worker_serving
from tests.servers import keep_busy

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

RINGS = ["alpha", "beta", "gamma"]


@pytest.mark.timeout(120)
def test_a_busy_moment_of_redis_does_not_stop_the_worker(
    tmp_path: Path, pg_url: str, group: Any
) -> None:
    with one_worker_serving(tmp_path, pg_url, group, RINGS) as (server, env, worker):
        admin = redis.Redis.from_url(server.url)
        admin.config_set("busy-reply-threshold", 20)
        codes = []
        with caller_app(env) as app:
            for attempt in range(3):
                # Served, then the worker waits again (a BRPOP on its doorbell, 1 s).
                codes.append(app.ring_tasks.get_code.delay("alpha").get(timeout=10))
                time.sleep(0.05)
                busy = threading.Thread(target=lambda: keep_busy(server.url, 450_000))
                busy.start()
                busy.join()
                # Sent the moment Redis answers again, as a caller retrying would.
                result = app.ring_tasks.get_code.delay("beta")
                try:
                    codes.append(result.get(timeout=10))
                except Exception as error:  # noqa: BLE001 - the request waits: nobody serves it
                    raise AssertionError(
                        f"attempt {attempt}: no code within 10 s ({error!r}); worker alive: "
                        f"{worker.alive()}\n{worker.log_tail(30)}"
                    ) from None
                assert worker.alive(), worker.log_tail(30)
        admin.close()
    assert len(codes) == 6
