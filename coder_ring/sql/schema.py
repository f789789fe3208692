"""The database schema (SQLAlchemy Core): the one statement of it.

Alembic migrations in ``coder_ring/sql/migrations`` create and upgrade it; a test
compares the migrated database with this metadata, so the two cannot drift.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    func,
)

metadata = MetaData()

#: One row per ring: its shape, its fencing epoch and its write counter.
rings_table = Table(
    "coder_ring_rings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(40), nullable=False, unique=True),
    Column("base_length", SmallInteger, nullable=False),
    Column("profanity_filter", Boolean, nullable=False),
    # Codes in one cycle: 32**base_length, minus the profane ones when filtered.
    Column("total_codes", BigInteger, nullable=False),
    # Fencing token: a write that carries an older epoch is refused.
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    # Grows with every write to the ring; an extra keeps the value of its last write,
    # which a give-back compares to prove nothing drew since.
    Column("version", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

#: One row per (ring, extra): that extra's own cycle.
extras_table = Table(
    "coder_ring_extras",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "ring_id",
        Integer,
        ForeignKey("coder_ring_rings.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("extra", String(32), nullable=False),
    # Positions below the boundary hold the codes not yet issued in this cycle.
    Column("boundary", BigInteger, nullable=False),
    Column("cycle", BigInteger, nullable=False, server_default="0"),
    Column("version", BigInteger, nullable=False, server_default="0"),
    # Codes issued with this extra over all cycles (given-back codes not counted).
    Column("issued", BigInteger, nullable=False, server_default="0"),
    # Positions from the boundary up to here record the value each issued (a give-back
    # is checked against them); 0 by default, so nothing unrecorded can be given back.
    Column("returnable_top", BigInteger, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("ring_id", "extra", name="uq_coder_ring_extras_ring_extra"),
)

#: The positions of a cycle whose value differs from the initial order (value = position);
#: at most two per code drawn in the current cycle. No foreign key to the extras: a
#: key check per inserted row cost a fifth of a large draw, and rows are only written
#: for an extra under its ring's lock and deleted before it (drop_extras).
positions_table = Table(
    "coder_ring_cycle_positions",
    metadata,
    Column("extra_id", Integer, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("value", BigInteger, nullable=False),
)
