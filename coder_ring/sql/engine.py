"""The engine of the SQL store: a database URL checked and parsed, and the settings each
new connection gets, whatever the server, database or role say.

What the store's guarantee needs of a session is pinned here: on PostgreSQL, READ
COMMITTED and a ``synchronous_commit`` of at least ``on``; on SQLite, WAL with
``synchronous=FULL``. Either way, a draw that committed survives a crash.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError

from coder_ring.errors import ConfigError
from coder_ring.urls import redact_url

_URL_EXAMPLES = "e.g. postgresql://user@host:5432/db or sqlite:///path/to/file.db"


def parse_database_url(database_url: str) -> URL:
    """``database_url`` parsed, with PostgreSQL on psycopg 3; :class:`ConfigError` (the
    password masked) for anything else than a well-formed PostgreSQL or SQLite URL."""
    try:
        url = make_url(database_url)
        url.port  # noqa: B018 - a bad port (":5x32") only fails when read
    except ArgumentError:
        raise ConfigError(
            f"invalid database URL {redact_url(database_url)!r}: expected {_URL_EXAMPLES}"
        ) from None
    except ValueError:  # the only ValueError of make_url: int(port)
        raise ConfigError(
            f"invalid database URL {redact_url(database_url)!r}: its port is not a number; "
            f"expected {_URL_EXAMPLES}"
        ) from None
    backend = url.get_backend_name()
    if backend in {"postgresql", "postgres"}:
        return url.set(drivername="postgresql+psycopg")
    if backend != "sqlite":
        raise ConfigError(
            f"unsupported database URL {redact_url(database_url)!r}: use postgresql://... "
            "or sqlite:///..."
        )
    return url


#: libpq settings of every PostgreSQL connection, so no call waits for ever on a dead link:
#: a connect gives up after 5 s; data the server does not acknowledge within 5 s
#: (``tcp_user_timeout``, ms), or keepalive probes unanswered while a reply is awaited,
#: end the connection (a ping of a pooled connection, a draw, a give-back). A slow but
#: live server is not cut short: it acknowledges what it is sent.
LINK_ARGS: dict[str, Any] = {
    "connect_timeout": 5,
    "tcp_user_timeout": 5000,
    "keepalives": 1,
    "keepalives_idle": 2,
    "keepalives_interval": 1,
    "keepalives_count": 3,
}


def make_engine(database_url: str) -> Engine:
    """A SQLAlchemy engine for ``database_url`` (connects to nothing yet)."""
    url = parse_database_url(database_url)
    try:
        if url.get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
            return engine
        # READ COMMITTED whatever the server's default: the ring lock (SELECT ... FOR
        # UPDATE) waits for a concurrent draw and then reads the row it committed; under
        # REPEATABLE READ or SERIALIZABLE that wait ends in a serialization failure
        # instead (StoreUnavailable for every contended draw). psycopg names the level
        # in each BEGIN: no extra round trip.
        engine = create_engine(url, isolation_level="READ COMMITTED", connect_args=LINK_ARGS)
        event.listen(engine, "connect", _postgres_on_connect)
        event.listen(engine, "checkout", _ping_if_idle)
        event.listen(engine, "checkin", _mark_checkin)
        return engine
    except (ArgumentError, NoSuchModuleError) as error:
        raise ConfigError(
            f"invalid database URL {redact_url(database_url)!r}: {type(error).__name__}"
        ) from None


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # We issue BEGIN ourselves (below), so the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: ``synchronous_commit`` levels under which a commit can return before its WAL is on
#: the primary's disk (``off``: lost in a crash) or, with synchronous standbys, before a
#: standby has it (``local``, ``remote_write``: lost in a failover). A code is handed out
#: once its draw committed, so a lost commit hands it out again: the session is raised to
#: ``on``. ``on`` and ``remote_apply`` are kept as the server says.
WEAK_SYNCHRONOUS_COMMIT = ("off", "local", "remote_write")

# One statement, once per new connection (a pooled connection keeps its settings): a
# holder frozen inside a draw (SIGSTOP, GC pause) must not keep the ring's row locked for
# ever, so the server aborts its transaction after 5 s and the next holder claims; and
# synchronous_commit is raised as above, whatever the server, database or role says.
_SESSION_PINS = (
    "SELECT set_config('idle_in_transaction_session_timeout', '5s', false), "
    "CASE WHEN current_setting('synchronous_commit') = ANY(%s) "
    "THEN set_config('synchronous_commit', 'on', false) END"
)


def _postgres_on_connect(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute(_SESSION_PINS, (list(WEAK_SYNCHRONOUS_COMMIT),))
    dbapi_connection.commit()


#: A pooled connection idle longer than this is pinged before use (a server restart
#: closed it); a busy one is not, so the hot path pays no extra round trip.
IDLE_PING_SECONDS = 2.0


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    if time.monotonic() - record.info.get("checked_in", 0.0) < IDLE_PING_SECONDS:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        dbapi_connection.rollback()
    except Exception as error:
        # The pool discards it and checks out (or opens) another.
        raise DisconnectionError(str(error)) from error


def _mark_checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _sqlite_on_begin(conn: Connection) -> None:
    # An immediate transaction takes the write lock up front: two drawers never read
    # the same state, and no transaction has to be retried after a lock upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
