"""The ring tasks through a real Celery worker running in this process (fast: no worker
subprocess). The worker is Celery's own embedded test worker
(``celery.contrib.testing.worker.start_worker``, the in-process worker pytest-celery's
legacy fixtures are built on; pytest-celery's own ``celery_worker`` runs in Docker,
which this machine does not have) on a :class:`~coder_ring.celery.app.CoderRingApp` built from
:class:`~coder_ring.settings.WorkerSettings`: real Redis broker, result backend and locks,
a real SQLite database, and the app's own ``RingOwnership`` bootstep, so the worker
takes the ring's lock and consumes its queue exactly as ``coder-ring worker`` does.
The worker and its waits are in :mod:`tests.harness.inprocess`.

The worker serves ring ``one`` only; ring ``two`` is configured but served by nobody.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from coder_ring import (
    ALPHABET,
    ExtraConflict,
    InvalidInput,
    NoWorker,
    RingService,
    Settings,
    UnknownRing,
)
from coder_ring.celery.app import CoderRingApp, create_app
from coder_ring.celery.names import TASK_GET_CODE, TASK_GET_CODES, ring_queue
from coder_ring.settings import WorkerSettings
from coder_ring.status import RingStatus
from tests.harness import queue_length, write_rings
from tests.harness.inprocess import NODE, running_worker, wait_serving
from tests.harness.shared import REDIS_TEST_URL, require

pytestmark = pytest.mark.redis

SERVED, UNSERVED = "one", "two"
POOL = 4
NAMESPACE = "inprocess"
TIMEOUT = 10.0


@dataclass
class Served:
    """A worker running in this process and a caller app on the same settings."""

    app: CoderRingApp
    settings: WorkerSettings

    def status(self) -> dict[str, Any]:
        """The worker's status of the served ring (pool top-ups in flight landed)."""
        report: dict[str, Any] = self.app.ring_tasks.status.delay(SERVED).get(timeout=TIMEOUT)
        return report

    def database(self) -> RingStatus:
        """The served ring as the database has it."""
        service = RingService.from_settings(self.settings.engine)
        try:
            return service.status(SERVED)
        finally:
            service.close()


def settings_for(tmp: Path, database_url: str | None = None) -> WorkerSettings:
    rings = write_rings(
        tmp / "rings.toml",
        **{SERVED: {"base_length": 1, "pool_size": POOL}, UNSERVED: {"base_length": 1}},
    )
    return WorkerSettings(
        engine=Settings(database_url or f"sqlite:///{tmp / 'rings.db'}", rings),
        broker_url=REDIS_TEST_URL,
        result_backend=REDIS_TEST_URL,
        redis_url=REDIS_TEST_URL,
        namespace=NAMESPACE,
        lock_ttl=1.0,
        task_expires=30.0,
    )


def fresh_redis() -> None:
    """The test Redis database, emptied (it is this test run's own)."""
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
        client.flushdb()
    except redis.RedisError as error:
        require("Redis", error)
    finally:
        client.close()


@pytest.fixture(scope="class")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    fresh_redis()
    settings = settings_for(tmp_path_factory.mktemp("inprocess"))
    RingService.from_settings(settings.engine).migrate()
    with running_worker(settings, SERVED) as worker_app:
        wait_serving(worker_app, SERVED)
        caller = create_app(settings)
        try:
            yield Served(caller, settings)
        finally:
            caller.close()


