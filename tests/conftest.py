"""Shared fixtures: real PostgreSQL, real SQLite files, real Redis, and the in-memory store.

Outside CI a missing server skips the tests that need it; with CI=true it fails them.

``database_url`` runs a test on SQLite and on PostgreSQL (a URL: for the CLI, worker
processes and anything that needs SQL; an empty database). ``make_service`` runs an
engine test on the three stores: the in-memory store, SQLite and PostgreSQL
(``backend``), each database migrated from a session's template (``migrated``).

Hypothesis loads the tier's profile here, before any test module is imported
(:mod:`tests.harness.tiers`: ``CODER_RING_TEST_PROFILE``, ``full`` unless
``make test-fast`` sets ``fast``).

The servers' URLs, ``require`` and the factories' types are in :mod:`tests.harness.shared`
(tests import them from there, not from this file).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from coder_ring import MemoryStore, RingConfig, RingService, SqlStore
from coder_ring.store import Store
from tests.harness.shared import (
    BACKENDS,
    PG_ADMIN_URL,
    REDIS_TEST_URL,
    ServiceFactory,
    StoreFactory,
    pg_schema_url,
    prepare_test_database,
    require,
)
from tests.harness.templates import MigratedTemplates
from tests.harness.tiers import load_profile

load_profile()

#: Tests whose figures are timings under faults (partitions, kills, a Sentinel failover,
#: a thousand rings, a thousand pools): under ``make test``'s two pytest-xdist workers
#: they run one after another on one worker, beside the rest of the suite, never beside
#: each other (on 2 cores, two of them at once make each other's timings lie).
TIMED_UNDER_FAULTS = (
    "tests/faults/",
    "tests/partitions/",
    "tests/ha/",
    "tests/system/test_many_rings.py",
    "tests/system/test_graceful_accounting.py",
    "tests/system/test_registry_cluster.py",
    "tests/system/test_redteam_slow_redis.py",
)


#: The long modes (``make faults-long``) run only when asked: deselected otherwise, so a
#: run never counts them as skipped.
LONG_MODE = os.environ.get("CODER_RING_PARTITIONS_LONG", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselected = [item for item in items if item.get_closest_marker("long") and not LONG_MODE]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]
    for item in items:
        if item.nodeid.startswith(TIMED_UNDER_FAULTS):
            item.add_marker(pytest.mark.xdist_group("timed-under-faults"))


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An engine on the shared PostgreSQL test database (for creating schemas), made
    first if need be, with the hostile defaults of :func:`prepare_test_database`."""
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        prepare_test_database()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "no server"
        require("PostgreSQL", error)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema(pg_admin: Engine) -> Iterator[str]:
    """A fresh, empty schema of the test database, dropped after the test."""
    schema = f"cr_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield schema
    with pg_admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def pg_url(pg_schema: str) -> str:
    """A database URL whose search_path is a fresh schema, dropped after the test."""
    return pg_schema_url(pg_schema)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A database URL of a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'rings.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A test runs once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture(scope="session")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedTemplates]:
    """Migrated databases without a migration per test (see tests.harness.templates)."""
    templates = MigratedTemplates(tmp_path_factory.mktemp("templates"))
    yield templates
    templates.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store an engine test runs on: "memory", "sqlite" or "postgresql"."""
    return str(request.param)


@pytest.fixture
def make_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[StoreFactory]:
    """Stores on one fresh, migrated database of ``backend``: each call is another client
    of the same database (another SqlStore on the same URL; the one MemoryStore in
    memory)."""
    opened: list[Store] = []
    if backend == "memory":
        shared = MemoryStore()

        def factory() -> Store:
            return shared

    else:
        migrated: MigratedTemplates = request.getfixturevalue("migrated")
        if backend == "sqlite":
            url = migrated.sqlite(tmp_path / "rings.db")
        else:
            schema = str(request.getfixturevalue("pg_schema"))
            migrated.postgres(request.getfixturevalue("pg_admin"), schema)
            url = pg_schema_url(schema)

        def factory() -> Store:
            store = SqlStore(url)
            opened.append(store)
            return store

    yield factory
    for store in opened:
        store.dispose()


@pytest.fixture
def make_service(make_store: StoreFactory) -> ServiceFactory:
    """Build a migrated RingService on the test database with the given rings (each call
    is another client of the same database)."""

    def factory(*rings: RingConfig, populate: bool = True) -> RingService:
        service = RingService(make_store(), {ring.name: ring for ring in rings})
        service.migrate()
        if populate:
            service.populate()
        return service

    return factory


@pytest.fixture
def redis_url() -> str:
    """The shared Redis, on a test database that is flushed before the test."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except redis.RedisError as error:
        require("Redis", error)
    client.flushdb()
    client.close()
    return REDIS_TEST_URL
