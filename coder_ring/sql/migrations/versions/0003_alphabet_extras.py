"""Hand an alphabet-only extra kept by 0.2.0's upgrade over to the default extra.

0.1.0 accepted extras made only of alphabet characters (``26``). 0.2.0 refuses them,
yet its migration "0002" kept the one a ring used, and the default extra conflicts
with it (``ExtraConflict``): it was refused for ever, a worker's activation failed
after its claim, and beat's refill failed every interval. Each such extra becomes the
default extra at the cycle :func:`coder_ring.extras.default_takeover` gives (its codes
were the default extra's codes of that cycle), or is forgotten when no code of the
default extra can be one of its codes; it is refused from then on. "0002" does the
same for databases still on 0.1.0. No schema change.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from coder_ring.extras import default_takeover, is_legacy_extra

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    """Replace every alphabet-only extra, ring by ring, under the ring's lock."""
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT ring_id, extra FROM coder_ring_extras")).all()
    ring_ids = sorted({row.ring_id for row in rows if is_legacy_extra(row.extra)})
    for ring_id in ring_ids:
        if bind.dialect.name == "postgresql":
            # A worker of 0.2.0 may still draw: its draws lock the ring's row first, so
            # taking that lock makes the state read below the one replaced. (SQLite: the
            # migration's transaction already holds the database's write lock.)
            bind.execute(
                sa.text("SELECT id FROM coder_ring_rings WHERE id = :id FOR UPDATE"),
                {"id": ring_id},
            )
        for row in _extras(bind, ring_id):
            if is_legacy_extra(row.extra):
                default = next((other for other in _extras(bind, ring_id) if not other.extra), None)
                _take_over(bind, row, default)


def _extras(bind: sa.Connection, ring_id: int) -> list[sa.Row[Any]]:
    return list(
        bind.execute(
            sa.text(
                "SELECT id, extra, cycle FROM coder_ring_extras WHERE ring_id = :ring_id "
                "ORDER BY id"
            ),
            {"ring_id": ring_id},
        ).all()
    )


def _take_over(bind: sa.Connection, row: sa.Row[Any], default: sa.Row[Any] | None) -> None:
    takeover = default_takeover(row.extra, row.cycle)
    if takeover is not None and default is None:
        # The usual case (the default extra was refused while this extra existed): the
        # row becomes the default extra's, and goes on with its cycle if it continues.
        if takeover.continues:
            bind.execute(
                sa.text("UPDATE coder_ring_extras SET extra = '', cycle = :cycle WHERE id = :id"),
                {"cycle": takeover.cycle, "id": row.id},
            )
        else:
            _start_after(bind, row.id, takeover.cycle)
        return
    _forget_positions(bind, row.id)
    bind.execute(sa.text("DELETE FROM coder_ring_extras WHERE id = :id"), {"id": row.id})
    if takeover is not None and default is not None and default.cycle <= takeover.cycle:
        # Both exist (neither 0.1.0 nor 0.2.0 could do that, but the rule is simple): the
        # default extra skips every cycle that could repeat the other's codes, abandoning
        # the rest of its own.
        _start_after(bind, default.id, takeover.cycle)


def _start_after(bind: sa.Connection, extra_id: int, cycle: int) -> None:
    """Make row ``extra_id`` the default extra at the end of ``cycle``, used up: its next
    draw starts the cycle after it (the wrap is lazy)."""
    _forget_positions(bind, extra_id)
    bind.execute(
        sa.text(
            "UPDATE coder_ring_extras SET extra = '', cycle = :cycle, boundary = 0 WHERE id = :id"
        ),
        {"cycle": cycle, "id": extra_id},
    )


def _forget_positions(bind: sa.Connection, extra_id: int) -> None:
    bind.execute(sa.text("DELETE FROM coder_ring_positions WHERE extra_id = :id"), {"id": extra_id})


def downgrade() -> None:
    """Nothing to undo: 0.2.0 serves this state as it is (and refuses the extra too)."""
