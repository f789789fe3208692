"""The statements that differ between PostgreSQL and SQLite: reading and writing the
stored positions of one (ring, extra), and the write of a whole draw.

Each runs inside the caller's transaction on the caller's connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, text

from coder_ring.store import ExtraRecord, PositionChanges, RingRecord, iter_chunks

#: SQLite's default limit on bound parameters is 32,766; stay well under it.
SQLITE_MAX_PARAMS = 30_000


#: The ring's row and one extra's, in the order both dialects' lock queries return them.
_LOCK_COLUMNS = (
    "r.id, r.name, r.base_length, r.profanity_filter, r.total_codes, r.epoch, r.version, "
    "e.id AS extra_id, e.boundary, e.cycle, e.version AS extra_version, e.issued, "
    "e.returnable_top"
)
_EXTRA_ROW = (
    "SELECT id AS extra_id, boundary, cycle, version AS extra_version, issued, returnable_top "
    "FROM coder_ring_extras WHERE ring_id = %(ring_id)s AND extra = %(extra)s"
)


_EXTRA_COLUMNS = ("extra_id", "boundary", "cycle", "extra_version", "issued", "returnable_top")


class DialectOps(Protocol):
    """Keyed reads and writes of stored positions, and the ring's state. The hot
    statements go to the driver as they are (no SQL compilation per call)."""

    def lock(self, conn: Connection, name: str, extra: str) -> Any:
        """Lock ring ``name``'s row for the transaction; a row (attribute access) with
        ``extra``'s state (None columns when the ring never used it), or None when there
        is no ring."""

    def read_positions(
        self, conn: Connection, extra_id: int, positions: Sequence[int]
    ) -> dict[int, int]:
        """position -> value for those of ``positions`` that are stored."""

    def write(
        self,
        conn: Connection,
        ring_id: int,
        ring: RingRecord,
        extra: tuple[int, ExtraRecord, PositionChanges] | None,
        stored: frozenset[int],
    ) -> None:
        """Store the ring's row and, when given, one extra's state and position changes
        (the extra's row exists already; ``stored``: positions known to have a row)."""


def _rows_of(positions: str) -> str:
    """SQL: the row ids (ctid) of the stored positions of the array parameter
    ``positions``, each found by one primary-key lookup (see PostgresOps)."""
    return (
        "ARRAY(SELECT (SELECT q.ctid FROM coder_ring_cycle_positions AS q"
        " WHERE q.extra_id = :extra_id AND q.position = d.position)"
        f" FROM unnest(CAST(:{positions} AS bigint[])) AS d(position))"
    )


class PostgresOps:
    """PostgreSQL: the lock and the extra in one statement, array parameters joined with
    ``unnest``, and a whole draw written by one statement (data-modifying CTEs)."""

    # `seen_version` is the ring's version in the statement's snapshot; `r.version` is the
    # locked row's, re-read once the lock is granted. They differ only when the statement
    # had to wait for a writer that committed: then the joined extra is the version from
    # before that commit (a stale boundary would issue codes twice) and is read again.
    _lock = (
        f"SELECT {_LOCK_COLUMNS}, "
        "(SELECT s.version FROM coder_ring_rings AS s WHERE s.id = r.id) AS seen_version "
        "FROM coder_ring_rings AS r LEFT JOIN coder_ring_extras AS e "
        "ON e.ring_id = r.id AND e.extra = %(extra)s "
        "WHERE r.name = %(name)s FOR UPDATE OF r"
    )

    def lock(self, conn: Connection, name: str, extra: str) -> Any:
        row = conn.exec_driver_sql(self._lock, {"name": name, "extra": extra}).one_or_none()
        if row is None or row.seen_version == row.version:
            return row
        fresh = conn.exec_driver_sql(_EXTRA_ROW, {"ring_id": row.id, "extra": extra})
        state = fresh.one_or_none()
        values = dict(row._mapping)
        values.update(dict(state._mapping) if state is not None else dict.fromkeys(_EXTRA_COLUMNS))
        return _as_row(values)

    # Every statement finds its positions one primary-key lookup each (a scalar subquery
    # on the whole key), whatever the planner believes of the table: its statistics are
    # those of a table that was empty when the cycle began, and a join or a filter
    # planned from them read every stored row of the extra (draws slowed down as a cycle
    # filled: 46k codes/s fell to 20k within 40k codes).
    _read = text(
        "SELECT d.position, (SELECT p.value FROM coder_ring_cycle_positions AS p"
        " WHERE p.extra_id = :extra_id AND p.position = d.position) AS value "
        "FROM unnest(CAST(:positions AS bigint[])) AS d(position)"
    )
    _wipe = text("DELETE FROM coder_ring_cycle_positions WHERE extra_id = :extra_id")
    _ring = (
        "UPDATE coder_ring_rings SET base_length = :base_length, "
        "profanity_filter = :profanity_filter, total_codes = :total_codes, epoch = :epoch, "
        "version = :version, updated_at = now() WHERE id = :ring_id"
    )
    _draw = text(
        "WITH del AS ("
        " DELETE FROM coder_ring_cycle_positions"
        " WHERE ctid = ANY(" + _rows_of("deletes") + ")"
        "), ups AS ("
        " INSERT INTO coder_ring_cycle_positions (extra_id, position, value)"
        " SELECT :extra_id, u.position, u.value"
        " FROM unnest(CAST(:up_positions AS bigint[]), CAST(:up_values AS bigint[]))"
        " AS u(position, value)"
        "), upd AS ("
        " UPDATE coder_ring_cycle_positions AS p SET value = u.value"
        " FROM unnest(CAST(:set_positions AS bigint[]), CAST(:set_values AS bigint[]))"
        " AS u(position, value)"
        " WHERE p.ctid = ANY(" + _rows_of("set_positions") + ")"
        " AND p.extra_id = :extra_id AND p.position = u.position"
        "), ext AS ("
        " UPDATE coder_ring_extras SET boundary = :boundary, cycle = :cycle,"
        " version = :extra_version, issued = :issued, returnable_top = :returnable_top,"
        " updated_at = now()"
        " WHERE id = :extra_id"
        ") " + _ring
    )

    def read_positions(
        self, conn: Connection, extra_id: int, positions: Sequence[int]
    ) -> dict[int, int]:
        rows = conn.execute(self._read, {"extra_id": extra_id, "positions": _array(positions)})
        return {position: value for position, value in rows.tuples() if value is not None}

    def write(
        self,
        conn: Connection,
        ring_id: int,
        ring: RingRecord,
        extra: tuple[int, ExtraRecord, PositionChanges] | None,
        stored: frozenset[int],
    ) -> None:
        params = _ring_params(ring_id, ring)
        if extra is None:
            conn.execute(text(self._ring), params)
            return
        extra_id, state, changes = extra
        if changes.wipe:
            # Not in the CTE: its parts see one snapshot, so a row deleted there could
            # not be inserted again by the same statement.
            conn.execute(self._wipe, {"extra_id": extra_id})
        inserts, updates = _split(changes.upserts, stored)
        conn.execute(
            self._draw,
            {
                **params,
                **_extra_params(extra_id, state),
                "deletes": _array(changes.deletes),
                "up_positions": _array(inserts),
                "up_values": _array(inserts.values()),
                "set_positions": _array(updates),
                "set_values": _array(updates.values()),
            },
        )


class SqliteOps:
    """SQLite: IN lists under the parameter limit, and executemany (in-process calls)."""

    _read = text(
        "SELECT position, value FROM coder_ring_cycle_positions "
        "WHERE extra_id = :extra_id AND position IN :positions"
    ).bindparams(bindparam("positions", expanding=True))
    _wipe = "DELETE FROM coder_ring_cycle_positions WHERE extra_id = ?"
    _delete = "DELETE FROM coder_ring_cycle_positions WHERE extra_id = ? AND position = ?"
    _insert = "INSERT INTO coder_ring_cycle_positions (extra_id, position, value) VALUES (?, ?, ?)"
    _update = "UPDATE coder_ring_cycle_positions SET value = ? WHERE extra_id = ? AND position = ?"
    # The immediate transaction already holds the write lock.
    _lock = (
        f"SELECT {_LOCK_COLUMNS} FROM coder_ring_rings AS r LEFT JOIN coder_ring_extras AS e "
        "ON e.ring_id = r.id AND e.extra = ? WHERE r.name = ?"
    )

    def lock(self, conn: Connection, name: str, extra: str) -> Any:
        return conn.exec_driver_sql(self._lock, (extra, name)).one_or_none()

    _extra = text(
        "UPDATE coder_ring_extras SET boundary = :boundary, cycle = :cycle, "
        "version = :extra_version, issued = :issued, returnable_top = :returnable_top, "
        "updated_at = CURRENT_TIMESTAMP "
        "WHERE id = :extra_id"
    )
    _ring = text(
        "UPDATE coder_ring_rings SET base_length = :base_length, "
        "profanity_filter = :profanity_filter, total_codes = :total_codes, epoch = :epoch, "
        "version = :version, updated_at = CURRENT_TIMESTAMP WHERE id = :ring_id"
    )

    def read_positions(
        self, conn: Connection, extra_id: int, positions: Sequence[int]
    ) -> dict[int, int]:
        table: dict[int, int] = {}
        for chunk in iter_chunks(list(positions), SQLITE_MAX_PARAMS):
            rows = conn.execute(self._read, {"extra_id": extra_id, "positions": list(chunk)})
            table.update(rows.tuples().all())
        return table

    def write(
        self,
        conn: Connection,
        ring_id: int,
        ring: RingRecord,
        extra: tuple[int, ExtraRecord, PositionChanges] | None,
        stored: frozenset[int],
    ) -> None:
        if extra is not None:
            extra_id, state, changes = extra
            if changes.wipe:
                conn.exec_driver_sql(self._wipe, (extra_id,))
            if changes.deletes:
                conn.exec_driver_sql(
                    self._delete, [(extra_id, position) for position in changes.deletes]
                )
            inserts, updates = _split(changes.upserts, stored)
            if inserts:
                conn.exec_driver_sql(self._insert, _rows(extra_id, inserts))
            if updates:
                conn.exec_driver_sql(
                    self._update, [(value, extra_id, pos) for pos, value in updates.items()]
                )
            conn.execute(self._extra, _extra_params(extra_id, state))
        conn.execute(self._ring, _ring_params(ring_id, ring))


def _array(numbers: Iterable[int]) -> str:
    """A PostgreSQL array literal of ``numbers``, cast to ``bigint[]`` by the statement:
    one text parameter is much cheaper for the driver than a list it dumps item by item
    (half the client's time in a draw of 1,000 codes)."""
    return "{" + ",".join(map(str, numbers)) + "}"


def _split(
    upserts: Mapping[int, int], stored: frozenset[int]
) -> tuple[dict[int, int], dict[int, int]]:
    """``upserts`` as (rows to insert, rows to update): those at ``stored`` positions exist."""
    inserts: dict[int, int] = {}
    updates: dict[int, int] = {}
    for position, value in upserts.items():
        (updates if position in stored else inserts)[position] = value
    return inserts, updates


def _as_row(values: dict[str, Any]) -> Any:
    """A row-like object (attribute access) from ``values``."""
    return SimpleNamespace(**values)


def _rows(extra_id: int, upserts: Mapping[int, int]) -> list[tuple[int, int, int]]:
    return [(extra_id, position, value) for position, value in upserts.items()]


def _ring_params(ring_id: int, ring: RingRecord) -> dict[str, object]:
    return {
        "ring_id": ring_id,
        "base_length": ring.base_length,
        "profanity_filter": ring.profanity_filter,
        "total_codes": ring.total_codes,
        "epoch": ring.epoch,
        "version": ring.version,
    }


def _extra_params(extra_id: int, state: ExtraRecord) -> dict[str, object]:
    return {
        "extra_id": extra_id,
        "boundary": state.boundary,
        "cycle": state.cycle,
        "extra_version": state.version,
        "issued": state.issued,
        "returnable_top": state.returnable_top,
    }
