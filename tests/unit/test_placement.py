"""Placement (:func:`coder_ring.registry.placement.place`) as a pure function: balance, stickiness,
restrictions (``worker RING...``), the cap on moves, what a join or a leave moves, and
determinism; then properties over random members, restrictions and starting points.

No Redis, no processes: the coordinator that runs this is tested in test_registry.py.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coder_ring.registry.placement import Candidate, Placement, place
from tests.harness.tiers import examples

RINGS = [f"r{index:03d}" for index in range(100)]
UNLIMITED = 10_000


def members(*ids: str, rings: Iterable[str] = RINGS) -> list[Candidate]:
    """Members that may all serve ``rings``."""
    allowed = frozenset(rings)
    return [Candidate(member_id, allowed) for member_id in ids]


def loads(assignment: Mapping[str, str], among: Iterable[str] = ()) -> dict[str, int]:
    """Rings per member (members of ``among`` with none count 0)."""
    counted = Counter(assignment.values())
    return {member: counted.get(member, 0) for member in {*among, *counted}}


def spread(result: Placement, among: Iterable[str]) -> list[int]:
    return sorted(loads(result.assignment, among).values())


def converge(
    rings: Iterable[str],
    candidates: list[Candidate],
    current: Mapping[str, str],
    max_moves: int,
) -> tuple[dict[str, str], int, int]:
    """Run rebalancing rounds (each from the last one's assignment) until nothing moves:
    (the assignment, moves in all, rounds that moved something)."""
    assignment, total = dict(current), 0
    for rounds in range(1000):
        result = place(rings, candidates, assignment, rebalance=True, max_moves=max_moves)
        assignment = result.assignment
        if not result.moved:
            return assignment, total, rounds
        total += result.moved
        assert result.moved <= max_moves
    raise AssertionError("placement did not converge in 1000 rounds")


def changed(before: Mapping[str, str], after: Mapping[str, str]) -> set[str]:
    return {ring for ring, member in after.items() if before.get(ring) != member}


# --------------------------------------------------------------------------------------
# Balance


def test_a_first_placement_spreads_100_rings_33_33_34() -> None:
    result = place(RINGS, members("a", "b", "c"), {}, rebalance=False, max_moves=0)
    assert set(result.assignment) == set(RINGS)
    assert spread(result, "abc") == [33, 33, 34]
    assert (result.placed, result.moved) == (100, 0)


@pytest.mark.parametrize(("count", "rings"), [(1, 7), (2, 7), (3, 100), (4, 100), (7, 3)])
def test_loads_differ_by_at_most_one(count: int, rings: int) -> None:
    ids = [f"m{index}" for index in range(count)]
    result = place(RINGS[:rings], members(*ids), {}, rebalance=True, max_moves=UNLIMITED)
    counts = spread(result, ids)
    assert max(counts) - min(counts) <= 1
    assert sum(counts) == rings


def test_rebalancing_evens_out_a_lopsided_start_with_the_fewest_moves() -> None:
    # Everything on "a" (it started first), then "b" and "c" joined: 67 must move.
    current = dict.fromkeys(RINGS, "a")
    assignment, moved, _ = converge(RINGS, members("a", "b", "c"), current, UNLIMITED)
    assert sorted(loads(assignment, "abc").values()) == [33, 33, 34]
    assert moved == len(changed(current, assignment)) == 66  # "a" keeps 34


# --------------------------------------------------------------------------------------
# Stickiness, settle, cap


def test_nothing_moves_without_a_reason() -> None:
    first = place(RINGS, members("a", "b", "c"), {}, rebalance=True, max_moves=UNLIMITED)
    again = place(
        RINGS, members("c", "a", "b"), first.assignment, rebalance=True, max_moves=UNLIMITED
    )
    assert again.assignment == first.assignment
    assert (again.placed, again.moved) == (0, 0)


def test_until_membership_settles_only_orphans_are_placed() -> None:
    # "d" joined, "c" died: c's rings are failovers (placed at once, on the least loaded,
    # "d" first), but nothing else moves while rebalancing waits for membership to settle.
    current = place(RINGS, members("a", "b", "c"), {}, rebalance=False, max_moves=0).assignment
    result = place(RINGS, members("a", "b", "d"), current, rebalance=False, max_moves=UNLIMITED)
    orphans = {ring for ring, member in current.items() if member == "c"}
    assert changed(current, result.assignment) == orphans
    assert result.placed == len(orphans) and result.moved == 0
    assert set(result.assignment.values()) == {"a", "b", "d"}


def test_a_round_moves_at_most_max_moves() -> None:
    current = dict.fromkeys(RINGS, "a")
    result = place(RINGS, members("a", "b", "c"), current, rebalance=True, max_moves=10)
    assert result.moved == 10 == len(changed(current, result.assignment))
    none = place(RINGS, members("a", "b", "c"), current, rebalance=True, max_moves=0)
    assert none.assignment == current and none.moved == 0


def test_capped_rounds_converge_with_the_same_moves() -> None:
    current = place(RINGS, members("a", "b", "c"), {}, rebalance=True, max_moves=0).assignment
    assignment, moved, rounds = converge(RINGS, members("a", "b", "c", "d"), current, 10)
    assert moved == 25 and rounds == 3  # 10 + 10 + 5
    assert sorted(loads(assignment).values()) == [25, 25, 25, 25]


# --------------------------------------------------------------------------------------
# Join and leave


def test_a_join_moves_about_r_over_n_plus_1_rings_all_to_the_newcomer() -> None:
    before = place(RINGS, members("a", "b", "c"), {}, rebalance=True, max_moves=0).assignment
    result = place(RINGS, members("a", "b", "c", "d"), before, rebalance=True, max_moves=UNLIMITED)
    moved = changed(before, result.assignment)
    assert result.moved == len(moved) == 25
    assert {result.assignment[ring] for ring in moved} == {"d"}
    assert spread(result, "abcd") == [25, 25, 25, 25]


def test_a_leave_moves_only_the_rings_of_the_member_that_left() -> None:
    before = place(RINGS, members("a", "b", "c", "d"), {}, rebalance=True, max_moves=0)
    result = place(RINGS, members("a", "b", "c"), before.assignment, rebalance=True, max_moves=99)
    lost = {ring for ring, member in before.assignment.items() if member == "d"}
    assert changed(before.assignment, result.assignment) == lost
    assert (result.placed, result.moved) == (25, 0)
    assert spread(result, "abc") == [33, 33, 34]


def test_a_kill_of_one_of_three_leaves_50_50() -> None:
    before = place(RINGS, members("a", "b", "c"), {}, rebalance=True, max_moves=0).assignment
    result = place(RINGS, members("a", "b"), before, rebalance=True, max_moves=UNLIMITED)
    assert spread(result, "ab") == [50, 50]
    assert result.moved == 0  # only c's rings changed hands, as failovers
    assert changed(before, result.assignment) == {r for r, m in before.items() if m == "c"}


# --------------------------------------------------------------------------------------
# Restrictions (worker RING...)


def test_a_restricted_member_gets_only_rings_it_may_serve() -> None:
    rings = [f"r{index}" for index in range(1, 7)]
    candidates = [
        Candidate("a-restricted", frozenset({"r1", "r2"})),
        Candidate("b-all", frozenset(rings)),
    ]
    result = place(rings, candidates, {}, rebalance=True, max_moves=UNLIMITED)
    assert {r for r, m in result.assignment.items() if m == "a-restricted"} <= {"r1", "r2"}
    # As balanced as the restriction allows: "a" serves both of its rings.
    assert loads(result.assignment) == {"a-restricted": 2, "b-all": 4}


def test_a_ring_nobody_may_serve_is_left_out() -> None:
    candidates = [Candidate("a", frozenset({"r1"})), Candidate("b", frozenset({"r2"}))]
    result = place(["r1", "r2", "r3"], candidates, {"r3": "a"}, rebalance=True, max_moves=9)
    assert result.assignment == {"r1": "a", "r2": "b"}


def test_a_holder_no_longer_allowed_loses_the_ring() -> None:
    # "a" was restarted with `worker r1`: its r2 goes to one that may serve it.
    candidates = [Candidate("a", frozenset({"r1"})), Candidate("b", frozenset({"r1", "r2"}))]
    result = place(["r1", "r2"], candidates, {"r1": "a", "r2": "a"}, rebalance=False, max_moves=0)
    assert result.assignment == {"r1": "a", "r2": "b"}
    assert result.placed == 1


def test_a_ring_held_by_an_unknown_member_is_placed_again() -> None:
    result = place(["r1"], members("a", rings=["r1"]), {"r1": "gone"}, rebalance=False, max_moves=0)
    assert result.assignment == {"r1": "a"} and result.placed == 1


def test_no_member_no_assignment() -> None:
    assert place(RINGS, [], {"r001": "a"}, rebalance=True, max_moves=9) == Placement({}, 0, 0)


# --------------------------------------------------------------------------------------
# Determinism


def test_the_same_inputs_in_any_order_give_the_same_assignment() -> None:
    candidates = [
        *members("m3", "m1", "m2", "m4", rings=RINGS[:60]),
        Candidate("m0", frozenset(RINGS[40:])),
    ]
    current = {ring: f"m{index % 3}" for index, ring in enumerate(RINGS[::3])}
    expected = place(RINGS, candidates, current, rebalance=True, max_moves=7)
    shuffle = random.Random(12)
    for _ in range(5):
        rings, order = list(RINGS), list(candidates)
        shuffle.shuffle(rings)
        shuffle.shuffle(order)
        items = list(current.items())
        shuffle.shuffle(items)
        again = place(rings, order, dict(items), rebalance=True, max_moves=7)
        assert again == expected


# --------------------------------------------------------------------------------------
# Properties


@st.composite
def instances(draw: st.DrawFn) -> tuple[list[str], list[Candidate], dict[str, str]]:
    """Rings, members with random restrictions, and a random starting assignment (that
    may name members that left and rings members may no longer serve)."""
    rings = [f"r{index}" for index in range(draw(st.integers(0, 40)))]
    ids = [f"m{index}" for index in range(draw(st.integers(0, 6)))]
    subsets = st.lists(st.sampled_from(rings), unique=True) if rings else st.just([])
    candidates = [
        Candidate(member_id, frozenset(rings if draw(st.booleans()) else draw(subsets)))
        for member_id in ids
    ]
    holders = st.sampled_from([*ids, "left"])
    current = draw(st.dictionaries(st.sampled_from(rings), holders)) if rings else {}
    return rings, candidates, current


def _valid(current: Mapping[str, str], candidates: list[Candidate]) -> dict[str, str]:
    """The part of ``current`` placement must keep (or count as a move)."""
    by_id = {member.id: member for member in candidates}
    return {
        ring: member
        for ring, member in current.items()
        if member in by_id and ring in by_id[member].rings
    }


@settings(max_examples=examples(300), deadline=None)
@given(instances(), st.booleans(), st.integers(0, 12))
def test_every_servable_ring_goes_to_a_member_that_may_serve_it(
    instance: tuple[list[str], list[Candidate], dict[str, str]], rebalance: bool, max_moves: int
) -> None:
    rings, candidates, current = instance
    result = place(rings, candidates, current, rebalance=rebalance, max_moves=max_moves)
    allowed = {member.id: member.rings for member in candidates}
    servable = {ring for ring in rings if any(ring in can for can in allowed.values())}
    assert set(result.assignment) == servable
    assert all(ring in allowed[member] for ring, member in result.assignment.items())


@settings(max_examples=examples(300), deadline=None)
@given(instances(), st.booleans(), st.integers(0, 12))
def test_only_orphans_and_counted_moves_change_hands(
    instance: tuple[list[str], list[Candidate], dict[str, str]], rebalance: bool, max_moves: int
) -> None:
    rings, candidates, current = instance
    result = place(rings, candidates, current, rebalance=rebalance, max_moves=max_moves)
    kept = _valid(current, candidates)
    moved = {ring for ring, member in kept.items() if result.assignment.get(ring) != member}
    assert len(moved) == result.moved <= (max_moves if rebalance else 0)
    assert result.placed == len(result.assignment) - len(kept)


@settings(max_examples=examples(200), deadline=None)
@given(instances())
def test_converged_placement_is_as_balanced_as_restrictions_allow(
    instance: tuple[list[str], list[Candidate], dict[str, str]],
) -> None:
    rings, candidates, current = instance
    assignment, _, _ = converge(rings, candidates, current, 5)
    counts = loads(assignment, [member.id for member in candidates])
    # No ring could go to a member with two fewer rings that may serve it.
    for ring, member in assignment.items():
        for other in candidates:
            if ring in other.rings:
                assert counts[other.id] >= counts[member] - 1, (ring, member, other.id)
    # Idempotent once converged.
    again = place(rings, candidates, assignment, rebalance=True, max_moves=5)
    assert again.assignment == assignment and again.moved == again.placed == 0


@settings(max_examples=examples(200), deadline=None)
@given(
    st.integers(0, 60),
    st.integers(1, 6),
    st.data(),
)
def test_unrestricted_members_end_within_one_by_the_fewest_moves(
    ring_count: int, member_count: int, data: st.DataObject
) -> None:
    rings = [f"r{index}" for index in range(ring_count)]
    ids = [f"m{index}" for index in range(member_count)]
    current = {ring: data.draw(st.sampled_from(ids)) for ring in rings}
    assignment, moved, _ = converge(rings, members(*ids, rings=rings), current, 4)
    counts = sorted(loads(assignment, ids).values())
    assert counts[-1] - counts[0] <= 1
    # The fewest moves that can reach a spread within one: the q+1 slots go to the most
    # loaded members, every ring beyond a member's slot must move.
    quota, extra = divmod(ring_count, member_count)
    start = sorted(loads(current, ids).values(), reverse=True)
    fewest = sum(
        max(0, load - (quota + 1 if index < extra else quota)) for index, load in enumerate(start)
    )
    assert moved == fewest == len(changed(current, assignment))
