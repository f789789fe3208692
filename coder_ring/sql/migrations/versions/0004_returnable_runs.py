"""Give-backs checked against what was issued (0.3.0).

From 0.3.0 a draw keeps the value each position issued (the classic in-place shuffle),
so a give-back can prove that every value it returns is the one issued from its
position, and ``returnable_top`` bounds it to the giver's own run of draws. 0.2.0
recorded nothing above an extra's boundary: for a cycle under way at the upgrade,
``returnable_top`` is that boundary, so nothing issued before the upgrade can be
given back (pools of 0.2.0 workers are lost, never repeated).

The positions table is renamed: the two releases read its rows above the boundary
differently (0.2.0 would take 0.3.0's record of a used-up cycle for the next cycle's
values), so a 0.2.0 process still running against an upgraded database fails with a
clear "run coder-ring migrate" instead of drawing.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    """Add the column (nothing issued before the upgrade can go back); rename the table."""
    with op.batch_alter_table("coder_ring_extras") as batch:
        batch.add_column(
            sa.Column("returnable_top", sa.BigInteger, nullable=False, server_default="0")
        )
    op.execute("UPDATE coder_ring_extras SET returnable_top = boundary")
    op.rename_table("coder_ring_positions", "coder_ring_cycle_positions")


def downgrade() -> None:
    """Not supported: 0.2.0 would read 0.3.0's rows above the boundaries as unissued
    values. Restore a backup to go back."""
    raise NotImplementedError(
        "coder_ring 0.3.0's schema cannot be downgraded to 0.2.0; restore a backup instead"
    )
