"""Replay of coder_ring 0.1.0's fill: the dense table every ring needed before its
first code, for the "what 0.1.0 needs" rows (fill time, database size).

0.1.0 (git 5a21c35, ``coder_ring/sql/dialects.py``, ``insert_codes``) wrote one row
per code of the ring -- ``(ring_id, position, value)`` with ``value = position`` --
before the ring could issue anything:

* PostgreSQL: into a fresh partition table by ``COPY`` (chunks of 65,536 rows), then
  ``ADD PRIMARY KEY (ring_id, position)``, ``ATTACH PARTITION`` and ``ANALYZE``; here
  the same table, statements and chunks, left standalone (the attach of a table that
  carries its partition constraint already is a catalogue change);
* SQLite: into ``coder_ring_codes`` (primary key ``(ring_id, position)``) by chunks of
  65,536 values expanded with ``json_each()``.

Nothing else of 0.1.0 is replayed: its draw rates are the figures its README gives.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import Engine, text

from bench.sizes import database_bytes

#: 0.1.0's rows per COPY/INSERT chunk.
FILL_CHUNK_ROWS = 65_536
#: The table the replay fills (never one of ours).
TABLE = "v010_codes"


@dataclass(frozen=True)
class DenseFill:
    """One 0.1.0 fill: its seconds and the bytes its table (and index) take."""

    seconds: float
    bytes: int
    rows: int


def _fill_postgres(engine: Engine, total: int) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {TABLE} (ring_id integer NOT NULL CHECK (ring_id = 1), "
            "position integer NOT NULL, value integer NOT NULL)"
        )
        driver = conn.connection.driver_connection
        assert driver is not None
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {TABLE} (ring_id, position, value) FROM STDIN") as copy,
        ):
            for start in range(0, total, FILL_CHUNK_ROWS):
                stop = min(start + FILL_CHUNK_ROWS, total)
                copy.write("".join(f"1\t{p}\t{p}\n" for p in range(start, stop)))
        conn.exec_driver_sql(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (ring_id, position)")
        conn.exec_driver_sql(f"ANALYZE {TABLE}")


def _fill_sqlite(engine: Engine, total: int) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {TABLE} (ring_id INTEGER NOT NULL, position INTEGER NOT NULL, "
            "value INTEGER NOT NULL, PRIMARY KEY (ring_id, position))"
        )
        for start in range(0, total, FILL_CHUNK_ROWS):
            stop = min(start + FILL_CHUNK_ROWS, total)
            chunk = json.dumps(list(range(start, stop)), separators=(",", ":"))
            conn.exec_driver_sql(
                f"INSERT INTO {TABLE} (ring_id, position, value) "
                "SELECT 1, ? + key, value FROM json_each(?)",
                (start, chunk),
            )


def drop(engine: Engine) -> None:
    """Drop the replay's table."""
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))


def dense_fill(engine: Engine, base_length: int) -> DenseFill:
    """Fill a 32**base_length dense table as 0.1.0 did; its time and size (the table is
    dropped afterwards)."""
    total = 32**base_length
    drop(engine)
    before = database_bytes(engine)
    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        _fill_postgres(engine, total)
    else:
        _fill_sqlite(engine, total)
    seconds = time.perf_counter() - started
    size = database_bytes(engine) - before
    drop(engine)
    return DenseFill(seconds, size, total)
