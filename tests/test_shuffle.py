"""The ring maths (coder_ring.shuffle), alone and through the real SQLite store.

The central invariant (RING.md): within one cycle of one (ring, extra) no code is
issued twice, and the table stays a permutation of the ring's codes. The model in
these tests tracks, independently of the maths, which values the current cycle has
issued; after every operation the values at and above the boundary must be exactly
those (so no repeat, and a used-up cycle has issued every code once).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from coder_ring import Fenced, RingConfig, RingService, SqlStore
from coder_ring.alphabet import ALPHABET, decode_base, uniquizer
from coder_ring.shuffle import CycleState, apply_steps, plan_draw, start_over

# --------------------------------------------------------------------------------------
# Plain examples


def test_plan_draw_takes_fisher_yates_steps_from_the_top_down() -> None:
    state = CycleState(total=5, boundary=5, cycle=0, extra="")
    picks = iter([3, 0, 2])
    plan = plan_draw(state, 3, lambda n: next(picks))
    assert [(s.pick, s.top, s.cycle) for s in plan.steps] == [(3, 4, 0), (0, 3, 0), (2, 2, 0)]
    assert plan.state == CycleState(total=5, boundary=2, cycle=0, extra="")
    table = {p: 10 * p for p in range(5)}
    issued = apply_steps(plan.steps, table)
    # swap(3,4) issues 30; swap(0,3) issues 0; swap(2,2) issues 20.
    assert issued == [(30, 0), (0, 0), (20, 0)]
    assert table == {0: 40, 1: 10, 2: 20, 3: 0, 4: 30}
    assert plan.positions() == {0, 2, 3, 4}


def test_randbelow_is_asked_for_the_current_boundary() -> None:
    asked: list[int] = []

    def randbelow(n: int) -> int:
        asked.append(n)
        return n - 1

    plan_draw(CycleState(3, 2, 0, ""), 4, randbelow)
    # 2 left in the cycle, then the wrap brings the boundary back to 3.
    assert asked == [2, 1, 3, 2]


def test_wrap_is_lazy_and_within_cycle_stops_at_the_end_of_a_cycle() -> None:
    state = CycleState(total=4, boundary=1, cycle=0, extra="")
    plan = plan_draw(state, 3, lambda n: 0, within_cycle=True)
    assert len(plan.steps) == 1
    # The cycle is used up but not yet wrapped: a give-back still lands in cycle 0.
    assert plan.state == CycleState(total=4, boundary=0, cycle=0, extra="")
    plan = plan_draw(plan.state, 3, lambda n: 0, within_cycle=True)
    assert [s.cycle for s in plan.steps] == [1, 1, 1]
    assert plan.state == CycleState(total=4, boundary=1, cycle=1, extra="")


def test_without_within_cycle_a_draw_crosses_cycles() -> None:
    plan = plan_draw(CycleState(2, 1, 4, "x"), 6, lambda n: 0, extra="x")
    assert [s.cycle for s in plan.steps] == [4, 5, 5, 6, 6, 7]
    assert plan.state == CycleState(2, 1, 7, "x")


def test_new_extra_starts_over_and_bump_moves_to_next_cycle() -> None:
    state = CycleState(total=8, boundary=3, cycle=5, extra="")
    plan = plan_draw(state, 1, lambda n: 0, extra="hi")
    assert plan.steps[0].cycle == 0
    assert plan.state == CycleState(8, 7, 0, "hi")
    plan = plan_draw(plan.state, 1, lambda n: 0, extra="hi", bump=True)
    assert plan.steps[0].cycle == 1
    assert plan.state == CycleState(8, 7, 1, "hi")
    # A new extra and a bump together: the new extra's second cycle.
    plan = plan_draw(plan.state, 1, lambda n: 0, extra="yo", bump=True)
    assert plan.state == CycleState(8, 7, 1, "yo")
    assert start_over(plan.state, "") == CycleState(8, 8, 0, "")


# --------------------------------------------------------------------------------------
# The model shared by the property test and the stateful store test


@dataclass
class CycleModel:
    """What must be true of a ring, tracked without the shuffle maths."""

    total: int
    extra: str = ""
    cycle: int = 0
    #: Values issued in the current cycle, in issue order.
    issued: list[int] = field(default_factory=list)
    #: Values issued by the last draw in the current cycle (what a worker could give back).
    last_draw: list[int] = field(default_factory=list)

    def start_over(self, extra: str) -> None:
        self.extra, self.cycle, self.issued, self.last_draw = extra, 0, [], []

    def before_draw(self, extra: str, bump: bool) -> None:
        if extra != self.extra:
            self.start_over(extra)
        if bump:
            self.cycle += 1
            self.issued = []
        self.last_draw = []

    def issue(self, value: int, cycle: int) -> None:
        if cycle != self.cycle:
            # Only a used-up cycle moves on, and only to the next one.
            assert cycle == self.cycle + 1, (cycle, self.cycle)
            assert len(self.issued) == self.total, "cycle left before all its codes were issued"
            self.cycle, self.issued, self.last_draw = cycle, [], []
        assert value not in self.issued, f"value {value} issued twice in cycle {cycle}"
        self.issued.append(value)
        self.last_draw.append(value)

    def give_back(self, count: int) -> None:
        assert 0 < count <= len(self.last_draw)
        del self.issued[-count:]
        del self.last_draw[-count:]

    @property
    def boundary(self) -> int:
        return self.total - len(self.issued)


def check_table(table: dict[int, int], values: list[int], model: CycleModel) -> None:
    """The table is a permutation of ``values`` and its top holds this cycle's codes."""
    assert sorted(table) == list(range(len(values)))
    assert sorted(table.values()) == values
    above = {table[p] for p in range(model.boundary, model.total)}
    assert above == set(model.issued)


