"""0.1.0 and 0.2.0 databases written by hand, as those versions wrote them, for the
upgrade tests (tests/contract/test_upgrade.py).

0.1.0 kept each ring's whole permutation (``coder_ring_codes``: position p held a raw
base value, the p-th kept one in ascending order before any draw; on PostgreSQL one
partition per ring) and one extra per ring on the ring's row. 0.2.0's migration "0002"
turned that into one ``coder_ring_extras`` row per ring with the positions that moved.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from coder_ring import RingConfig
from coder_ring.alphabet import encode_base, uniquizer
from coder_ring.profanity import is_profane
from coder_ring.sql.store import MIGRATIONS_DIR


@dataclass
class OldRing:
    """One ring as 0.1.0 stored it, with the codes it issued (all; its current cycle's)."""

    ring_id: int
    name: str
    base_length: int
    profanity_filter: bool = False
    filled: bool = True
    extra: str = ""
    cycle: int = 0
    epoch: int = 0
    version: int = 0
    table: list[int] = field(default_factory=list)
    boundary: int = 0
    issued_in_cycle: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def fill(self) -> None:
        """The table before any draw: every raw base value, or the clean ones, ascending."""
        values = range(32**self.base_length)
        if self.profanity_filter:
            values = [v for v in values if not is_profane(encode_base(v, self.base_length))]
        self.table = list(values)
        self.boundary = len(self.table)

    def draw(self, count: int, rng: random.Random) -> None:
        """0.1.0's steps: swap a random position below the boundary with the top one,
        issue the value now at the top, lower the boundary; a new cycle at 0."""
        for _ in range(count):
            if self.boundary == 0:
                self.boundary, self.cycle, self.issued_in_cycle = (
                    len(self.table),
                    self.cycle + 1,
                    [],
                )
            pick, top = rng.randrange(self.boundary), self.boundary - 1
            self.table[pick], self.table[top] = self.table[top], self.table[pick]
            base = encode_base(self.table[top], self.base_length)
            self.issued_in_cycle.append(self.extra + uniquizer(self.cycle) + base)
            self.issued.append(self.issued_in_cycle[-1])
            self.boundary -= 1

    @property
    def config(self) -> RingConfig:
        return RingConfig(self.name, self.base_length, self.profanity_filter)


def migrate_to(conn: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def write_old(conn: Connection, ring: OldRing) -> None:
    conn.execute(
        text(
            "INSERT INTO coder_ring_rings (id, name, base_length, profanity_filter, total_codes, "
            "boundary, cycle, extra, epoch, version, filled) VALUES (:id, :name, :base_length, "
            ":profanity_filter, :total, :boundary, :cycle, :extra, :epoch, :version, :filled)"
        ),
        {
            "id": ring.ring_id,
            "name": ring.name,
            "base_length": ring.base_length,
            "profanity_filter": ring.profanity_filter,
            "total": len(ring.table),
            "boundary": ring.boundary,
            "cycle": ring.cycle,
            "extra": ring.extra,
            "epoch": ring.epoch,
            "version": ring.version,
            "filled": ring.filled,
        },
    )
    if not ring.filled:
        return
    rows = [
        {"ring_id": ring.ring_id, "position": position, "value": value}
        for position, value in enumerate(ring.table)
    ]
    if conn.dialect.name == "postgresql":
        # 0.1.0's fill: a partition per ring, loaded, keyed, then attached.
        partition = f"coder_ring_codes_r{ring.ring_id}"
        conn.exec_driver_sql(
            f"CREATE TABLE {partition} (ring_id integer NOT NULL CHECK "
            f"(ring_id = {ring.ring_id}), position integer NOT NULL, value integer NOT NULL)"
        )
        conn.execute(text(f"INSERT INTO {partition} VALUES (:ring_id, :position, :value)"), rows)
        conn.exec_driver_sql(f"ALTER TABLE {partition} ADD PRIMARY KEY (ring_id, position)")
        conn.exec_driver_sql(
            f"ALTER TABLE coder_ring_codes ATTACH PARTITION {partition} "
            f"FOR VALUES IN ({ring.ring_id})"
        )
    else:
        conn.execute(
            text("INSERT INTO coder_ring_codes VALUES (:ring_id, :position, :value)"), rows
        )


def write_v020(conn: Connection, ring: OldRing) -> None:
    """``ring`` as 0.2.0's migration "0002" left it (and its engine kept it): the extra
    kept as it was, with the positions below the boundary that moved."""
    conn.execute(
        text(
            "INSERT INTO coder_ring_rings (id, name, base_length, profanity_filter, "
            "total_codes, epoch, version) VALUES (:id, :name, :base_length, false, :total, "
            ":epoch, :version)"
        ),
        {
            "id": ring.ring_id,
            "name": ring.name,
            "base_length": ring.base_length,
            "total": len(ring.table),
            "epoch": ring.epoch,
            "version": ring.version,
        },
    )
    extra_id = conn.execute(
        text(
            "INSERT INTO coder_ring_extras (ring_id, extra, boundary, cycle, version, issued) "
            "VALUES (:ring_id, :extra, :boundary, :cycle, :version, :issued) RETURNING id"
        ),
        {
            "ring_id": ring.ring_id,
            "extra": ring.extra,
            "boundary": ring.boundary,
            "cycle": ring.cycle,
            "version": ring.version,
            "issued": len(ring.issued),
        },
    ).scalar_one()
    moved = [
        {"extra_id": extra_id, "position": position, "value": value}
        for position, value in enumerate(ring.table[: ring.boundary])
        if position != value
    ]
    if moved:
        conn.execute(
            text("INSERT INTO coder_ring_positions VALUES (:extra_id, :position, :value)"), moved
        )
