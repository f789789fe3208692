"""A real Celery worker running in the test's own process (fast: no worker subprocess).

The worker is Celery's own embedded test worker
(``celery.contrib.testing.worker.start_worker``) on a :class:`~coder_ring.celery.app.CoderRingApp`
built from :class:`~coder_ring.settings.WorkerSettings`, with the app's own
``RingOwnership`` bootstep, so it takes its rings' locks and consumes their queues
exactly as ``coder-ring worker`` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from celery.contrib.testing.worker import start_worker

from coder_ring.celery.app import CoderRingApp, create_app
from coder_ring.settings import WorkerSettings
from tests.harness.calls import wait_until

#: The in-process worker's node name.
NODE = "inprocess@tests"
#: Seconds :func:`wait_serving` waits for each step.
SERVING_TIMEOUT = 10.0


@contextlib.contextmanager
def running_worker(settings: WorkerSettings, rings: str) -> Iterator[CoderRingApp]:
    """A worker of ``rings`` in a thread of this process (its app), stopped gracefully
    after."""
    app = create_app(settings)
    # Leave pytest's log capture alone (Celery would replace the root logger's handlers).
    app.conf.worker_hijack_root_logger = False
    try:
        with start_worker(
            app,
            pool="solo",
            concurrency=1,
            perform_ping_check=False,
            loglevel="INFO",
            hostname=NODE,
            shutdown_timeout=20.0,
            rings=rings,
        ):
            yield app
    finally:
        app.close()


def wait_serving(app: CoderRingApp, ring: str) -> None:
    """Until the worker holds ``ring`` and its registry entry is published."""

    def serving() -> bool:
        runtime = app.runtime
        return runtime is not None and ring in runtime.seats and runtime.seats[ring].can_serve()

    wait_until(serving, SERVING_TIMEOUT, what=f"the in-process worker to serve {ring!r}")
    wait_until(
        lambda: app.registry.members(fresh=True),
        SERVING_TIMEOUT,
        what="the worker's membership",
    )