# --------------------------------------------------------------------------------------
# Hypothesis: any sequence of operations on the pure maths

EXTRAS = st.sampled_from(["", "", "a", "bb"])
DRAW = st.tuples(
    st.just("draw"),
    st.integers(1, 70),
    EXTRAS,
    st.sampled_from([False, False, False, True]),  # bump
    st.booleans(),  # within_cycle
)
OPERATION = st.one_of(
    DRAW,
    DRAW,
    DRAW,
    st.tuples(st.just("reset")),
    st.tuples(st.just("give_back"), st.integers(1, 70)),
)


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(1, 40),
    seed=st.integers(0, 2**32),
    operations=st.lists(OPERATION, max_size=40),
)
def test_any_operations_never_repeat_a_code_within_a_cycle(
    total: int, seed: int, operations: list[tuple[object, ...]]
) -> None:
    rng = random.Random(seed)
    # A filtered ring's values are not 0..total-1: use arbitrary distinct values.
    values = sorted(rng.sample(range(4 * total), total))
    shuffled = values[:]
    rng.shuffle(shuffled)
    table = dict(enumerate(shuffled))
    state = CycleState(total=total, boundary=total, cycle=0, extra="")
    model = CycleModel(total)

    def randbelow(n: int) -> int:
        assert 1 <= n <= total
        return rng.randrange(n)

    for operation in operations:
        if operation[0] == "draw":
            _, count, extra, bump, within = operation
            assert isinstance(count, int)
            assert isinstance(extra, str)
            plan = plan_draw(
                state,
                count,
                randbelow,
                extra=extra,
                bump=bool(bump),
                within_cycle=bool(within),
            )
            if within:
                assert 1 <= len(plan.steps) <= count
                assert len({s.cycle for s in plan.steps}) == 1
                if len(plan.steps) < count:
                    assert plan.state.boundary == 0
            else:
                assert len(plan.steps) == count
            for step in plan.steps:
                assert 0 <= step.pick <= step.top < total
            model.before_draw(extra, bool(bump))
            for value, cycle in apply_steps(plan.steps, table):
                model.issue(value, cycle)
            state = plan.state
        elif operation[0] == "reset":
            state = start_over(state, "")
            model.start_over("")
        else:
            wanted = operation[1]
            assert isinstance(wanted, int)
            if not model.last_draw:
                continue
            count = min(wanted, len(model.last_draw))
            state = replace(state, boundary=state.boundary + count)
            model.give_back(count)
        assert (state.boundary, state.cycle, state.extra) == (
            model.boundary,
            model.cycle,
            model.extra,
        )
        check_table(table, values, model)


