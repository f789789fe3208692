"""Red team: a lost lock's pools are dropped by the transition thread while a request of
the same ring may be in flight (finding F5).

``WorkerRuntime._lost`` (and the database give-up) used to call ``RingServer.deactivate``
without waiting for the request in flight. A request that had just found the ring
unclaimed (the lock won back, the claim dropped) then claimed again midway through the
deactivation, whose last step cleared the fresh claim and let its queued pool fill be
drawn and dropped: codes lost. A seat's claim is now dropped only between requests.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import redis

from coder_ring.ring_server import RingServer
from tests.system.test_redteam_stop import one_ring_runtime, shared_redis  # noqa: F401

pytestmark = [pytest.mark.redis]


def test_a_lost_locks_pools_are_dropped_only_between_requests(
    shared_redis: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    runtime, service, namespace = one_ring_runtime(shared_redis, tmp_path)
    client = redis.Redis.from_url(shared_redis)
    received: list[str] = []
    try:
        runtime.start()
        seat = runtime.seats["one"]
        deadline = time.monotonic() + 15
        while not (seat.can_serve() and seat.server.epoch) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seat.can_serve() and seat.server.epoch, "the worker never took ring one"

        in_request, finish = threading.Event(), threading.Event()

        def slow_request(server: RingServer) -> str:
            in_request.set()
            assert finish.wait(10)
            return server.get_code()

        request = threading.Thread(target=lambda: received.append(seat.serve(slow_request)))
        request.start()
        assert in_request.wait(10)
        epoch = seat.server.epoch
        runtime._lost(seat)  # what the lease thread does when a renewal finds it lost
        time.sleep(0.5)
        still_claimed = seat.server.epoch == epoch
        finish.set()
        request.join(10)
        assert still_claimed, "the claim was dropped under a request in flight"
        assert len(received) == 1
        deadline = time.monotonic() + 10
        while seat.server.epoch is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seat.server.epoch is None, "the lost lock's claim was never dropped"
        runtime.stop(give_back=True)
        # Nothing lost: the database counts as issued exactly what the caller received.
        issued = sum(extra.issued for extra in service.status("one").extras)
        assert issued == len(received)
    finally:
        if not runtime._stopped.is_set():
            runtime.stop(give_back=True)
        for key in client.scan_iter(f"*{namespace}*"):
            client.delete(key)
        client.close()
