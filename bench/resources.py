"""What a run uses, isolated from any deployment, and the machine it runs on. PostgreSQL:
the configured server (if PostgreSQL, else :data:`DEFAULT_POSTGRES_URL`), its database
:data:`BENCH_DATABASE` and a run's own schemas. Redis: the configured servers, database
:data:`BENCH_REDIS_DB`; every key of a run carries its run id, but its task results,
which the callers delete by id. SQLite: files in the run's temporary directory."""

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
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ProgrammingError

BENCH_DATABASE = "coder_ring_bench"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_REDIS_DB = 12


def bench_redis_url(url: str, db: int = BENCH_REDIS_DB) -> str:
    """``url`` with Redis database ``db`` (URLs of other transports are left alone)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}")) if parts.scheme in {"redis", "rediss"} else url


def postgres_server_url(database_url: str) -> URL:
    """The PostgreSQL server to benchmark on: ``database_url``'s if it is PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() not in {"postgresql", "postgres"}:
        url = make_url(DEFAULT_POSTGRES_URL)
    return url.set(drivername="postgresql+psycopg")


class Schemas:
    """Makes fresh schemas ``<prefix>_<name>`` in the bench database; ``made`` lists them."""

    def __init__(self, admin: Engine, prefix: str) -> None:
        self.admin, self.prefix = admin, prefix
        self.made: list[str] = []

    def url(self, name: str) -> str:
        """The URL (password included) of a new schema ``<prefix>_<name>``."""
        schema = f"{self.prefix}_{name}"
        if not schema.isidentifier() or schema.lower() != schema:
            raise ValueError(f"schema must be a lowercase identifier, got {schema!r}")
        with self.admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        self.made.append(schema)
        url = self.admin.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)


@contextmanager
def postgres_schemas(server: URL, prefix: str) -> Iterator[Schemas]:
    """:class:`Schemas` of the bench database on ``server``, every one dropped afterwards
    (whoever used them must have ended their transactions)."""
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = "SELECT 1 FROM pg_database WHERE datname = :name"
            if conn.execute(text(exists), {"name": BENCH_DATABASE}).first() is None:
                try:
                    conn.execute(text(f'CREATE DATABASE "{BENCH_DATABASE}"'))
                except ProgrammingError as error:  # made meanwhile by a concurrent run
                    if "already exists" not in str(error.orig):
                        raise
    finally:
        admin.dispose()
    query = {key: value for key, value in server.query.items() if key != "options"}
    bench = server.set(database=BENCH_DATABASE, query=query)
    schemas = Schemas(create_engine(bench, isolation_level="AUTOCOMMIT"), prefix)
    try:
        yield schemas
    finally:
        with schemas.admin.connect() as conn:
            for schema in schemas.made:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        schemas.admin.dispose()


def delete_keys(url: str, keys: Iterable[str], *, marker: str = "") -> int:
    """Delete ``keys`` (and those whose name holds ``marker``) from ``url``'s database."""
    client: redis.Redis = redis.Redis.from_url(url)
    try:
        found = [*keys, *(client.scan_iter(match=f"*{marker}*", count=1000) if marker else ())]
        return sum(int(client.delete(*found[i : i + 1000])) for i in range(0, len(found), 1000))
    finally:
        client.close()


def machine(postgres: URL, redis_url: str) -> dict[str, Any]:
    """What the figures were measured on: cores, CPU, load, versions of every part."""
    client: redis.Redis = redis.Redis.from_url(redis_url)
    engine = create_engine(postgres)
    try:
        redis_server = str(client.info("server").get("redis_version", "?"))
        with engine.connect() as conn:
            postgresql = str(conn.execute(text("SHOW server_version")).scalar_one()).split()[0]
    finally:
        client.close()
        engine.dispose()
    models = [platform.processor() or "?"]
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            models += [line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line]
    return {
        "cores": os.cpu_count() or 0,
        "cpu": models[-1],
        "load_average_1_5_15": [round(value, 2) for value in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{name: version(name) for name in ("celery", "kombu", "sqlalchemy", "psycopg")},
        "redis_py": version("redis"),
        "redis_server": redis_server,
        "postgresql": postgresql,
        "sqlite": sqlite3.sqlite_version,
    }


def describe_machine(info: dict[str, Any]) -> str:
    """One line for the report: cores, load and versions."""
    load = ", ".join(f"{value:.2f}" for value in info["load_average_1_5_15"])
    return (
        f"{info['cores']} cores ({info['cpu']}), load {load}; Python {info['python']}, "
        f"Celery {info['celery']} (kombu {info['kombu']}, redis-py {info['redis_py']}), "
        f"Redis {info['redis_server']}, PostgreSQL {info['postgresql']} "
        f"(psycopg {info['psycopg']}), SQLite {info['sqlite']}"
    )
