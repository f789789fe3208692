"""The SQLAlchemy store: PostgreSQL in production, SQLite embedded.

See :mod:`coder_ring.store` for the atomicity every transaction gives.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from coder_ring.errors import SchemaMissing, StoreUnavailable
from coder_ring.sql.dialects import DialectOps, PostgresOps, SqliteOps
from coder_ring.sql.engine import make_engine
from coder_ring.sql.migrations.heads import schema_at_head
from coder_ring.sql.schema import extras_table, positions_table, rings_table
from coder_ring.store import ExtraRecord, PositionChanges, RingRecord
from coder_ring.urls import redact_url

#: Key of the PostgreSQL advisory lock that serializes concurrent migrations.
MIGRATION_LOCK_KEY = 0x636F_6465_7272  # "coderr"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_RING = rings_table.c
_EXTRA = extras_table.c


class SqlStore:
    """Rings in a SQL database. Thread-safe; one instance per process is enough."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url)
        self.dialect: str = self.engine.dialect.name
        self._ops: DialectOps = PostgresOps() if self.dialect == "postgresql" else SqliteOps()
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert

    @property
    def where(self) -> str:
        """The database URL, password masked (for messages)."""
        return redact_url(self.engine.url.render_as_string(hide_password=False))

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection in a transaction; database errors become :class:`SchemaMissing`
        or :class:`StoreUnavailable` with a one-line message."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except DBAPIError as error:
            raise _translate(error, self.where) from error
        except SQLAlchemyError as error:
            raise StoreUnavailable(
                f"database {self.where} failed: {type(error).__name__}"
            ) from error

    def migrate(self) -> None:
        if schema_at_head(self.engine):  # nothing to do: alembic is not even imported
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.transaction() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @contextmanager
    def locked(
        self, name: str, create: RingRecord | None = None, extra: str | None = None
    ) -> Iterator[_LockedSqlRing | None]:
        with self.transaction() as conn:
            row = self._lock(conn, name, extra)
            if row is None and create is not None:
                conn.execute(
                    self._insert(rings_table)
                    .values(
                        name=create.name,
                        base_length=create.base_length,
                        profanity_filter=create.profanity_filter,
                        total_codes=create.total_codes,
                    )
                    .on_conflict_do_nothing(index_elements=["name"])
                )
                row = self._lock(conn, name, extra)
            if row is None:
                yield None
                return
            locked = _LockedSqlRing(conn, self._ops, row, extra)
            yield locked
            locked.flush()

    def _lock(self, conn: Connection, name: str, extra: str | None) -> Any:
        # The extra most operations need comes along with the ring's locked row.
        return self._ops.lock(conn, name, "" if extra is None else extra)

    def ping(self) -> None:
        with self.transaction() as conn:
            conn.execute(select(_RING.id).limit(1)).all()

    def ring_record(self, name: str) -> RingRecord | None:
        with self.transaction() as conn:
            row = conn.execute(select(rings_table).where(_RING.name == name)).one_or_none()
        return None if row is None else _ring_record(row)

    def ring_records(self, names: Sequence[str]) -> dict[str, RingRecord]:
        if not names:
            return {}
        with self.transaction() as conn:
            rows = conn.execute(select(rings_table).where(_RING.name.in_(list(names)))).all()
        return {row.name: _ring_record(row) for row in rows}

    def extra_records(self, name: str) -> list[ExtraRecord]:
        with self.transaction() as conn:
            rows = conn.execute(
                select(extras_table)
                .join(rings_table, _EXTRA.ring_id == _RING.id)
                .where(_RING.name == name)
                .order_by(_EXTRA.id)
            ).all()
        return [_extra_record(row) for row in rows]

    def stored_positions(self, name: str) -> int:
        with self.transaction() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(positions_table)
                .join(extras_table, positions_table.c.extra_id == _EXTRA.id)
                .join(rings_table, _EXTRA.ring_id == _RING.id)
                .where(_RING.name == name)
            ).scalar_one()
        return int(count)

    def dispose(self) -> None:
        self.engine.dispose()


