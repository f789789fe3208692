"""Rings and their code tables.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    """Create the ring state table and the (ring_id, position)-keyed codes table."""
    op.create_table(
        "coder_ring_rings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(40), nullable=False, unique=True),
        sa.Column("base_length", sa.SmallInteger, nullable=False),
        sa.Column("profanity_filter", sa.Boolean, nullable=False),
        sa.Column("total_codes", sa.Integer, nullable=False, server_default="0"),
        sa.Column("boundary", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cycle", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("extra", sa.String(32), nullable=False, server_default=""),
        sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("filled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "coder_ring_codes",
        sa.Column("ring_id", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
        # On PostgreSQL each ring's codes are one partition, created and attached by the
        # fill in the same transaction as its rows (see sql_dialects.PostgresOps).
        postgresql_partition_by="LIST (ring_id)",
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("coder_ring_codes")
    op.drop_table("coder_ring_rings")
