"""The ring maths: incremental Fisher-Yates steps over a sparse table, with no I/O.

Position p of a cycle initially holds value p (the p-th code of the ring's
:class:`~coder_ring.profanity.CodeSpace`). Only positions whose value differs from
that are stored. Positions below ``boundary`` hold the values not yet issued in
the current cycle. One step picks r uniformly in [0, boundary), issues the value at
r and swaps it with the value at boundary-1, the top: the classic in-place shuffle.
So positions from the boundary up hold the values issued in this cycle, the latest
lowest, and a give-back can be checked exactly: each value returned must be the one
recorded at its own position (:func:`check_give_back`). A cycle stores at most two
positions per code issued, and its rows go when the next cycle starts.

The wrap to the next cycle is lazy: a used-up cycle stays at boundary 0 until the
next draw, so codes drawn ahead into a worker's pool never straddle two cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

#: ``randbelow(n)`` returns an int uniformly in [0, n).
RandBelow = Callable[[int], int]


@dataclass(frozen=True)
class CycleState:
    """Where one (ring, extra) stands: codes in a cycle, codes left, which cycle."""

    total: int
    boundary: int
    cycle: int


@dataclass(frozen=True)
class Segment:
    """The steps of one draw that fall in one cycle.

    Step i picks ``picks[i]`` and its top is ``start - 1 - i``. ``fresh``: the cycle
    starts within this draw, so no position of it is stored yet.
    """

    cycle: int
    start: int
    picks: tuple[int, ...]
    fresh: bool

    def positions(self) -> set[int]:
        """Every position the steps read: the picks and the tops."""
        return {*self.picks, *range(self.start - len(self.picks), self.start)}


@dataclass(frozen=True)
class Plan:
    """The segments of one draw and the state after them. ``wipe``: the stored positions
    of the cycle the draw started in are abandoned (a bump, or a wrap)."""

    segments: tuple[Segment, ...]
    state: CycleState
    wipe: bool

    @property
    def reads(self) -> set[int]:
        """Stored positions the draw needs: those of its first segment, unless fresh."""
        first = self.segments[0] if self.segments else None
        return set() if first is None or first.fresh else first.positions()


@dataclass(frozen=True)
class Outcome:
    """What a plan issued, and the storage changes that commit it.

    ``issued`` holds (value, cycle) in issue order. Apply ``wipe`` first (drop every
    stored position of the (ring, extra)), then ``deletes`` and ``upserts``.
    """

    issued: list[tuple[int, int]]
    wipe: bool
    upserts: dict[int, int]
    deletes: list[int]
    state: CycleState


def plan_draw(
    state: CycleState,
    count: int,
    randbelow: RandBelow,
    *,
    bump: bool = False,
    within_cycle: bool = False,
) -> Plan:
    """Plan ``count`` steps from ``state``; ``bump`` starts the next cycle first.

    With ``within_cycle`` the plan stops at the end of a cycle once it holds at least
    one step, so it may hold fewer than ``count``.
    """
    total, boundary, cycle = state.total, state.boundary, state.cycle
    fresh = bump
    if bump:
        boundary, cycle = total, cycle + 1
    segments: list[Segment] = []
    picks: list[int] = []
    start = boundary
    for _ in range(count):
        if boundary == 0:
            if within_cycle and (picks or segments):
                break
            if picks:
                segments.append(Segment(cycle, start, tuple(picks), fresh))
            boundary, cycle, fresh, picks = total, cycle + 1, True, []
            start = boundary
        picks.append(randbelow(boundary))
        boundary -= 1
    if picks:
        segments.append(Segment(cycle, start, tuple(picks), fresh))
    # Leaving the cycle (a bump or a wrap) drops its rows: even a used-up cycle keeps
    # what it issued until then.
    wipe = bump or len(segments) > 1 or (bool(segments) and segments[0].fresh)
    return Plan(tuple(segments), CycleState(total, boundary, cycle), wipe)


def run_plan(plan: Plan, stored: Mapping[int, int]) -> Outcome:
    """Run ``plan`` on the stored positions it reads (``stored``: position -> value for
    those of :attr:`Plan.reads` that are stored; the others hold their own position)."""
    issued: list[tuple[int, int]] = []
    table: dict[int, int] = {}
    for index, segment in enumerate(plan.segments):
        table = {} if segment.fresh or index else dict(stored)
        top = segment.start
        for pick in segment.picks:
            top -= 1
            value = table.get(pick, pick)
            issued.append((value, segment.cycle))
            _put(table, pick, table.get(top, top))
            _put(table, top, value)
    if plan.wipe:
        return Outcome(issued, True, table, [], plan.state)
    upserts = {
        position: value for position, value in table.items() if stored.get(position) != value
    }
    deletes = [position for position in stored if position not in table]
    return Outcome(issued, False, upserts, deletes, plan.state)


def _put(table: dict[int, int], position: int, value: int) -> None:
    """Set ``position`` to ``value`` in a sparse table (a value at its own position is
    not stored)."""
    if value == position:
        table.pop(position, None)
    else:
        table[position] = value


def give_back_positions(boundary: int, count: int) -> set[int]:
    """The positions a give-back of ``count`` values checks: the ``count`` just above
    ``boundary``, where the latest draws recorded the values they issued."""
    return set(range(boundary, boundary + count))


def check_give_back(boundary: int, values: Sequence[int], stored: Mapping[int, int]) -> bool:
    """Whether ``values`` are exactly the values recorded just above ``boundary``:
    ``values[i]`` at position ``boundary + i`` (the last drawn sits lowest). ``stored``:
    the stored ones among :func:`give_back_positions` (the others hold their own)."""
    return all(
        stored.get(position, position) == value
        for position, value in enumerate(values, start=boundary)
    )
