"""Give-backs checked against what was issued (0.3.0): ``recorded_top`` per extra.

From 0.3.0 a draw keeps the value each position issued (the classic in-place shuffle),
so a give-back can prove that every value it returns is the one issued from its
position. 0.2.0 recorded nothing above an extra's boundary: for a cycle under way at
the upgrade, ``recorded_top`` is that boundary, so nothing issued before the upgrade
can be given back (pools of 0.2.0 workers are lost, never repeated). The extra's next
cycle records everything again.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    """Add the column; what was issued before the upgrade is not recorded."""
    with op.batch_alter_table("coder_ring_extras") as batch:
        batch.add_column(
            sa.Column("recorded_top", sa.BigInteger, nullable=False, server_default="0")
        )
    op.execute("UPDATE coder_ring_extras SET recorded_top = boundary")


def downgrade() -> None:
    """Drop the column (0.2.0 ignores what the positions above the boundary hold)."""
    with op.batch_alter_table("coder_ring_extras") as batch:
        batch.drop_column("recorded_top")
