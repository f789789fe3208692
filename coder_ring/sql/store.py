"""The SQLAlchemy store: PostgreSQL in production, SQLite embedded.

See :mod:`coder_ring.store` for the atomicity every method gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    create_engine,
    event,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from coder_ring.alphabet import encode_base, uniquizer
from coder_ring.config import RingConfig
from coder_ring.errors import (
    ConfigError,
    Fenced,
    RingMismatch,
    RingNotReady,
    SchemaMissing,
    StoreUnavailable,
    Superseded,
)
from coder_ring.profanity import kept_values
from coder_ring.shuffle import RandBelow, apply_steps, plan_draw
from coder_ring.sql.dialects import DialectOps, PostgresOps, SqliteOps
from coder_ring.sql.migrations.heads import schema_at_head
from coder_ring.sql.schema import rings_table
from coder_ring.store import Drawn, ProgressCallback, RingRecord

#: Key of the PostgreSQL advisory lock that serializes concurrent migrations.
MIGRATION_LOCK_KEY = 0x636F_6465_7272  # "coderr"
_MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_RECORD_COLUMNS = (
    rings_table.c.id,
    rings_table.c.name,
    rings_table.c.base_length,
    rings_table.c.profanity_filter,
    rings_table.c.total_codes,
    rings_table.c.boundary,
    rings_table.c.cycle,
    rings_table.c.extra,
    rings_table.c.epoch,
    rings_table.c.version,
    rings_table.c.filled,
)


def make_engine(database_url: str) -> Engine:
    """A SQLAlchemy engine for ``database_url`` (PostgreSQL via psycopg 3, or SQLite)."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ConfigError(
            f"invalid database URL {database_url!r}: expected e.g. "
            "postgresql://user@host:5432/db or sqlite:///path/to/file.db"
        ) from None
    backend = url.get_backend_name()
    if backend in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise ConfigError(
            f"unsupported database URL {url.render_as_string(hide_password=True)!r}: "
            "use postgresql://... or sqlite:///..."
        )
    try:
        if backend == "sqlite":
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
            return engine
        engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
        event.listen(engine, "connect", _postgres_on_connect)
        return engine
    except (ArgumentError, NoSuchModuleError) as error:
        raise ConfigError(f"invalid database URL {database_url!r}: {error}") from None


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # We issue BEGIN ourselves (below), so the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _postgres_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # A holder frozen inside a draw (SIGSTOP, GC pause) must not keep the ring's row
    # locked for ever: the server aborts its transaction and the next holder claims.
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET idle_in_transaction_session_timeout = '5s'")
    dbapi_connection.commit()


