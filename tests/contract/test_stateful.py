"""Everything at once, in random order: a hypothesis state machine on one small ring.

Two worker servers (RingServer, each with its own RingService and store connection)
take turns holding the ring as a cluster does: the holder serves extras "", "hi",
"26-" and "x-" from its pools and tops them up in the background, beat refills it,
the other server claims the ring (the former holder, unaware, serves what its pools
still hold until a draw is fenced), or the holder stops (giving back) or loses its lock
(not giving back) and the other takes over. A direct caller (a third RingService on
the same database) draws and bumps beside them; an operator resets and rebuilds (to
another shape and back); callers try ambiguous extras, which must change nothing.

A hostile caller gives back, through the public ``RingService.give_back`` with the
right epoch and version, values that are not the latest draws' (random ones, the right
ones shifted or reordered): each is refused with nothing changed. One server keeps
pools for two extras only, so the others are served without drawing ahead.

After every step: no code was handed out twice since the last reset or rebuild (all
extras and cycles), every status figure is sane, and the stored positions are what
the sparse design allows: each extra's table is a permutation of its cycle, with at
most two rows per code drawn in the extra's current cycle.

Each example gets a fresh database (a MemoryStore, a new SQLite file, or a new
PostgreSQL schema), migrated (from the session's template: tests.harness.templates).
Settings (``SETTINGS``), chosen so that the whole file runs in about 12 s on this
2-CPU machine: memory 120 examples of up to 50 steps, SQLite 16 x 40, PostgreSQL
20 x 40: up to 7,440 steps, each followed by every check. ``make test-fast`` runs a
fifth of the examples (at least 5: tests.harness.tiers), each as long.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from coder_ring import (
    ALPHABET,
    ExtraConflict,
    Fenced,
    InvalidInput,
    RingConfig,
)
from coder_ring.alphabet import uniquizer
from coder_ring.errors import NotHolding
from coder_ring.profanity import is_profane
from coder_ring.ring_server import RingServer
from coder_ring.store import Store
from tests.contract.stateful_support import (
    NAME,
    Ledger,
    RecordingService,
    fresh_databases,
    stored_rows,
)
from tests.harness.templates import MigratedTemplates
from tests.harness.tiers import examples

SHAPES = (
    RingConfig(NAME, base_length=1, pool_size=6),
    RingConfig(NAME, base_length=2, profanity_filter=True, pool_size=4),
)
EXTRAS = ("", "hi", "26-", "x-")
EXTRA = st.sampled_from(("", "", "", *EXTRAS[1:]))  # "" half of the time
#: Extras refused once the extra they extend by alphabet characters was used ("" always is).
REFUSED = {"X": "", "26": "", "AB": "", "hiX": "hi", "x-W": "x-", "26-X2": "26-"}
SETTINGS = {"memory": (120, 50), "sqlite": (16, 40), "postgresql": (20, 40)}


class RingMachine(RuleBasedStateMachine):
    """Subclassed per store by the test with ``open_store`` (a fresh database) set."""

    open_store: Callable[[], tuple[Callable[[], Store], Callable[[], None]]]

    def __init__(self) -> None:
        super().__init__()
        new_store, self._drop = self.open_store()
        self.ledger = Ledger()
        self.shape = 0
        self.services = [self._service(new_store()) for _ in range(3)]
        self.services[0].migrate()
        self.direct = self.services[0]
        self.servers = [
            RingServer(service, NAME, max_pools=pools)
            for service, pools in zip(self.services[1:], (len(EXTRAS), 2), strict=True)
        ]
        self.seen: set[str] = set()
        self.holder = 0

    def _service(self, store: Store) -> RecordingService:
        service = RecordingService(store, {NAME: SHAPES[self.shape]})
        service.ledger = self.ledger
        return service

    def teardown(self) -> None:
        for server in self.servers:
            server.settle()
            server.close()
        for service in self.services:
            service.close()
        self._drop()

    # ----------------------------------------------------------------------------------

    def handed_out(self, codes: list[str]) -> None:
        twice = [code for code in codes if code in self.seen] + [
            code for code in set(codes) if codes.count(code) > 1
        ]
        assert not twice, f"handed out twice: {twice}"
        self.seen.update(codes)
        ring = SHAPES[self.shape]
        for code in codes:
            base = code[-ring.base_length :]
            assert set(base) <= set(ALPHABET), code
            assert not (ring.profanity_filter and is_profane(base)), code

    def started_over(self) -> None:
        """After a reset or rebuild: earlier codes may come again. The workers' epoch check
        drops their stale pools and the holder claims the ring again (the worker runtime
        does both within a refill interval)."""
        self.seen.clear()
        self.ledger.cycles.clear()
        for server in self.servers:
            server.still_current()
        self.servers[self.holder].activate()

    def take_over(self, which: int) -> None:
        self.servers[which].activate()
        self.holder = which

    @initialize(seed=st.integers(0, 2**32))
    def seed_the_picks(self, seed: int) -> None:
        """Reproducible picks (hypothesis replays and shrinks examples), one stream per
        client of the database."""
        for index, service in enumerate(self.services):
            service.randbelow = random.Random(seed + index).randrange
        self.take_over(0)

    # ----------------------------------------------------------------------------------
    # The holder serves; the other server may still hold codes drawn before it lost the
    # ring (a worker paused past its lock), and serves them until a draw is fenced.

    @rule(holder=st.booleans(), extra=EXTRA, count=st.integers(1, 12), bump=st.booleans())
    def serve(self, holder: bool, extra: str, count: int, bump: bool) -> None:
        server = self.servers[self.holder if holder else 1 - self.holder]
        try:
            codes = server.get_codes(count, extra, bump=bump and count < 3)
        except (Fenced, NotHolding):
            assert not holder
            return
        assert len(codes) == count
        self.handed_out(codes)
        server.top_up_if_low(extra)  # after the codes are on their way, as a worker does
        server.settle()

    def settle(self) -> None:
        for server in self.servers:
            server.settle()

    @rule()
    def beat_refill(self) -> None:
        self.settle()
        self.servers[self.holder].refill()

    @rule(extra=EXTRA, count=st.integers(1, 12), bump=st.booleans())
    def direct_draw(self, extra: str, count: int, bump: bool) -> None:
        codes = self.direct.get_codes(NAME, count, extra=extra, bump=bump and count < 3)
        assert len(codes) == count
        self.handed_out(codes)

    @rule()
    def claim_by_the_other(self) -> None:
        """The other worker claims the ring; the former holder does not know yet."""
        self.settle()
        self.take_over(1 - self.holder)

    @rule(give_back=st.booleans())
    def stop_and_move(self, give_back: bool) -> None:
        """The holder stops gracefully (give back) or loses its lock (no give-back);
        the other worker takes over."""
        self.servers[self.holder].deactivate(give_back=give_back)
        self.take_over(1 - self.holder)

    @rule(which=st.integers(0, 5))
    def reset(self, which: int) -> None:
        if which > 1:
            return  # resets and rebuilds start over: keep them rarer than the rest
        self.settle()
        if which:
            self.direct.reset(NAME)
        else:
            self.servers[self.holder].reset()  # the holder's own reset keeps its epoch
        self.started_over()

    @rule(now=st.integers(0, 3))
    def rebuild(self, now: int) -> None:
        if now:
            return
        self.settle()
        self.shape = 1 - self.shape
        for service in self.services:
            service.reload({NAME: SHAPES[self.shape]})
        self.direct.rebuild(NAME)
        self.started_over()

    @rule(which=st.integers(0, 3), extra=st.sampled_from(sorted(REFUSED)))
    def ambiguous_extra(self, which: int, extra: str) -> None:
        if which == 3:
            return  # keep it rarer than the rest
        used = {"", *(status.extra for status in self.direct.status(NAME).extras)}
        if REFUSED[extra] not in used:
            return  # not refused yet, and using it would make the extra it extends refused
        before = self.snapshot()
        try:
            if which == 2:
                self.direct.get_codes(NAME, 3, extra=extra)
            else:
                self.servers[which].get_codes(3, extra)
        except ExtraConflict as error:
            assert repr(extra) in str(error)
            assert self.snapshot() == before
        except (NotHolding, Fenced):
            pass  # checked before the extra: a server that lost the ring says so first
        else:
            raise AssertionError(f"extra {extra!r} was accepted")

    @rule(
        extra=EXTRA,
        kind=st.sampled_from(("random", "shifted", "reordered", "past_run")),
        data=st.data(),
    )
    def hostile_give_back(self, extra: str, kind: str, data: st.DataObject) -> None:
        """Values that are not the latest draws' go back with the right epoch and version:
        refused, nothing changed (0.2.0 took them, and issued them twice)."""
        state = {e.extra: e for e in self.direct.store.extra_records(NAME)}.get(extra)
        record = self.direct.store.ring_record(NAME)
        if state is None or record is None:
            return
        count = data.draw(st.integers(1, 4))
        table = stored_rows(self.direct.store).get(extra, {})
        top = min(state.boundary + count + 1, state.returnable_top)
        latest = [table.get(position, position) for position in range(state.boundary, top)]
        if kind == "random":
            values = data.draw(
                st.lists(
                    st.integers(0, record.total_codes - 1), min_size=1, max_size=count, unique=True
                )
            )
        elif kind == "past_run":
            # The latest run and the codes issued before it (handed out to others).
            beyond = min(state.returnable_top + count, record.total_codes)
            values = [table.get(p, p) for p in range(state.boundary, beyond)]
            if beyond <= state.returnable_top:
                return
        elif kind == "shifted":
            values = latest[1 : count + 1]
        else:
            values = data.draw(st.permutations(latest[:count]))
        if not values or (kind != "past_run" and values == latest[: len(values)]):
            return  # exactly the latest draws: a real give-back, not a hostile one
        before = self.snapshot()
        try:
            returned = self.direct.give_back(
                NAME, extra, values, epoch=record.epoch, version=state.version
            )
        except InvalidInput as error:
            assert repr(extra) in str(error)
            returned = False
        assert not returned
        assert self.snapshot() == before

    def snapshot(self) -> tuple[object, ...]:
        return (
            self.direct.status(NAME).as_dict(),
            stored_rows(self.direct.store),
            [server.pooled_by_extra() for server in self.servers],
        )

    # ----------------------------------------------------------------------------------

    @invariant()
    def figures_are_sane(self) -> None:
        status = self.direct.status(NAME)
        ring = SHAPES[self.shape]
        assert (status.base_length, status.profanity_filter) == (
            ring.base_length,
            ring.profanity_filter,
        )
        total = status.total_codes
        assert 0 <= status.remaining_in_cycle <= total
        rows = stored_rows(self.direct.store)
        assert status.stored_positions == sum(len(table) for table in rows.values())
        by_extra = {extra.extra: extra for extra in status.extras}
        assert set(rows) <= set(by_extra)
        for extra in status.extras:
            assert 0 <= extra.remaining_in_cycle <= total
            assert extra.uniquizer == uniquizer(extra.cycle)
            assert 0.0 <= extra.percent_used <= 100.0
            table = rows.get(extra.extra, {})
            assert all(value != key for key, value in table.items())
            whole = [table.get(position, position) for position in range(total)]
            assert sorted(whole) == list(range(total)), "not a permutation of the cycle"
            # At most two rows per code drawn in this cycle (a give-back writes none).
            cycle = self.ledger.cycles.get(extra.extra)
            if cycle is not None and cycle.cycle == extra.cycle:
                assert len(table) <= 2 * cycle.drawn
                assert total - extra.remaining_in_cycle == cycle.drawn - cycle.given_back
        for server in self.servers:
            assert 0 <= server.pooled <= server.pool_size * len(EXTRAS)
            assert all(
                0 <= count <= server.pool_size for count in server.pooled_by_extra().values()
            )


@pytest.mark.parametrize("backend", ["memory", "sqlite", "postgresql"])
def test_no_code_is_handed_out_twice_whatever_happens(
    backend: str, request: pytest.FixtureRequest, migrated: MigratedTemplates
) -> None:
    pg_admin = request.getfixturevalue("pg_admin") if backend == "postgresql" else None
    budget, steps = SETTINGS[backend]
    with tempfile.TemporaryDirectory() as tmp:
        opener = fresh_databases(backend, Path(tmp), pg_admin, migrated)
        machine = type(
            f"RingMachine_{backend}", (RingMachine,), {"open_store": staticmethod(opener)}
        )
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples(budget),
                stateful_step_count=steps,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            ),
        )