# --------------------------------------------------------------------------------------
# Hypothesis: the same through the real store (SQLite), with fencing and give-backs

RING = RingConfig("prop", base_length=1)


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Iterator[RingService]:
    service = RingService(SqlStore(f"sqlite:///{tmp_path / 'prop.db'}"), {RING.name: RING})
    service.migrate()
    service.populate()
    yield service
    service.close()


def test_store_keeps_the_invariants_under_any_operations(sqlite_service: RingService) -> None:
    service = sqlite_service
    engine = service.store.engine  # type: ignore[attr-defined]
    values = list(range(len(ALPHABET)))

    def read_table() -> dict[int, int]:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT position, value FROM coder_ring_codes"))
            return dict(rows.all())

    class StoreMachine(RuleBasedStateMachine):
        @initialize()
        def start(self) -> None:
            record = service.reset(RING.name)
            self.model = CycleModel(record.total_codes)
            self.epoch = record.epoch
            self.version = record.version

        def _draw(self, count: int, extra: str, bump: bool, within: bool) -> None:
            drawn = service.draw(
                RING.name,
                count,
                extra=extra,
                bump=bump,
                epoch=self.epoch,
                within_cycle=within,
            )
            model = self.model
            model.before_draw(extra, bump)
            for code in drawn.codes:
                current = extra + uniquizer(model.cycle)
                if code.startswith(current) and len(code) == len(current) + 1:
                    cycle = model.cycle
                else:
                    cycle = model.cycle + 1
                    assert code[:-1] == extra + uniquizer(cycle), code
                model.issue(decode_base(code[-1]), cycle)
            assert len(drawn.codes) == count or (within and drawn.record.boundary == 0)
            self.version = drawn.record.version

        @rule(count=st.integers(1, 40), extra=EXTRAS, bump=st.booleans(), within=st.booleans())
        def draw(self, count: int, extra: str, bump: bool, within: bool) -> None:
            self._draw(count, extra, bump, within)

        @rule()
        def reset(self) -> None:
            record = service.reset(RING.name, epoch=self.epoch)
            assert record.epoch == self.epoch
            self.model.start_over("")
            self.version = record.version

        @rule()
        def claim_then_stale_writes_are_fenced(self) -> None:
            before = service.status(RING.name)
            record = service.claim(RING.name)
            assert record.epoch == self.epoch + 1
            with pytest.raises(Fenced):
                service.draw(RING.name, 1, epoch=self.epoch)
            with pytest.raises(Fenced):
                service.reset(RING.name, epoch=self.epoch)
            assert not service.give_back(RING.name, 1, epoch=self.epoch, version=record.version)
            after = service.status(RING.name)
            assert replace(after, epoch=before.epoch) == before
            self.epoch, self.version = record.epoch, record.version
            self.model.last_draw = []  # the claim changed the version: no give-back now

        @precondition(lambda self: bool(self.model.last_draw))
        @rule(wanted=st.integers(1, 40))
        def give_back(self, wanted: int) -> None:
            count = min(wanted, len(self.model.last_draw))
            assert service.give_back(RING.name, count, epoch=self.epoch, version=self.version)
            self.model.give_back(count)
            record = service.store.record(RING.name)
            assert record is not None
            self.version = record.version

        @precondition(lambda self: bool(self.model.last_draw))
        @rule()
        def give_back_with_an_old_version_fails(self) -> None:
            assert not service.give_back(RING.name, 1, epoch=self.epoch, version=self.version - 1)

        @invariant()
        def state_and_table_match_the_model(self) -> None:
            status = service.status(RING.name)
            model = self.model
            assert (status.remaining_in_cycle, status.cycle, status.extra) == (
                model.boundary,
                model.cycle,
                model.extra,
            )
            assert status.uniquizer == uniquizer(model.cycle)
            check_table(read_table(), values, model)

    run_state_machine_as_test(
        StoreMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
