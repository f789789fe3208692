"""The ring maths (coder_ring.shuffle): plan_draw, run_plan and the give-back check, no
I/O.

:class:`Sparse` stores a cycle as the stores do (only the positions whose value is
not their own, read only where the plan says) and checks, against a record of what
each cycle issued kept independently of the maths, that no value is issued twice in a
cycle, that a cycle run to its end issues every value once, that the positions above
the boundary hold what was issued (the latest lowest), and that a cycle keeps at most
two rows per code issued in it.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from coder_ring.shuffle import (
    CycleState,
    RandBelow,
    Segment,
    check_give_back,
    give_back_positions,
    plan_draw,
    run_plan,
)
from tests.harness.tiers import examples


def picks_from(values: list[int]) -> tuple[list[int], RandBelow]:
    """A randbelow that answers ``values`` in turn, and the list of bounds it was asked."""
    answers: Iterator[int] = iter(values)
    asked: list[int] = []

    def randbelow(bound: int) -> int:
        asked.append(bound)
        return next(answers)

    return asked, randbelow


class Sparse:
    """One (ring, extra) as a store keeps it, with an independent record of the cycles."""

    def __init__(self, total: int) -> None:
        self.state = CycleState(total, total, 0)
        self.rows: dict[int, int] = {}
        self.issued: dict[int, list[int]] = {0: []}  # cycle -> values, in issue order
        self.abandoned: set[int] = set()  # cycles a bump left before their end

    def draw(
        self, count: int, randbelow: RandBelow, *, bump: bool = False, within_cycle: bool = False
    ) -> list[tuple[int, int]]:
        if bump:
            self.abandoned.add(self.state.cycle)
        plan = plan_draw(self.state, count, randbelow, bump=bump, within_cycle=within_cycle)
        stored = {position: self.rows[position] for position in plan.reads if position in self.rows}
        outcome = run_plan(plan, stored)
        if outcome.wipe:
            self.rows.clear()
        for position in outcome.deletes:
            del self.rows[position]
        self.rows.update(outcome.upserts)
        self.state = outcome.state
        for value, cycle in outcome.issued:
            self.issued.setdefault(cycle, []).append(value)
        self.issued.setdefault(self.state.cycle, [])
        return outcome.issued

    def give_back(self, values: list[int]) -> None:
        """Return the last ``len(values)`` issued, ``values[0]`` the last drawn."""
        positions = give_back_positions(self.state.boundary, len(values))
        stored = {position: self.rows[position] for position in positions if position in self.rows}
        assert check_give_back(self.state.boundary, values, stored)
        self.state = CycleState(
            self.state.total, self.state.boundary + len(values), self.state.cycle
        )
        current = self.issued[self.state.cycle]
        assert current[len(current) - len(values) :] == values[::-1]
        del current[len(current) - len(values) :]

    def unissued(self) -> list[int]:
        """The values below the boundary (the rest of the cycle)."""
        return [self.rows.get(position, position) for position in range(self.state.boundary)]

    def check(self) -> None:
        total, boundary, cycle = self.state.total, self.state.boundary, self.state.cycle
        for number, values in self.issued.items():
            assert len(values) == len(set(values)), f"cycle {number} issued a value twice"
            assert all(0 <= value < total for value in values)
            if number < cycle and number not in self.abandoned:
                assert sorted(values) == list(range(total)), f"cycle {number} incomplete"
        current = self.issued[cycle]
        assert len(current) == total - boundary
        assert sorted(self.unissued() + current) == list(range(total))
        # Above the boundary: what this cycle issued, the latest lowest.
        above = [self.rows.get(position, position) for position in range(boundary, total)]
        assert above == current[::-1]
        assert all(value != position for position, value in self.rows.items())


# --------------------------------------------------------------------------------------
# Plain examples


def test_steps_go_from_the_top_down_and_store_what_moved() -> None:
    asked, randbelow = picks_from([3, 0, 2])
    plan = plan_draw(CycleState(5, 5, 0), 3, randbelow)
    assert asked == [5, 4, 3]
    assert plan.segments == (Segment(cycle=0, start=5, picks=(3, 0, 2), fresh=False),)
    assert (plan.state, plan.wipe) == (CycleState(5, 2, 0), False)
    assert plan.reads == {0, 2, 3, 4}
    outcome = run_plan(plan, {})
    # Step 1 issues 3 and swaps it with 4 at the top; step 2 issues 0 and swaps it with
    # that 4 (now at 3); step 3 picks its own top and issues 2. Left: 4 at 0, 1 at 1;
    # above the boundary what was issued, the latest lowest: 2 at 2, 0 at 3, 3 at 4.
    assert outcome.issued == [(3, 0), (0, 0), (2, 0)]
    assert (outcome.upserts, outcome.deletes, outcome.wipe) == ({0: 4, 3: 0, 4: 3}, [], False)


def test_rows_that_go_back_to_their_own_value_are_deleted() -> None:
    plan = plan_draw(CycleState(4, 2, 0), 1, lambda _: 0)
    outcome = run_plan(plan, {0: 1, 1: 0})
    assert outcome.issued == [(1, 0)]
    # 1 issued from position 0 goes to its own position 1; 0 comes home to 0.
    assert (outcome.upserts, sorted(outcome.deletes)) == ({}, [0, 1])


def test_the_wrap_is_lazy_and_within_cycle_stops_at_the_end() -> None:
    plan = plan_draw(CycleState(4, 1, 0), 3, lambda _: 0, within_cycle=True)
    assert [len(segment.picks) for segment in plan.segments] == [1]
    # Used up but not wrapped: codes drawn ahead can still go back into cycle 0.
    assert plan.state == CycleState(4, 0, 0)
    plan = plan_draw(plan.state, 3, lambda _: 0, within_cycle=True)
    assert plan.segments == (Segment(1, 4, (0, 0, 0), fresh=True),)
    # The wrap drops cycle 0's rows (what it issued, kept for give-backs until now).
    assert (plan.state, plan.reads, plan.wipe) == (CycleState(4, 1, 1), set(), True)


def test_a_draw_crosses_cycles_without_within_cycle() -> None:
    asked, randbelow = picks_from([0] * 6)
    plan = plan_draw(CycleState(2, 1, 4), 6, randbelow)
    assert asked == [1, 2, 1, 2, 1, 2]
    assert [(s.cycle, s.start, len(s.picks), s.fresh) for s in plan.segments] == [
        (4, 1, 1, False),
        (5, 2, 2, True),
        (6, 2, 2, True),
        (7, 2, 1, True),
    ]
    assert (plan.state, plan.wipe) == (CycleState(2, 1, 7), True)


def test_a_bump_starts_the_next_cycle_and_abandons_the_rows() -> None:
    plan = plan_draw(CycleState(8, 5, 2), 2, lambda n: n - 1, bump=True)
    assert plan.segments == (Segment(3, 8, (7, 6), fresh=True),)
    assert (plan.state, plan.reads, plan.wipe) == (CycleState(8, 6, 3), set(), True)
    outcome = run_plan(plan, {})
    assert outcome.issued == [(7, 3), (6, 3)]
    assert (outcome.wipe, outcome.upserts) == (True, {})
    # A used-up cycle keeps what it issued until it is left: a bump drops it too.
    assert plan_draw(CycleState(8, 0, 2), 1, lambda _: 0, bump=True).wipe


def test_a_give_back_must_name_the_values_issued_from_its_positions() -> None:
    assert give_back_positions(3, 3) == {3, 4, 5}
    # Positions 3.. hold 5, 4 (its own), 9: only exactly that run goes back.
    stored = {3: 5, 5: 9}
    assert check_give_back(3, [5, 4, 9], stored)
    assert check_give_back(3, [5, 4], stored)
    assert check_give_back(0, [], stored)
    assert not check_give_back(3, [5, 9, 4], stored)  # right values, wrong positions
    assert not check_give_back(3, [5, 4, 8], stored)  # 8 was not issued from 5
    assert not check_give_back(3, [4, 9], stored)  # not from the boundary up


def test_every_order_comes_from_exactly_one_sequence_of_picks() -> None:
    # The incremental Fisher-Yates shuffle is uniform: the n! pick sequences give the n!
    # orders, each once, also from a cycle that started with stored rows.
    for start_rows in ({}, {0: 3, 3: 0, 1: 2, 2: 1}):
        orders = set()
        for picks in itertools.product(*(range(bound) for bound in (4, 3, 2, 1))):
            plan = plan_draw(CycleState(4, 4, 0), 4, _answer(picks))
            orders.add(tuple(value for value, _ in run_plan(plan, start_rows).issued))
        assert len(orders) == 24
        assert all(sorted(order) == [0, 1, 2, 3] for order in orders)


def _answer(picks: tuple[int, ...]) -> RandBelow:
    answers = iter(picks)
    return lambda _bound: next(answers)


# --------------------------------------------------------------------------------------
# Properties

DRAWS = st.lists(
    st.tuples(st.integers(1, 70), st.booleans(), st.booleans()).map(
        lambda t: (t[0], t[1] and t[0] % 4 == 0, t[2])  # bump one draw in eight or so
    ),
    max_size=25,
)


@settings(max_examples=examples(300), deadline=None)
@given(total=st.integers(1, 24), draws=DRAWS, seed=st.integers(0, 2**32))
def test_any_draws_never_repeat_within_a_cycle_and_complete_every_cycle(
    total: int, draws: list[tuple[int, bool, bool]], seed: int
) -> None:
    rng = random.Random(seed)
    ring = Sparse(total)
    for count, bump, within_cycle in draws:
        before_rows, before_issued = len(ring.rows), len(ring.issued[ring.state.cycle])
        before_cycle = ring.state.cycle
        issued = ring.draw(count, rng.randrange, bump=bump, within_cycle=within_cycle)
        assert 1 <= len(issued) <= count
        assert len(issued) == count or within_cycle
        ring.check()
        assert len(ring.rows) <= 2 * len(ring.issued[ring.state.cycle])
        if ring.state.cycle == before_cycle:
            added = len(ring.issued[before_cycle]) - before_issued
            assert len(ring.rows) - before_rows <= 2 * added


@settings(max_examples=examples(300), deadline=None)
@given(
    total=st.integers(1, 24),
    draws=DRAWS,
    ahead=st.integers(1, 30),
    back=st.integers(0, 30),
    seed=st.integers(0, 2**32),
)
def test_giving_back_the_last_drawn_lets_the_cycle_complete_exactly(
    total: int, draws: list[tuple[int, bool, bool]], ahead: int, back: int, seed: int
) -> None:
    rng = random.Random(seed)
    ring = Sparse(total)
    for count, bump, within_cycle in draws:
        ring.draw(count, rng.randrange, bump=bump, within_cycle=within_cycle)
    # A pool draws ahead within the cycle, hands some out, gives the rest back.
    drawn = [value for value, _ in ring.draw(ahead, rng.randrange, within_cycle=True)]
    cycle = ring.state.cycle
    back = min(back, len(drawn))
    returned = drawn[len(drawn) - back :][::-1]
    ring.give_back(returned)
    ring.check()
    assert sorted(ring.unissued()) == sorted(set(range(total)) - set(ring.issued[cycle]))
    rest: list[int] = []
    if ring.state.boundary:
        rest = [value for value, _ in ring.draw(total, rng.randrange, within_cycle=True)]
    assert set(returned) <= set(rest)
    assert sorted(ring.issued[cycle]) == list(range(total))
    assert ring.state == CycleState(total, 0, cycle)
    ring.check()


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(1, 24),
    draws=DRAWS,
    values=st.lists(st.integers(0, 23), min_size=1, max_size=6, unique=True),
    seed=st.integers(0, 2**32),
)
def test_no_give_back_but_the_exact_last_draws_passes_the_check(
    total: int, draws: list[tuple[int, bool, bool]], values: list[int], seed: int
) -> None:
    """Whatever a caller claims to give back, the check passes only for the values issued
    last, from the boundary up: anything else (a value never issued, one issued
    elsewhere, the right ones in another order) would be issued twice."""
    rng = random.Random(seed)
    ring = Sparse(total)
    for count, bump, within_cycle in draws:
        ring.draw(count, rng.randrange, bump=bump, within_cycle=within_cycle)
    boundary, current = ring.state.boundary, ring.issued[ring.state.cycle]
    positions = give_back_positions(boundary, len(values))
    stored = {position: ring.rows[position] for position in positions if position in ring.rows}
    fits = boundary + len(values) <= total
    latest = current[len(current) - len(values) :][::-1]
    assert (fits and check_give_back(boundary, values, stored)) == (
        len(latest) == len(values) and values == latest
    )
