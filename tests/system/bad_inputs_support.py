"""Helpers of ``test_bad_inputs*.py``: the one ring's settings and environment, the
whole ``coder-ring`` group on them, calls through a caller app, the database state a bad
input must leave unchanged, and the rest of the first cycle that must still be there."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis
from celery.exceptions import TimeoutError as CeleryTimeout

from coder_ring import ALPHABET, BrokerUnreachable, NoWorker, Settings, SqlStore
from coder_ring.celery.app import CoderRingApp
from coder_ring.celery.cli import build
from coder_ring.celery.names import TASK_GET_CODE, TASK_GET_CODES
from coder_ring.settings import WorkerSettings
from tests.harness import caller_app, worker_env, write_rings
from tests.harness.cli import Cli
from tests.harness.inprocess import running_worker, wait_serving
from tests.system.bad_inputs_catalogue import NAMESPACE, RESULT_TIMEOUT, RING, RING_KEYS


def one_ring_settings(
    tmp_path: Path, redis_url: str, database_url: str, name: str = "rings", **ring: Any
) -> WorkerSettings:
    """Worker settings for the one ring, its rings file ``<name>.toml`` (``ring``
    overrides the ring's keys)."""
    rings = write_rings(tmp_path / f"{name}.toml", **{RING: {**RING_KEYS, **ring}})
    return WorkerSettings(
        engine=Settings(database_url, rings),
        broker_url=redis_url,
        result_backend=redis_url,
        redis_url=redis_url,
        namespace=NAMESPACE,
        lock_ttl=1.0,
        task_expires=30.0,
    )


def whole_cli(settings: WorkerSettings) -> Cli:
    """The whole ``coder-ring`` group (the Celery layer's), run in this process with
    ``settings``' environment: ``get`` asks the worker, ``get --direct`` the database."""
    return Cli(
        settings.engine.database_url,
        settings.engine.config_path,
        more_env=settings.to_env(),
        group=build,
    )


def tasks_by_name(app: CoderRingApp) -> dict[str, Any]:
    return {TASK_GET_CODE: app.ring_tasks.get_code, TASK_GET_CODES: app.ring_tasks.get_codes}


def get(app: CoderRingApp, **kwargs: Any) -> str:
    code: str = app.ring_tasks.get_code.delay(RING, **kwargs).get(timeout=RESULT_TIMEOUT)
    return code


def status(app: CoderRingApp) -> dict[str, Any]:
    report: dict[str, Any] = app.ring_tasks.status.delay(RING).get(timeout=RESULT_TIMEOUT)
    return report


def database_state(database_url: str) -> tuple[object, ...]:
    """The ring's row and its extras' rows, exactly as stored (versions included)."""
    store = SqlStore(database_url)
    try:
        return (
            store.ring_record(RING),
            sorted(store.extra_records(RING), key=lambda extra: extra.extra),
            store.stored_positions(RING),
        )
    finally:
        store.dispose()


def assert_message(error: BaseException, *shown: str) -> str:
    message = str(error)
    for text in shown:
        assert text in message, (text, message)
    return message


def finish_cycle(app: CoderRingApp, codes: Sequence[str]) -> None:
    """Draw the rest of the first cycle: with ``codes`` it must be exactly the 32 codes
    of the ring, and the next code must open the second cycle."""
    rest = [get(app) for _ in range(len(ALPHABET) - len(codes))]
    assert sorted([*codes, *rest]) == sorted(ALPHABET), (codes, rest)
    assert get(app).startswith("X")


@contextlib.contextmanager
def serving(settings: WorkerSettings) -> Iterator[CoderRingApp]:
    """A worker in this process serving the ring, and a caller app."""
    with running_worker(settings, RING) as worker_app, caller_app(settings) as app:
        wait_serving(worker_app, RING)
        yield app


def one_ring_env(tmp_path: Path, redis_url: str, database_url: str) -> dict[str, str]:
    rings = write_rings(tmp_path / "rings.toml", **{RING: RING_KEYS})
    return worker_env(
        redis_url=redis_url, database_url=database_url, rings_file=rings, namespace=NAMESPACE
    )


def extra_boundary(database_url: str) -> int:
    _, extras, _ = database_state(database_url)
    [empty] = [extra for extra in extras if extra.extra == ""]
    return int(empty.boundary)


def served_or_none(app: CoderRingApp) -> str | None:
    """One code, or None while no worker serves the ring (or the broker is still down)."""
    try:
        return get(app)
    except (NoWorker, BrokerUnreachable, CeleryTimeout, redis.RedisError):
        return None
