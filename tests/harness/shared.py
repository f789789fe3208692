"""The shared test servers (PostgreSQL and Redis URLs from the environment), what a
missing one means (a skip locally, a failure with CI=true) and the types of the engine
fixtures of ``tests/conftest.py``."""

from __future__ import annotations

import os
from collections.abc import Callable
from urllib.parse import quote

import pytest

from coder_ring import RingService
from coder_ring.store import Store

PG_ADMIN_URL = os.environ.get(
    "CODER_RING_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_TEST_URL = os.environ.get("CODER_RING_TEST_REDIS", "redis://127.0.0.1:6379/9")
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
