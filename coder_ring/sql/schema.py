"""The database schema (SQLAlchemy Core). Alembic migrations in
``coder_ring/sql/migrations`` create it; this module only describes it for queries."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    func,
)

metadata = MetaData()

#: One row per ring: its shape, the shuffle boundary, the cycle and the fencing epoch.
rings_table = Table(
    "coder_ring_rings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False, unique=True),
    Column("base_length", SmallInteger, nullable=False),
    Column("profanity_filter", Boolean, nullable=False),
    # Codes in the table once filled (32**base_length minus filtered codes).
    Column("total_codes", Integer, nullable=False, server_default="0"),
    # Positions below the boundary hold the codes not yet issued in this cycle.
    Column("boundary", Integer, nullable=False, server_default="0"),
    Column("cycle", BigInteger, nullable=False, server_default="0"),
    Column("extra", String(32), nullable=False, server_default=""),
    # Fencing token: a write that carries an older epoch is refused.
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    # Bumped by every write to the row; a give-back compares it to prove nothing drew since.
    Column("version", BigInteger, nullable=False, server_default="0"),
    # True only once the whole table was written, in the same transaction as the rows.
    Column("filled", Boolean, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: The permutation of each ring: position -> base code value, keyed by (ring_id, position).
codes_table = Table(
    "coder_ring_codes",
    metadata,
    Column("ring_id", Integer, primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("value", Integer, nullable=False),
)
