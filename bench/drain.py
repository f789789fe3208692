"""What workers serve when the requests are already waiting: a queue drained.

Requests are sent by name to the rings' queues (the by-name callers' path:
``send_task`` to ``coder_ring.<namespace>.<ring>``) before any worker of those rings
runs; then the workers start and serve them. No caller competes with the workers
for the machine's cores while they serve, so the rate is the workers' own.

The rate comes from the results' completion times (``date_done``, the workers'
clock): completions per second over the window in which every ring is being served,
from the last ring's first completion to the first ring's last one (workers started
together still begin a little apart). With too few requests for such a window (the
quick mode), over all the completions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from bench.calls import Recorder
from coder_ring.celery.app import CoderRingApp
from coder_ring.celery.names import TASK_GET_CODE, ring_queue

#: Seconds a queued request stays valid (the workers start after the queueing).
QUEUED_EXPIRES = 600.0


def enqueue(app: CoderRingApp, rings: Sequence[str], per_ring: int) -> dict[str, list[Any]]:
    """Send ``per_ring`` get_code requests to each ring's queue, by name, alternating
    between the rings; their AsyncResults by ring."""
    namespace = app.settings.namespace
    results: dict[str, list[Any]] = {ring: [] for ring in rings}
    for _ in range(per_ring):
        for ring in rings:
            results[ring].append(
                app.send_task(
                    TASK_GET_CODE,
                    args=(ring,),
                    queue=ring_queue(namespace, ring),
                    expires=QUEUED_EXPIRES,
                )
            )
    return results


#: Fewest completions a window must hold to be used.
MIN_WINDOW = 20


def wait_served(
    app: CoderRingApp,
    results: Mapping[str, Sequence[Any]],
    timeout: float,
    check: Callable[[], None],
) -> None:
    """Return once the last request of every ring has its result (a queue is served
    first in, first out), polling the result backend: reading results meanwhile would
    take this process's share of the cores from the workers. ``check()`` raises if a
    worker died."""
    backend = app.backend
    keys = [backend.get_key_for_task(ring_results[-1].id) for ring_results in results.values()]
    deadline = time.monotonic() + timeout
    while backend.client.exists(*keys) < len(keys):
        check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"queued requests not served in {timeout:.0f} s")
        time.sleep(0.05)


def drain_rate(results: Mapping[str, Sequence[Any]], timeout: float, recorder: Recorder) -> float:
    """Every result, read; completions per second (see the module doc)."""
    done: dict[str, list[datetime]] = {}
    for ring, ring_results in results.items():
        times = []
        for result in ring_results:
            recorder.record(result, result.get(timeout=timeout), ring)
            times.append(result.date_done)
        done[ring] = sorted(times)
    start = max(times[0] for times in done.values())
    end = min(times[-1] for times in done.values())
    served = sum(1 for times in done.values() for moment in times if start < moment <= end)
    if served < MIN_WINDOW or end <= start:
        start = min(times[0] for times in done.values())
        end = max(times[-1] for times in done.values())
        served = sum(len(times) for times in done.values()) - 1
    return served / max((end - start).total_seconds(), 1e-6)