class _LockedSqlRing:
    """A ring locked inside a SQL transaction. Writes are buffered and sent together
    by :meth:`flush` (one statement on PostgreSQL)."""

    def __init__(self, conn: Connection, ops: DialectOps, row: Any, extra: str | None) -> None:
        self._conn = conn
        self._ops = ops
        self._ring_id: int = row.id
        self.record = _ring_record(row)
        # extra -> (row id, state), or None when the ring never used it.
        self._extras: dict[str, tuple[int, ExtraRecord] | None] = {}
        if extra is not None:
            self._extras[extra] = (
                None
                if row.extra_id is None
                else (
                    row.extra_id,
                    ExtraRecord(
                        extra,
                        row.boundary,
                        row.cycle,
                        row.extra_version,
                        row.issued,
                        row.returnable_top,
                    ),
                )
            )
        self._pending_extras: dict[str, tuple[ExtraRecord, PositionChanges]] = {}
        self._pending_ring: RingRecord | None = None
        # extra -> positions known to be stored (read in this transaction): a write
        # updates those and inserts the others, cheaper than an upsert of each.
        self._stored: dict[str, set[int]] = {}

    def _load(self, extra: str) -> tuple[int, ExtraRecord] | None:
        if extra not in self._extras:
            row = self._conn.execute(
                select(extras_table).where(_EXTRA.ring_id == self._ring_id, _EXTRA.extra == extra)
            ).one_or_none()
            self._extras[extra] = None if row is None else (row.id, _extra_record(row))
        return self._extras[extra]

    def extra(self, extra: str) -> ExtraRecord | None:
        loaded = self._load(extra)
        return None if loaded is None else loaded[1]

    def related_extras(self, extra: str, prefixes: Sequence[str]) -> list[str]:
        size = len(extra)
        extends = (func.length(_EXTRA.extra) > size) & (func.substr(_EXTRA.extra, 1, size) == extra)
        condition = or_(_EXTRA.extra.in_(list(prefixes)), extends) if prefixes else extends
        rows = self._conn.execute(
            select(_EXTRA.extra).where(_EXTRA.ring_id == self._ring_id, condition)
        )
        return list(rows.scalars())

    def extras(self) -> list[ExtraRecord]:
        rows = self._conn.execute(select(extras_table).where(_EXTRA.ring_id == self._ring_id))
        return [_extra_record(row) for row in rows]

    def read_positions(self, extra: str, positions: set[int]) -> dict[int, int]:
        loaded = self._load(extra)
        if loaded is None or not positions:
            return {}
        found = self._ops.read_positions(self._conn, loaded[0], sorted(positions))
        self._stored.setdefault(extra, set()).update(found)
        return found

    def write_extra(self, state: ExtraRecord, changes: PositionChanges) -> None:
        self._pending_extras[state.extra] = (state, changes)

    def write_ring(self, record: RingRecord) -> None:
        self._pending_ring = record

    def drop_extras(self) -> None:
        extra_ids = select(_EXTRA.id).where(_EXTRA.ring_id == self._ring_id).scalar_subquery()
        self._conn.execute(delete(positions_table).where(positions_table.c.extra_id.in_(extra_ids)))
        self._conn.execute(delete(extras_table).where(_EXTRA.ring_id == self._ring_id))
        self._extras = {}

    def flush(self) -> None:
        """Send the buffered writes (called once, just before the commit)."""
        writes: list[tuple[int, ExtraRecord, PositionChanges]] = []
        for state, changes in self._pending_extras.values():
            loaded = self._load(state.extra)
            if loaded is None:
                extra_id = self._conn.execute(
                    insert(extras_table)
                    .values(ring_id=self._ring_id, extra=state.extra, boundary=state.boundary)
                    .returning(_EXTRA.id)
                ).scalar_one()
            else:
                extra_id = loaded[0]
            writes.append((extra_id, state, changes))
        if not writes and self._pending_ring is None:
            return
        ring = self._pending_ring or self.record
        if not writes:
            self._ops.write(self._conn, self._ring_id, ring, None, frozenset())
        for extra_id, state, changes in writes:
            stored = frozenset() if changes.wipe else frozenset(self._stored.get(state.extra, ()))
            self._ops.write(self._conn, self._ring_id, ring, (extra_id, state, changes), stored)


def _ring_record(row: Row[Any]) -> RingRecord:
    return RingRecord(
        name=row.name,
        base_length=row.base_length,
        profanity_filter=bool(row.profanity_filter),
        total_codes=row.total_codes,
        epoch=row.epoch,
        version=row.version,
    )


def _extra_record(row: Row[Any]) -> ExtraRecord:
    return ExtraRecord(
        extra=row.extra,
        boundary=row.boundary,
        cycle=row.cycle,
        version=row.version,
        issued=row.issued,
        returnable_top=row.returnable_top,
    )


def _translate(error: DBAPIError, where: str) -> Exception:
    message = str(error.orig)
    if "no such table" in message or "UndefinedTable" in type(error.orig).__name__:
        return SchemaMissing(
            f"the database {where} has no coder_ring tables (or an old schema); "
            "run: coder-ring migrate"
        )
    first_line = message.strip().splitlines()[0] if message.strip() else type(error.orig).__name__
    return StoreUnavailable(f"database {where} failed: {redact_url(first_line)}")
