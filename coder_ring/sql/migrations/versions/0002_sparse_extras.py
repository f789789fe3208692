"""Sparse storage and per-extra cycles (0.2.0): no fill, one cycle per (ring, extra).

Turns 0.1.0's dense tables (every position of every ring, one extra per ring) into
``coder_ring_extras`` (one row per (ring, extra)) and ``coder_ring_positions`` (only
the positions whose value differs from the initial order). A ring that was mid-cycle
keeps its extra, cycle, boundary and the values below the boundary, so it continues
without repeating a code of its current cycle. Filtered rings' values are renumbered
from 0.1.0's raw base values to their rank among the clean codes, the order the new
engine renders. An extra made only of alphabet characters (``26``), which 0.2.0
refuses and which would block the default extra, is handed over to the default extra
(:func:`coder_ring.extras.default_takeover`; 0.2.0 kept it: "0003" repairs that).
Not reversible: restore a backup to go back to 0.1.0.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from coder_ring.alphabet import encode_base
from coder_ring.extras import default_takeover, is_legacy_extra
from coder_ring.profanity import space_of

revision = "0002"
down_revision = "0001"

#: Rows per INSERT while copying a filtered ring's positions.
_CHUNK = 10_000


def upgrade() -> None:
    """Create the new tables, move each ring's state into them, drop the dense table."""
    bind = op.get_bind()
    rings = bind.execute(
        sa.text(
            "SELECT id, base_length, profanity_filter, total_codes, boundary, cycle, extra, "
            "version, filled FROM coder_ring_rings"
        )
    ).all()
    # The ring table is rebuilt (SQLite) before anything references it.
    with op.batch_alter_table("coder_ring_rings") as batch:
        batch.drop_column("boundary")
        batch.drop_column("cycle")
        batch.drop_column("extra")
        batch.drop_column("filled")
        batch.alter_column("total_codes", type_=sa.BigInteger, existing_nullable=False)
        batch.alter_column("total_codes", server_default=None, existing_type=sa.BigInteger)
    op.create_table(
        "coder_ring_extras",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "ring_id",
            sa.Integer,
            sa.ForeignKey("coder_ring_rings.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("extra", sa.String(32), nullable=False),
        sa.Column("boundary", sa.BigInteger, nullable=False),
        sa.Column("cycle", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("issued", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("ring_id", "extra", name="uq_coder_ring_extras_ring_extra"),
    )
    op.create_table(
        "coder_ring_positions",
        # No foreign key: see coder_ring/sql/schema.py.
        sa.Column("extra_id", sa.Integer, primary_key=True),
        sa.Column("position", sa.BigInteger, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    for ring in rings:
        _move_ring(bind, ring)
    op.drop_table("coder_ring_codes")


def _move_ring(bind: sa.Connection, ring: sa.Row) -> None:  # type: ignore[type-arg]
    space = space_of(ring.base_length, bool(ring.profanity_filter))
    bind.execute(
        sa.text("UPDATE coder_ring_rings SET total_codes = :total WHERE id = :id"),
        {"total": space.total, "id": ring.id},
    )
    if not ring.filled:
        return  # never drawn from: it starts fresh, as any new ring
    total = space.total
    issued = ring.cycle * total + (total - ring.boundary)
    extra, cycle, boundary = ring.extra, ring.cycle, ring.boundary
    if is_legacy_extra(extra):
        takeover = default_takeover(extra, cycle)
        if takeover is None:
            return  # no code of the default extra can be one of its codes: it starts fresh
        extra, cycle = "", takeover.cycle
        if not takeover.continues:
            boundary = 0  # that cycle was used up: nothing below the boundary to copy
    extra_id = bind.execute(
        sa.text(
            "INSERT INTO coder_ring_extras (ring_id, extra, boundary, cycle, version, issued) "
            "VALUES (:ring_id, :extra, :boundary, :cycle, :version, :issued) RETURNING id"
        ),
        {
            "ring_id": ring.id,
            "extra": extra,
            "boundary": boundary,
            "cycle": cycle,
            "version": ring.version,
            "issued": issued,
        },
    ).scalar_one()
    if not ring.profanity_filter:
        # Unfiltered, 0.1.0's value is already the rank: copy what moved, below the boundary.
        bind.execute(
            sa.text(
                "INSERT INTO coder_ring_positions (extra_id, position, value) "
                "SELECT :extra_id, position, value FROM coder_ring_codes "
                "WHERE ring_id = :ring_id AND position < :boundary AND value <> position"
            ),
            {"extra_id": extra_id, "ring_id": ring.id, "boundary": boundary},
        )
        return
    rows = bind.execute(
        sa.text(
            "SELECT position, value FROM coder_ring_codes "
            "WHERE ring_id = :ring_id AND position < :boundary"
        ),
        {"ring_id": ring.id, "boundary": boundary},
    ).tuples()
    moved: list[dict[str, int]] = []
    for position, raw in rows:
        value = space.rank(encode_base(raw, ring.base_length))
        if value != position:
            moved.append({"extra_id": extra_id, "position": position, "value": value})
    insert = sa.text(
        "INSERT INTO coder_ring_positions (extra_id, position, value) "
        "VALUES (:extra_id, :position, :value)"
    )
    for start in range(0, len(moved), _CHUNK):
        bind.execute(insert, moved[start : start + _CHUNK])


def downgrade() -> None:
    """Not supported: 0.1.0's dense tables cannot be rebuilt from the sparse state."""
    raise NotImplementedError(
        "coder_ring 0.2.0's schema cannot be downgraded to 0.1.0; restore a backup instead"
    )