class TestOneWorker:
    """Requests to one worker that runs for the whole class (stopped before the next
    test, which starts its own)."""

    def test_codes_status_refill_and_reset_through_the_worker(self, served: Served) -> None:
        tasks = served.app.ring_tasks
        first = tasks.get_code.delay(SERVED).get(timeout=TIMEOUT)
        more = tasks.get_codes.delay(SERVED, 3).get(timeout=TIMEOUT)
        hi = tasks.get_codes.delay(SERVED, 2, extra="hi").get(timeout=TIMEOUT)
        assert first in ALPHABET and all(code in ALPHABET for code in more)
        assert len({first, *more}) == 4
        assert len(set(hi)) == 2 and all(code[:2] == "hi" and code[2] in ALPHABET for code in hi)

        # Beat's refill fills every pool; the status (queued behind it) sees them full.
        tasks.refill.delay(SERVED)
        report = served.status()
        state = RingStatus.from_dict(report)
        assert state.as_dict() == report  # one model, as_dict and from_dict agree
        assert state.holder == NODE
        pooled = {extra.extra: extra.pooled for extra in state.extras}
        assert pooled == {"": POOL, "hi": POOL}
        assert state.pooled == 2 * POOL
        issued = {extra.extra: extra.issued for extra in state.extras}
        # The database counts pooled codes as issued; the status shows them apart.
        assert issued == {"": 4 + POOL, "hi": 2 + POOL}
        remaining = {extra.extra: extra.remaining_in_cycle for extra in state.extras}
        assert remaining == {"": 32 - 4 - POOL, "hi": 32 - 2 - POOL}
        assert state.extra == "hi"  # the latest extra leads

        epoch = tasks.reset.delay(SERVED).get(timeout=TIMEOUT)
        assert epoch == state.epoch  # the holder resets with its own epoch: it keeps serving
        after = RingStatus.from_dict(served.status())
        assert (after.extras, after.remaining_in_cycle, after.pooled) == ((), 32, 0)
        again = tasks.get_codes.delay(SERVED, 32).get(timeout=TIMEOUT)
        assert sorted(again) == sorted(ALPHABET)  # a whole first cycle again

    def test_errors_reach_the_caller_and_change_nothing(self, served: Served) -> None:
        tasks = served.app.ring_tasks
        tasks.get_codes.delay(SERVED, 5, extra="ok-").get(timeout=TIMEOUT)
        tasks.refill.delay(SERVED)
        before = served.status()

        # Found by the worker (it needs the database): the error class crosses over.
        with pytest.raises(ExtraConflict) as conflict:
            tasks.get_code.delay(SERVED, extra="X").get(timeout=TIMEOUT)
        assert "extra 'X'" in str(conflict.value) and "extra ''" in str(conflict.value)
        with pytest.raises(ExtraConflict) as extended:
            tasks.get_code.delay(SERVED, extra="ok-26").get(timeout=TIMEOUT)
        assert "extra 'ok-26'" in str(extended.value) and "extra 'ok-'" in str(extended.value)
        # Sent by name, skipping the caller's checks: the worker checks again.
        queue = ring_queue(NAMESPACE, SERVED)
        by_name = [
            ((SERVED, 0), TASK_GET_CODES, "invalid count 0"),
            ((SERVED, "5"), TASK_GET_CODES, "invalid count '5'"),
            ((SERVED, "a b"), TASK_GET_CODE, "invalid extra 'a b'"),
            ((SERVED, "", "yes"), TASK_GET_CODE, "invalid bump 'yes'"),
        ]
        for args, name, shown in by_name:
            sent = served.app.send_task(name, args=list(args), queue=queue, expires=30)
            with pytest.raises(InvalidInput) as refused:
                sent.get(timeout=TIMEOUT)
            assert shown in str(refused.value)

        # Refused in the caller: nothing is sent.
        with pytest.raises(InvalidInput, match=r"invalid count '5'"):
            tasks.get_codes.delay(SERVED, "5")
        with pytest.raises(InvalidInput, match=r"invalid extra 26"):
            tasks.get_code.delay(SERVED, extra=26)
        for option in ("countdown", "eta"):
            with pytest.raises(InvalidInput, match=rf"invalid option {option}="):
                tasks.get_code.apply_async((SERVED,), **{option: 5})
        with pytest.raises(UnknownRing, match=r"unknown ring 'nope'; configured rings: one, two"):
            tasks.get_code.delay("nope")
        with pytest.raises(NoWorker) as nobody:
            tasks.get_codes.delay(UNSERVED, 2)
        assert f"ring {UNSERVED!r}" in str(nobody.value) and NODE in str(nobody.value)
        assert f"coder-ring worker {UNSERVED}" in str(nobody.value)

        # Nothing changed: no pool appeared for a refused extra, none was topped up.
        assert served.status() == before
        for ring in (SERVED, UNSERVED, "nope"):
            assert queue_length(REDIS_TEST_URL, ring, NAMESPACE) == 0


def test_a_graceful_stop_gives_the_pool_back(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    fresh_redis()
    with running_worker(settings, SERVED) as app:
        wait_serving(app, SERVED)
        codes = app.ring_tasks.get_codes.delay(SERVED, 3).get(timeout=TIMEOUT)
        app.ring_tasks.refill.delay(SERVED)
        state = RingStatus.from_dict(app.ring_tasks.status.delay(SERVED).get(timeout=TIMEOUT))
        assert state.pooled == POOL
    # Stopped: the pool is home, only the codes handed out are gone from the cycle.
    service = RingService.from_settings(settings.engine)
    try:
        assert service.status(SERVED).remaining_in_cycle == 32 - 3
        rest = service.get_codes(SERVED, 32 - 3)
    finally:
        service.close()
    assert sorted([*codes, *rest]) == sorted(ALPHABET)
