"""From a 0.1.0 database to head, on SQLite and PostgreSQL (``database_url``).

0.1.0 kept each ring's whole permutation (``coder_ring_codes``: position p held a raw
base value, the p-th kept one in ascending order before any draw; on PostgreSQL one
partition per ring) and one extra per ring on the ring's row. The state is written
here by hand, as 0.1.0 wrote it, after the migrations up to "0001" (0.1.0's schema):
a ring mid-cycle in its second cycle with extra "hi", a filtered ring mid-cycle, a
ring whose cycle is used up (the wrap is lazy), and a ring never filled. After
``SqlStore.migrate()`` each continues its current cycle without repeating a code of it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, text

from coder_ring import RingConfig, RingService, SqlStore
from coder_ring.alphabet import encode_base, uniquizer
from coder_ring.profanity import is_profane
from coder_ring.sql.engine import parse_database_url
from coder_ring.sql.migrations.heads import VERSION_TABLE
from coder_ring.sql.schema import metadata
from coder_ring.sql.store import MIGRATIONS_DIR


@dataclass
class OldRing:
    """One ring as 0.1.0 stored it, with the codes its current cycle issued."""

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
            self.boundary -= 1

    @property
    def config(self) -> RingConfig:
        return RingConfig(self.name, self.base_length, self.profanity_filter)


def old_rings() -> list[OldRing]:
    rng = random.Random(2026)
    mid = OldRing(1, "mid", 2, extra="hi", epoch=3, version=57)
    mid.fill()
    mid.draw(1024 + 300, rng)  # all of cycle 0, then 300 of cycle 1
    clean = OldRing(2, "clean", 3, profanity_filter=True, epoch=1, version=9)
    clean.fill()
    clean.draw(5000, rng)
    done = OldRing(3, "done", 1, extra="2026-", version=4)
    done.fill()
    done.draw(32, rng)  # used up: the next draw starts cycle 1
    never = OldRing(4, "never", 2, filled=False)
    return [mid, clean, done, never]


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


def schema_differences(database_url: str) -> list[object]:
    engine = create_engine(parse_database_url(database_url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def table_names(database_url: str) -> set[str]:
    engine = create_engine(parse_database_url(database_url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.fixture
def upgraded(database_url: str) -> tuple[str, list[OldRing]]:
    """A 0.1.0 database with :func:`old_rings`, then migrated to head."""
    rings = old_rings()
    engine = create_engine(parse_database_url(database_url))
    with engine.begin() as conn:
        migrate_to(conn, "0001")
        for ring in rings:
            write_old(conn, ring)
    with engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar() == "0001"
    engine.dispose()
    store = SqlStore(database_url)
    store.migrate()
    store.dispose()
    return database_url, rings


def test_the_dense_table_is_gone_and_each_ring_keeps_its_state(
    upgraded: tuple[str, list[OldRing]],
) -> None:
    url, rings = upgraded
    names = table_names(url)
    assert not [name for name in names if name.startswith("coder_ring_codes")]
    assert {"coder_ring_rings", "coder_ring_extras", "coder_ring_positions"} <= names
    service = RingService(SqlStore(url), {ring.name: ring.config for ring in rings})
    try:
        for ring in rings:
            status = service.status(ring.name)
            assert (status.epoch, status.base_length) == (ring.epoch, ring.base_length)
            assert status.total_codes == len(old_rings_table(ring))
            if not ring.filled:
                assert (status.extras, status.stored_positions) == ((), 0)
                continue
            assert [extra.extra for extra in status.extras] == [ring.extra]
            assert (status.extra, status.cycle, status.remaining_in_cycle) == (
                ring.extra,
                ring.cycle,
                ring.boundary,
            )
            assert status.stored_positions <= ring.boundary
    finally:
        service.close()


def old_rings_table(ring: OldRing) -> list[int]:
    if ring.filled:
        return ring.table
    full = OldRing(0, ring.name, ring.base_length, ring.profanity_filter)
    full.fill()
    return full.table


def test_each_ring_finishes_its_cycle_without_repeating_a_code(
    upgraded: tuple[str, list[OldRing]],
) -> None:
    url, rings = upgraded
    service = RingService(SqlStore(url), {ring.name: ring.config for ring in rings})
    try:
        mid, clean, done, never = rings
        for ring in (mid, clean):
            rest: list[str] = []
            while len(rest) < ring.boundary:
                drawn = service.draw(ring.name, 10_000, extra=ring.extra, within_cycle=True)
                assert set(drawn.cycles) == {ring.cycle}
                rest += drawn.codes
            every = {
                ring.extra + uniquizer(ring.cycle) + encode_base(value, ring.base_length)
                for value in ring.table
            }
            assert len(rest) == len(set(rest)) == ring.boundary
            assert set(rest) == every - set(ring.issued_in_cycle)
            assert not [code for code in rest if ring.profanity_filter and is_profane(code)]
            assert service.store.stored_positions(ring.name) == 0
        assert len(mid.issued_in_cycle) == 300 and mid.issued_in_cycle[0].startswith("hiX")
        # The used-up ring wraps on its next draw; another extra starts its own cycle.
        assert service.get_code("done", extra="2026-").startswith("2026-X")
        assert len(service.get_codes("mid", 5)) == 5
        # The ring never filled just works, from its first cycle.
        codes = service.get_codes("never", 1024)
        assert len(set(codes)) == 1024 and {len(code) for code in codes} == {2}
        assert service.get_code("never").startswith("X")
        assert never.filled is False and done.cycle == 0
    finally:
        service.close()


def test_an_upgraded_schema_equals_the_metadata(upgraded: tuple[str, list[OldRing]]) -> None:
    url, _ = upgraded
    assert schema_differences(url) == []


def test_a_fresh_schema_equals_the_metadata(database_url: str) -> None:
    store = SqlStore(database_url)
    store.migrate()
    store.dispose()
    assert schema_differences(database_url) == []
    assert "coder_ring_codes" not in table_names(database_url)
