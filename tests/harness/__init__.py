"""A harness for tests that run real coder_ring worker, beat and flower processes.

Typical use (see tests/system/test_workers.py)::

    rings = write_rings(tmp_path / "rings.toml", doodad={"base_length": 1, "pool_size": 8})
    env = worker_env(redis_url=redis_url, database_url=pg_url, rings_file=rings)
    with ProcessGroup(tmp_path) as group, caller_app(env) as app:
        first = group.worker("a", env, rings=["doodad"])
        first.wait_for_lock("doodad")
        code = app.ring_tasks.get_code.delay("doodad").get(timeout=10)
        first.kill(signal.SIGKILL)

Every process a :class:`ProcessGroup` started is gone when the ``with`` block ends,
whatever happened inside it (SIGCONT, then SIGKILL of its process group, then reaped).
Each process writes stdout and stderr to its own log file in the group's directory;
:meth:`ManagedProcess.log_text` reads it and a failing test's report shows the tail.

The modules: :mod:`~tests.harness.config` (paths, commands, rings file, environment),
:mod:`~tests.harness.calls` (caller app, ring calls, ``coder-ring`` in a subprocess,
``wait_until``), :mod:`~tests.harness.processes` (worker, beat and flower processes),
:mod:`~tests.harness.cluster` (members, queues, lock holders), and, imported by name,
:mod:`~tests.harness.shared` (the shared servers), :mod:`~tests.harness.cli` (the
``coder-ring`` group run in a test), :mod:`~tests.harness.inprocess` (a worker in the
test's own process) and :mod:`~tests.harness.upgrade` (0.1.0 and 0.2.0 databases written
by hand).
"""

from tests.harness.calls import assert_distinct, caller_app, ring_calls, run_cli, wait_until
from tests.harness.cluster import HolderWatch, lock_holder, lock_holders, members, queue_length
from tests.harness.config import (
    BIN,
    CELERY,
    CODER_RING,
    HOSTNAME,
    REPO,
    TEST_LOCK_TTL,
    TEST_VISIBILITY_TIMEOUT,
    engine_settings,
    free_port,
    service_for,
    settings_from_env,
    worker_env,
    write_rings,
)
from tests.harness.processes import (
    SUCCEEDED,
    BeatProcess,
    FlowerProcess,
    ManagedProcess,
    ProcessGroup,
    WorkerProcess,
)

__all__ = [
    "BIN",
    "CELERY",
    "CODER_RING",
    "HOSTNAME",
    "REPO",
    "SUCCEEDED",
    "TEST_LOCK_TTL",
    "TEST_VISIBILITY_TIMEOUT",
    "BeatProcess",
    "FlowerProcess",
    "HolderWatch",
    "ManagedProcess",
    "ProcessGroup",
    "WorkerProcess",
    "assert_distinct",
    "caller_app",
    "engine_settings",
    "free_port",
    "lock_holder",
    "lock_holders",
    "members",
    "queue_length",
    "ring_calls",
    "run_cli",
    "service_for",
    "settings_from_env",
    "wait_until",
    "worker_env",
    "write_rings",
]
