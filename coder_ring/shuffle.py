"""The ring maths: incremental Fisher-Yates steps over a sparse table, with no I/O.

Position p of a cycle initially holds value p (the p-th code of the ring's
:class:`~coder_ring.profanity.CodeSpace`). Only positions whose value differs from
that are stored. Positions below ``boundary`` hold the values not yet issued in
the current cycle. One step picks r uniformly in [0, boundary), issues the value
at r, moves the value at boundary-1 to r and forgets position boundary-1 (it is
beyond the boundary now). So a cycle stores at most one position per code issued,
and none once it is used up.

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
    # A cycle used up (boundary 0) has no stored positions left, so wrapping from it
    # abandons nothing; a bump mid-cycle abandons what is stored.
    wipe, fresh = bump and boundary < total, bump
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
    wipe = wipe or len(segments) > 1 or (bool(segments) and segments[0].fresh)
    return Plan(tuple(segments), CycleState(total, boundary, cycle), wipe and state.boundary > 0)


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
            moved = table.pop(top, top)
            issued.append((value, segment.cycle))
            if pick != top:
                if moved == pick:
                    table.pop(pick, None)
                else:
                    table[pick] = moved
    if plan.wipe:
        return Outcome(issued, True, table, [], plan.state)
    upserts = {
        position: value for position, value in table.items() if stored.get(position) != value
    }
    deletes = [position for position in stored if position not in table]
    return Outcome(issued, False, upserts, deletes, plan.state)


def give_back_rows(boundary: int, values: Sequence[int]) -> dict[int, int]:
    """Positions to store when ``values`` go back just above ``boundary``: ``values[i]``
    returns to position ``boundary + i`` (the last code drawn sits lowest)."""
    return {
        position: value
        for position, value in enumerate(values, start=boundary)
        if position != value
    }
