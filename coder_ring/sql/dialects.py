"""The statements that differ between PostgreSQL and SQLite: reading and writing the
stored positions of one (ring, extra), and the write of a whole draw.

Each runs inside the caller's transaction on the caller's connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy import Connection, bindparam, text

from coder_ring.store import ExtraRecord, PositionChanges, RingRecord, iter_chunks

#: SQLite's default limit on bound parameters is 32,766; stay well under it.
SQLITE_MAX_PARAMS = 30_000


class DialectOps(Protocol):
    """Keyed reads and writes of stored positions, and the ring's state."""

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
    ) -> None:
        """Store the ring's row and, when given, one extra's state and position changes
        (the extra's row exists already)."""


class PostgresOps:
    """PostgreSQL: array parameters joined with ``unnest``, and a whole draw written by
    one statement (data-modifying CTEs), so a draw costs three round trips."""

    # A join on unnest() walks the primary key once per position; `= ANY(array)` can make
    # the planner scan.
    _read = text(
        "SELECT d.position, p.value "
        "FROM unnest(CAST(:positions AS bigint[])) AS d(position) "
        "JOIN coder_ring_positions AS p ON p.extra_id = :extra_id AND p.position = d.position"
    )
    _wipe = text("DELETE FROM coder_ring_positions WHERE extra_id = :extra_id")
    _ring = (
        "UPDATE coder_ring_rings SET base_length = :base_length, "
        "profanity_filter = :profanity_filter, total_codes = :total_codes, epoch = :epoch, "
        "version = :version, updated_at = now() WHERE id = :ring_id"
    )
    _draw = text(
        "WITH del AS ("
        " DELETE FROM coder_ring_positions AS p"
        " USING unnest(CAST(:deletes AS bigint[])) AS d(position)"
        " WHERE p.extra_id = :extra_id AND p.position = d.position"
        "), ups AS ("
        " INSERT INTO coder_ring_positions (extra_id, position, value)"
        " SELECT :extra_id, u.position, u.value"
        " FROM unnest(CAST(:up_positions AS bigint[]), CAST(:up_values AS bigint[]))"
        " AS u(position, value)"
        " ON CONFLICT (extra_id, position) DO UPDATE SET value = EXCLUDED.value"
        "), ext AS ("
        " UPDATE coder_ring_extras SET boundary = :boundary, cycle = :cycle,"
        " version = :extra_version, issued = :issued, updated_at = now()"
        " WHERE id = :extra_id"
        ") " + _ring
    )

    def read_positions(
        self, conn: Connection, extra_id: int, positions: Sequence[int]
    ) -> dict[int, int]:
        rows = conn.execute(self._read, {"extra_id": extra_id, "positions": list(positions)})
        return dict(rows.tuples().all())

    def write(
        self,
        conn: Connection,
        ring_id: int,
        ring: RingRecord,
        extra: tuple[int, ExtraRecord, PositionChanges] | None,
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
        conn.execute(
            self._draw,
            {
                **params,
                **_extra_params(extra_id, state),
                "deletes": list(changes.deletes),
                "up_positions": list(changes.upserts),
                "up_values": list(changes.upserts.values()),
            },
        )


class SqliteOps:
    """SQLite: IN lists under the parameter limit, and executemany (in-process calls)."""

    _read = text(
        "SELECT position, value FROM coder_ring_positions "
        "WHERE extra_id = :extra_id AND position IN :positions"
    ).bindparams(bindparam("positions", expanding=True))
    _wipe = "DELETE FROM coder_ring_positions WHERE extra_id = ?"
    _delete = "DELETE FROM coder_ring_positions WHERE extra_id = ? AND position = ?"
    _upsert = (
        "INSERT INTO coder_ring_positions (extra_id, position, value) VALUES (?, ?, ?) "
        "ON CONFLICT (extra_id, position) DO UPDATE SET value = excluded.value"
    )
    _extra = text(
        "UPDATE coder_ring_extras SET boundary = :boundary, cycle = :cycle, "
        "version = :extra_version, issued = :issued, updated_at = CURRENT_TIMESTAMP "
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
    ) -> None:
        if extra is not None:
            extra_id, state, changes = extra
            if changes.wipe:
                conn.exec_driver_sql(self._wipe, (extra_id,))
            if changes.deletes:
                conn.exec_driver_sql(
                    self._delete, [(extra_id, position) for position in changes.deletes]
                )
            if changes.upserts:
                conn.exec_driver_sql(self._upsert, _rows(extra_id, changes.upserts))
            conn.execute(self._extra, _extra_params(extra_id, state))
        conn.execute(self._ring, _ring_params(ring_id, ring))


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
    }