def _sqlite_on_begin(conn: Connection) -> None:
    # An immediate transaction takes the write lock up front: two drawers never read
    # the same state, and no transaction has to be retried after a lock upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class SqlStore:
    """Rings in a SQL database. Thread-safe; one instance per process is enough."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url)
        self.dialect = self.engine.dialect.name
        self._ops: DialectOps = PostgresOps() if self.dialect == "postgresql" else SqliteOps()
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except DBAPIError as error:
            raise _translate(error, self.engine) from error
        except SQLAlchemyError as error:
            raise StoreUnavailable(f"database error: {error}") from error

    def migrate(self) -> None:
        if schema_at_head(self.engine):  # nothing to do: alembic is not even imported
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS_DIR))
        with self._transaction() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def register(self, ring: RingConfig) -> RingRecord:
        with self._transaction() as conn:
            conn.execute(
                self._insert(rings_table)
                .values(
                    name=ring.name,
                    base_length=ring.base_length,
                    profanity_filter=ring.profanity_filter,
                )
                .on_conflict_do_nothing(index_elements=["name"])
            )
            _, record = self._lock(conn, ring.name)
            return record

    def fill(self, ring: RingConfig, progress: ProgressCallback | None = None) -> int:
        self.register(ring)
        with self._transaction() as conn:
            ring_id, record = self._lock(conn, ring.name)
            if record.filled:
                _check_matches(record, ring)
                return 0
            # Unfilled: nothing was ever issued, so the config's shape can be taken as is.
            return self._fill_locked(conn, ring_id, record, ring, progress)

    def rebuild(self, ring: RingConfig, progress: ProgressCallback | None = None) -> int:
        self.register(ring)
        with self._transaction() as conn:
            ring_id, record = self._lock(conn, ring.name)
            return self._fill_locked(conn, ring_id, record, ring, progress)

    def _fill_locked(
        self,
        conn: Connection,
        ring_id: int,
        record: RingRecord,
        ring: RingConfig,
        progress: ProgressCallback | None,
    ) -> int:
        self._ops.clear_codes(conn, ring_id)
        values = kept_values(ring.base_length, ring.profanity_filter)
        self._ops.insert_codes(conn, ring_id, values, progress)
        conn.execute(
            update(rings_table)
            .where(rings_table.c.id == ring_id)
            .values(
                base_length=ring.base_length,
                profanity_filter=ring.profanity_filter,
                total_codes=len(values),
                boundary=len(values),
                cycle=0,
                extra="",
                filled=True,
                # Whoever held the ring before must not write into the new table.
                epoch=record.epoch + 1,
                version=record.version + 1,
                updated_at=_now(),
            )
        )
        return len(values)

    def draw(
        self,
        ring: RingConfig,
        count: int,
        randbelow: RandBelow,
        *,
        extra: str = "",
        bump: bool = False,
        epoch: int | None = None,
        within_cycle: bool = False,
        expect_version: int | None = None,
    ) -> Drawn:
        with self._transaction() as conn:
            ring_id, record = self._lock_ready(conn, ring, epoch)
            if expect_version is not None and record.version != expect_version:
                raise Superseded(
                    f"ring {ring.name!r} is at version {record.version}, not {expect_version}"
                )
            plan = plan_draw(
                record.cycle_state(),
                count,
                randbelow,
                extra=extra,
                bump=bump,
                within_cycle=within_cycle,
            )
            table = self._ops.read_positions(conn, ring_id, sorted(plan.positions()))
            before = dict(table)
            issued = apply_steps(plan.steps, table)
            changed = {pos: value for pos, value in table.items() if before[pos] != value}
            self._ops.write_positions(conn, ring_id, changed)
            state = plan.state
            after = RingRecord(
                **{
                    **record.__dict__,
                    "boundary": state.boundary,
                    "cycle": state.cycle,
                    "extra": state.extra,
                    "version": record.version + 1,
                }
            )
            self._write_state(conn, ring_id, after)
        prefixes: dict[int, str] = {}
        codes = []
        for value, cycle in issued:
            prefix = prefixes.get(cycle)
            if prefix is None:
                prefix = prefixes[cycle] = state.extra + uniquizer(cycle)
            codes.append(prefix + encode_base(value, record.base_length))
        return Drawn(codes, after)

    def claim(self, ring: RingConfig) -> RingRecord:
        self.register(ring)
        with self._transaction() as conn:
            ring_id, record = self._lock(conn, ring.name)
            if record.filled:
                _check_matches(record, ring)
            after = RingRecord(
                **{**record.__dict__, "epoch": record.epoch + 1, "version": record.version + 1}
            )
            self._write_state(conn, ring_id, after)
            return after

    def give_back(self, name: str, count: int, *, epoch: int, version: int) -> bool:
        if count <= 0:
            return False
        columns = rings_table.c
        with self._transaction() as conn:
            result = conn.execute(
                update(rings_table)
                .where(
                    columns.name == name,
                    columns.epoch == epoch,
                    columns.version == version,
                    columns.boundary + count <= columns.total_codes,
                )
                .values(
                    boundary=columns.boundary + count,
                    version=columns.version + 1,
                    updated_at=_now(),
                )
            )
            return result.rowcount == 1

    def reset(self, ring: RingConfig, *, epoch: int | None = None) -> RingRecord:
        with self._transaction() as conn:
            ring_id, record = self._lock_ready(conn, ring, epoch)
            after = RingRecord(
                **{
                    **record.__dict__,
                    "boundary": record.total_codes,
                    "cycle": 0,
                    "extra": "",
                    # A reset from outside fences the holder: its pool predates the reset.
                    "epoch": record.epoch + (1 if epoch is None else 0),
                    "version": record.version + 1,
                }
            )
            self._write_state(conn, ring_id, after)
            return after

    def record(self, name: str) -> RingRecord | None:
        with self._transaction() as conn:
            row = conn.execute(
                select(*_RECORD_COLUMNS).where(rings_table.c.name == name)
            ).one_or_none()
        return None if row is None else _record(row)

    def dispose(self) -> None:
        self.engine.dispose()

    def _lock(self, conn: Connection, name: str) -> tuple[int, RingRecord]:
        # FOR UPDATE on PostgreSQL; on SQLite the immediate transaction already locks.
        row = conn.execute(
            select(*_RECORD_COLUMNS).where(rings_table.c.name == name).with_for_update()
        ).one_or_none()
        if row is None:
            raise RingNotReady(
                f"ring {name!r} is not populated yet; run: coder-ring populate {name}"
            )
        return row.id, _record(row)

    def _lock_ready(
        self, conn: Connection, ring: RingConfig, epoch: int | None
    ) -> tuple[int, RingRecord]:
        ring_id, record = self._lock(conn, ring.name)
        if not record.filled:
            raise RingNotReady(
                f"ring {ring.name!r} is not populated yet (or its fill was interrupted); "
                f"run: coder-ring populate {ring.name}"
            )
        _check_matches(record, ring)
        if epoch is not None and epoch != record.epoch:
            raise Fenced(
                f"ring {ring.name!r}: epoch {epoch} is stale (the ring is at epoch "
                f"{record.epoch}); another holder claimed it"
            )
        return ring_id, record

    def _write_state(self, conn: Connection, ring_id: int, record: RingRecord) -> None:
        conn.execute(
            update(rings_table)
            .where(rings_table.c.id == ring_id)
            .values(
                boundary=record.boundary,
                cycle=record.cycle,
                extra=record.extra,
                epoch=record.epoch,
                version=record.version,
                updated_at=_now(),
            )
        )


def _now() -> Any:
    from sqlalchemy import func

    return func.now()


def _record(row: Row[Any]) -> RingRecord:
    return RingRecord(
        name=row.name,
        base_length=row.base_length,
        profanity_filter=bool(row.profanity_filter),
        total_codes=row.total_codes,
        boundary=row.boundary,
        cycle=row.cycle,
        extra=row.extra,
        epoch=row.epoch,
        version=row.version,
        filled=bool(row.filled),
    )


def _check_matches(record: RingRecord, ring: RingConfig) -> None:
    if (record.base_length, record.profanity_filter) != (ring.base_length, ring.profanity_filter):
        raise RingMismatch(
            f"ring {ring.name!r} is stored with base_length={record.base_length}, "
            f"profanity_filter={str(record.profanity_filter).lower()} but the rings file says "
            f"base_length={ring.base_length}, "
            f"profanity_filter={str(ring.profanity_filter).lower()}; restore the rings file, "
            f"or restart the ring with the new shape (it may repeat codes): "
            f"coder-ring rebuild {ring.name}"
        )


def _translate(error: DBAPIError, engine: Engine) -> Exception:
    message = str(error.orig)
    if "no such table" in message or "UndefinedTable" in type(error.orig).__name__:
        return SchemaMissing("the database has no coder_ring tables; run: coder-ring migrate")
    where = engine.url.render_as_string(hide_password=True)
    first_line = message.strip().splitlines()[0] if message.strip() else type(error.orig).__name__
    return StoreUnavailable(f"database {where} failed: {first_line}")
