"""Isolated database resources for the benchmark: never the rings of a real deployment.

* PostgreSQL: the server of ``CODER_RING_DATABASE_URL`` when that is a PostgreSQL URL,
  else :data:`DEFAULT_POSTGRES_URL`. On it the benchmark uses its own database,
  :data:`BENCH_DATABASE` (created when missing), and in it a fresh schema per run
  (selected through ``search_path``, as the tests do), dropped at the end of the run.
* SQLite: a file in the run's temporary directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ProgrammingError

#: The database the benchmark creates (if missing) on the PostgreSQL server.
BENCH_DATABASE = "coder_ring_bench"
#: The PostgreSQL server used when the configured database is not PostgreSQL.
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_server_url(database_url: str) -> URL:
    """The PostgreSQL server to benchmark on: ``database_url`` if it is PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() not in {"postgresql", "postgres"}:
        url = make_url(DEFAULT_POSTGRES_URL)
    return url.set(drivername="postgresql+psycopg")


def ensure_bench_database(server: URL, database: str = BENCH_DATABASE) -> URL:
    """Create ``database`` on ``server`` if it does not exist; its URL."""
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            ).first()
            if exists is None:
                try:
                    conn.execute(text(f'CREATE DATABASE "{database}"'))
                except ProgrammingError as error:  # created meanwhile by a concurrent run
                    if "already exists" not in str(error.orig):
                        raise
    finally:
        admin.dispose()
    query = {key: value for key, value in server.query.items() if key != "options"}
    return server.set(database=database, query=query)


@contextmanager
def postgres_schema(server: URL, schema: str) -> Iterator[str]:
    """A URL (string, password included) of a fresh ``schema`` in the bench database.

    The schema is created first and dropped with everything in it afterwards; whoever
    used the URL must have closed its connections (or at least its transactions).
    """
    if not schema.isidentifier() or schema.lower() != schema:
        raise ValueError(f"schema must be a lowercase identifier, got {schema!r}")
    database = ensure_bench_database(server)
    admin = create_engine(database, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = database.update_query_dict({"options": f"-csearch_path={schema}"})
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    finally:
        admin.dispose()
