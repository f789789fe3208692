"""Shared fixtures: real PostgreSQL, real SQLite files, real Redis.

Outside CI a missing server skips the tests that need it; with CI=true it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from coder_ring import RingConfig, RingService, SqlStore

PG_ADMIN_URL = os.environ.get(
    "CODER_RING_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_TEST_URL = os.environ.get("CODER_RING_TEST_REDIS", "redis://127.0.0.1:6379/9")
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(server: str, problem: BaseException) -> None:
    """Skip (locally) or fail (in CI) a test whose server is missing."""
    message = f"{server} is not reachable: {problem}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing server is a failure)")
    pytest.skip(message)  # not in CI: see the IN_CI branch above


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[object]:
    """An engine on the shared PostgreSQL test database (for creating schemas)."""
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "no server"
        require("PostgreSQL", error)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: object) -> Iterator[str]:
    """A database URL whose search_path is a fresh schema, dropped after the test."""
    schema = f"cr_{uuid.uuid4().hex[:12]}"
    engine = pg_admin
    with engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    options = quote(f"-csearch_path={schema}")
    yield f"{PG_ADMIN_URL}?options={options}"
    with engine.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A database URL of a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'rings.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each contract test runs once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


ServiceFactory = Callable[..., RingService]


@pytest.fixture
def make_service(database_url: str) -> Iterator[ServiceFactory]:
    """Build a migrated RingService on the test database with the given rings."""
    made: list[RingService] = []

    def factory(*rings: RingConfig, populate: bool = True) -> RingService:
        service = RingService(SqlStore(database_url), {ring.name: ring for ring in rings})
        service.migrate()
        if populate:
            service.populate()
        made.append(service)
        return service

    yield factory
    for service in made:
        service.close()


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
