"""The shared test servers (PostgreSQL and Redis URLs from the environment), what a
missing one means (a skip locally, a failure with CI=true) and the types of the engine
fixtures of ``tests/conftest.py``."""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, make_url, text

from coder_ring import RingService
from coder_ring.store import Store

#: The database every PostgreSQL test runs in (``CODER_RING_TEST_PG`` names another). It
#: is made with the defaults of a server tuned for speed, which the store must override
#: for its guarantee (a committed draw survives a crash; concurrent draws wait, not fail):
#: every PostgreSQL test checks those session pins, at no extra test time.
TUNED_DATABASE = "coder_ring_tuned"
HOSTILE_DEFAULTS = {"synchronous_commit": "off", "default_transaction_isolation": "serializable"}
PG_ADMIN_URL = os.environ.get(
    "CODER_RING_TEST_PG", f"postgresql+psycopg://postgres@127.0.0.1:5432/{TUNED_DATABASE}"
)
#: Key of the advisory lock under which test runs (of any worktree) prepare the database.
_PREPARE_LOCK_KEY = 0x636F_6465_7274  # "codert"


def _redis_test_url() -> str:
    """The test Redis database of this test process: ``CODER_RING_TEST_REDIS`` (default
    db 9), moved on by the pytest-xdist worker's number (gw1: db + 1...), because the
    fixtures flush it and two processes must not flush each other's keys."""
    url = os.environ.get("CODER_RING_TEST_REDIS", "redis://127.0.0.1:6379/9")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    offset = int(worker.removeprefix("gw") or 0)
    if not offset:
        return url
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0) + offset
    return urlunsplit(parts._replace(path=f"/{db}"))


REDIS_TEST_URL = _redis_test_url()
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ("memory", "sqlite", "postgresql")

#: ``make_store``: each call is another client of the same database.
StoreFactory = Callable[[], Store]
#: ``make_service``: a migrated RingService with the given rings.
ServiceFactory = Callable[..., RingService]


def require(server: str, problem: BaseException) -> None:
    """Skip (locally) or fail (in CI) a test whose server is missing."""
    message = f"{server} is not reachable: {problem}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing server is a failure)")
    pytest.skip(message)  # not in CI: see the IN_CI branch above


def pg_schema_url(schema: str) -> str:
    """The test database's URL with ``schema`` as its search_path."""
    return f"{PG_ADMIN_URL}?options={quote(f'-csearch_path={schema}')}"


def prepare_test_database(url: str = PG_ADMIN_URL) -> None:
    """Create ``url``'s database unless it exists, and give it :data:`HOSTILE_DEFAULTS`
    (new sessions see them). Idempotent, and safe for several test runs at once: they
    take turns under an advisory lock in the server's ``postgres`` database."""
    target = make_url(url)
    name = target.database
    server = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PREPARE_LOCK_KEY})
            try:
                found = conn.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).first()
                if found is None:
                    conn.execute(text(f'CREATE DATABASE "{name}"'))
                for setting, value in HOSTILE_DEFAULTS.items():
                    conn.execute(text(f"ALTER DATABASE \"{name}\" SET {setting} = '{value}'"))
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PREPARE_LOCK_KEY})
    finally:
        server.dispose()
