"""From a 0.1.0 database to head, on SQLite and PostgreSQL (``database_url``).

The state is written by hand, as 0.1.0 wrote it, after the migrations up to "0001"
(0.1.0's schema; :mod:`tests.harness.upgrade`): a ring mid-cycle in its second cycle
with extra "hi", a filtered ring mid-cycle, a ring whose cycle is used up (the wrap is
lazy), and a ring never filled. After ``SqlStore.migrate()`` each continues its current
cycle without repeating a code of it.

Rings whose extra is made only of alphabet characters (``26``: 0.1.0 accepted it; 0.2.0
kept it, and refused the default extra beside it from then on) are upgraded from 0.1.0,
and repaired from the state 0.2.0 left (:func:`legacy_rings`): afterwards the default
extra serves, through the engine and a worker's pools, and repeats no code issued before.
"""

from __future__ import annotations

import random

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from coder_ring import ALPHABET, ExtraConflict, RingService, SqlStore
from coder_ring.alphabet import encode_base, uniquizer
from coder_ring.profanity import is_profane
from coder_ring.ring_server import RingServer
from coder_ring.sql.engine import parse_database_url
from coder_ring.sql.migrations.heads import VERSION_TABLE
from coder_ring.sql.schema import metadata
from tests.harness.upgrade import OldRing, migrate_to, write_old, write_v020


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
    assert {"coder_ring_rings", "coder_ring_extras", "coder_ring_cycle_positions"} <= names
    assert "coder_ring_positions" not in names  # renamed: a 0.2.0 process cannot draw
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
            service.draw(ring.name, 1, extra=ring.extra)  # the wrap drops the cycle's rows
            assert service.store.stored_positions(ring.name) <= 2
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


# --------------------------------------------------------------------------------------
# An extra made only of alphabet characters


def legacy_rings() -> list[OldRing]:
    """0.1.0 rings whose extra is made only of alphabet characters. ``"26" + uniquizer +
    base`` is the default extra's ``uniquizer + base`` in a later cycle (uniquizer
    ``26``, ``26X``, ...); an extra starting with ``X`` meets the default extra's codes
    at most in its cycle 1 (uniquizer ``X``): no longer uniquizer starts with ``X``."""
    rng = random.Random(26)
    year = OldRing(5, "year", 1, extra="26", epoch=2, version=80)
    year.fill()
    year.draw(2 * 32 + 10, rng)  # cycles 0 and 1, then 10 codes of cycle 2
    ex = OldRing(6, "ex", 1, extra="X", version=41)
    ex.fill()
    ex.draw(32 + 8, rng)  # cycle 0 ("X" + base: the default extra's cycle 1), then 8
    xa = OldRing(7, "xa", 1, extra="XA", version=5)
    xa.fill()
    xa.draw(5, rng)
    return [year, ex, xa]


@pytest.fixture(params=["from 0.1.0", "0.2.0 repaired"])
def legacy(request: pytest.FixtureRequest, database_url: str) -> tuple[str, list[OldRing]]:
    """:func:`legacy_rings` in a 0.1.0 database, or as 0.2.0 left them (its migration
    kept the extra: the default extra was refused from then on), then migrated to head."""
    rings = legacy_rings()
    engine = create_engine(parse_database_url(database_url))
    with engine.begin() as conn:
        if request.param == "from 0.1.0":
            migrate_to(conn, "0001")
            for ring in rings:
                write_old(conn, ring)
        else:
            migrate_to(conn, "0002")
            rings[0].draw(30, random.Random(2))  # 0.2.0 served "26" on: into cycle 3
            for ring in rings:
                write_v020(conn, ring)
    engine.dispose()
    store = SqlStore(database_url)
    store.migrate()
    store.dispose()
    return database_url, rings


