"""Isolated resources for the benchmark (never those of a real deployment), and the
machine it runs on.

* PostgreSQL: the server of ``CODER_RING_DATABASE_URL`` when that is a PostgreSQL URL,
  else :data:`DEFAULT_POSTGRES_URL`. On it the benchmark uses its own database,
  :data:`BENCH_DATABASE` (created when missing), and in it fresh schemas per run
  (selected through ``search_path``, as the tests do), dropped at the end of the run.
* Redis: the configured server(s), always database :data:`BENCH_REDIS_DB`; every key a
  run makes carries its run id (its namespace, queues, locks), except the results of
  its tasks, which :class:`RedisKeys` deletes by task id.
* SQLite: files in the run's temporary directory.
"""

from __future__ import annotations

import os
import platform
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ProgrammingError

#: The database the benchmark creates (if missing) on the PostgreSQL server.
BENCH_DATABASE = "coder_ring_bench"
#: The PostgreSQL server used when the configured database is not PostgreSQL.
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: The Redis database every bench run uses, on the configured Redis server(s).
BENCH_REDIS_DB = 12


def bench_redis_url(url: str, db: int = BENCH_REDIS_DB) -> str:
    """``url`` with Redis database ``db`` (URLs of other transports are left alone)."""
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"}:
        return url
    return urlunsplit(parts._replace(path=f"/{db}"))


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
def postgres_schemas(server: URL, prefix: str) -> Iterator[SchemaMaker]:
    """A :class:`SchemaMaker` of fresh schemas named ``<prefix>_<name>`` in the bench
    database; every schema it made is dropped (with all in it) afterwards. Whoever used
    their URLs must have closed their connections (or at least their transactions)."""
    database = ensure_bench_database(server)
    maker = SchemaMaker(database, prefix)
    try:
        yield maker
    finally:
        maker.drop_all()


class SchemaMaker:
    """Makes fresh PostgreSQL schemas in the bench database and drops them all at the end."""

    def __init__(self, database: URL, prefix: str) -> None:
        if not prefix.isidentifier() or prefix.lower() != prefix:
            raise ValueError(f"schema prefix must be a lowercase identifier, got {prefix!r}")
        self.database = database
        self.prefix = prefix
        self.made: list[str] = []
        self._admin = create_engine(database, isolation_level="AUTOCOMMIT")

    def url(self, name: str) -> str:
        """The URL (password included) of a new schema ``<prefix>_<name>``."""
        schema = f"{self.prefix}_{name}"
        if not schema.isidentifier() or schema.lower() != schema:
            raise ValueError(f"schema must be a lowercase identifier, got {schema!r}")
        with self._admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        self.made.append(schema)
        url = self.database.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    def drop_all(self) -> None:
        """Drop every schema made here."""
        try:
            with self._admin.connect() as conn:
                for schema in self.made:
                    conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            self.made = []
        finally:
            self._admin.dispose()


def schema_exists(database: URL, schema: str) -> bool:
    """Whether ``schema`` exists in ``database`` (for checking a run left none behind)."""
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :n"),
                {"n": schema},
            ).scalar_one()
    finally:
        engine.dispose()
    return bool(found)


class RedisKeys:
    """Deletes what a run left in its Redis database: every key whose name contains the
    run's marker, and the results of the tasks it sent (by id)."""

    def __init__(self, url: str, marker: str) -> None:
        self.url = url
        self.marker = marker

    def delete(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` (in chunks); how many existed."""
        client: redis.Redis = redis.Redis.from_url(self.url)
        deleted = 0
        try:
            chunk: list[str] = []
            for key in keys:
                chunk.append(key)
                if len(chunk) == 1000:
                    deleted += int(client.delete(*chunk))
                    chunk = []
            if chunk:
                deleted += int(client.delete(*chunk))
        finally:
            client.close()
        return deleted

    def marked(self) -> list[str]:
        """Every key whose name contains the marker."""
        client: redis.Redis = redis.Redis.from_url(self.url)
        try:
            return [
                key.decode() if isinstance(key, bytes) else str(key)
                for key in client.scan_iter(match=f"*{self.marker}*", count=1000)
            ]
        finally:
            client.close()

    def clean(self) -> int:
        """Delete every key carrying the marker; how many there were."""
        return self.delete(self.marked())


def _server_version(url: URL) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one()).split()[0]
    finally:
        engine.dispose()


def machine(postgres: URL, redis_url: str) -> dict[str, Any]:
    """What the figures were measured on: cores, load, versions of every part."""
    client: redis.Redis = redis.Redis.from_url(redis_url)
    try:
        info: dict[str, Any] = client.info("server")
    finally:
        client.close()
    load = os.getloadavg()
    return {
        "cores": os.cpu_count() or 0,
        "cpu": _cpu_model(),
        "load_average_1_5_15": [round(value, 2) for value in load],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "celery": version("celery"),
        "kombu": version("kombu"),
        "redis_py": version("redis"),
        "sqlalchemy": version("sqlalchemy"),
        "psycopg": version("psycopg"),
        "redis_server": str(info.get("redis_version", "?")),
        "postgresql": _server_version(postgres),
        "sqlite": sqlite3.sqlite_version,
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def describe_machine(info: dict[str, Any]) -> str:
    """One line for the report: cores, load and versions."""
    load = ", ".join(f"{value:.2f}" for value in info["load_average_1_5_15"])
    return (
        f"{info['cores']} cores ({info['cpu']}), load {load}; Python {info['python']}, "
        f"Celery {info['celery']} (kombu {info['kombu']}, redis-py {info['redis_py']}), "
        f"Redis {info['redis_server']}, PostgreSQL {info['postgresql']} "
        f"(psycopg {info['psycopg']}), SQLite {info['sqlite']}"
    )