def test_the_default_extra_takes_an_alphabet_only_extra_over(
    legacy: tuple[str, list[OldRing]],
) -> None:
    url, rings = legacy
    year = rings[0]
    service = RingService(SqlStore(url), {ring.name: ring.config for ring in rings})
    try:
        # "26" in cycle c is the default extra in the cycle of uniquizer "26" + u(c): the
        # default extra continues that cycle where "26" stopped.
        state = service.status("year")
        assert [extra.extra for extra in state.extras] == [""]
        assert uniquizer(state.cycle) == "26" + uniquizer(year.cycle)
        assert state.remaining_in_cycle == year.boundary
        assert state.extras[0].issued == len(year.issued)
        # "X" in cycle 0 was the default extra's cycle 1; no later code of "X" can be one
        # of the default extra's: the default extra starts after cycle 1.
        state = service.status("ex")
        assert [(e.extra, e.cycle, e.remaining_in_cycle) for e in state.extras] == [("", 1, 0)]
        # No code of "XA" can ever be one of the default extra's: it starts afresh.
        assert service.status("xa").extras == ()
        for ring in rings:
            with pytest.raises(ExtraConflict, match=f"extra {ring.extra!r} is refused"):
                service.get_code(ring.name, extra=ring.extra)
    finally:
        service.close()


def test_after_the_upgrade_the_default_extra_serves_and_repeats_nothing(
    legacy: tuple[str, list[OldRing]],
) -> None:
    url, rings = legacy
    service = RingService(SqlStore(url), {ring.name: ring.config for ring in rings})
    try:
        for ring in rings:
            # A worker's first use: activate (a claim, then the default extra's pool),
            # codes from the pool, beat's refill, a graceful stop.
            server = RingServer(service, ring.name, pool_size=8)
            try:
                server.activate()
                served = [*server.get_codes(5), server.get_code()]
                assert server.refill() == 6
                served += server.get_codes(8)
                assert server.deactivate() == 0  # the pool was empty
            finally:
                server.close()
            served += service.get_codes(ring.name, 4 * 32)  # through four cycles
            assert len(served) == len(set(served)) == 14 + 4 * 32
            assert not set(served) & set(ring.issued), ring.name
            if ring.name == "year":
                # In issue order: first the rest of the cycle "26" stopped in.
                cycle = {"26" + uniquizer(ring.cycle) + code for code in ALPHABET}
                assert set(served[: ring.boundary]) == cycle - set(ring.issued_in_cycle)
            if ring.name == "ex":
                assert served[0].startswith(uniquizer(2))  # cycle 1 was "X"'s cycle 0
    finally:
        service.close()


def test_the_repair_keeps_a_default_extra_beside_one_apart(database_url: str) -> None:
    # Neither 0.1.0 nor 0.2.0 could leave both extras; the repair keeps them apart anyway.
    year = legacy_rings()[0]
    engine = create_engine(parse_database_url(database_url))
    with engine.begin() as conn:
        migrate_to(conn, "0002")
        write_v020(conn, year)
        default_id = conn.execute(
            text(
                "INSERT INTO coder_ring_extras (ring_id, extra, boundary, cycle, version, "
                "issued) VALUES (5, '', 10, 5, 1, 182) RETURNING id"
            )
        ).scalar_one()
        conn.execute(text(f"INSERT INTO coder_ring_positions VALUES ({default_id}, 3, 7)"))
    engine.dispose()
    service = RingService(SqlStore(database_url), {"year": year.config})
    try:
        service.migrate()
        state = service.status("year")
        # Only the default extra, at the end of the twin of "26"'s cycle: used up.
        assert [(e.extra, e.remaining_in_cycle) for e in state.extras] == [("", 0)]
        assert uniquizer(state.cycle) == "26" + uniquizer(year.cycle)
        assert state.stored_positions == 0
        codes = service.get_codes("year", 40)
        assert codes[0].startswith(uniquizer(state.cycle + 1))
        assert not set(codes) & set(year.issued)
    finally:
        service.close()
