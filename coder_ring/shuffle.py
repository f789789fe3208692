"""The ring maths: incremental Fisher-Yates steps, with no I/O.

A ring's table is a permutation of its codes at positions 0..total-1. Positions
below ``boundary`` hold the codes not yet issued in the current cycle. One draw
picks r uniformly in [0, boundary), swaps positions r and boundary-1, issues the
value now at boundary-1 and lowers the boundary. When the boundary is 0 the cycle
is used up; the next draw first starts the next cycle (boundary back to total).
The wrap is lazy so that a worker's drawn-ahead codes never straddle two cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, replace

#: ``randbelow(n)`` returns an int uniformly in [0, n).
RandBelow = Callable[[int], int]


@dataclass(frozen=True)
class CycleState:
    """Where a ring stands: codes left in the cycle, which cycle, and the last extra."""

    total: int
    boundary: int
    cycle: int
    extra: str


@dataclass(frozen=True)
class Step:
    """One Fisher-Yates step: swap ``pick`` and ``top``; the code issued is at ``top``."""

    pick: int
    top: int
    cycle: int


@dataclass(frozen=True)
class Plan:
    """The steps of one draw call and the state after them."""

    steps: tuple[Step, ...]
    state: CycleState

    def positions(self) -> set[int]:
        """Every table position the steps read or write."""
        touched: set[int] = set()
        for step in self.steps:
            touched.add(step.pick)
            touched.add(step.top)
        return touched


def start_over(state: CycleState, extra: str) -> CycleState:
    """First cycle again, for ``extra`` (a new extra or an operator's reset)."""
    return replace(state, boundary=state.total, cycle=0, extra=extra)


def plan_draw(
    state: CycleState,
    count: int,
    randbelow: RandBelow,
    *,
    extra: str = "",
    bump: bool = False,
    within_cycle: bool = False,
) -> Plan:
    """Plan ``count`` draws from ``state``.

    A new ``extra`` starts the first cycle over; ``bump`` then starts the next cycle.
    With ``within_cycle`` the plan stops at the end of the cycle (after at least one
    code), so it may hold fewer than ``count`` steps.
    """
    if extra != state.extra:
        state = start_over(state, extra)
    boundary, cycle = state.boundary, state.cycle
    if bump:
        boundary, cycle = state.total, cycle + 1
    steps: list[Step] = []
    for _ in range(count):
        if boundary == 0:
            if within_cycle and steps:
                break
            boundary, cycle = state.total, cycle + 1
        steps.append(Step(pick=randbelow(boundary), top=boundary - 1, cycle=cycle))
        boundary -= 1
    return Plan(tuple(steps), replace(state, boundary=boundary, cycle=cycle))


def apply_steps(steps: Iterable[Step], table: MutableMapping[int, int]) -> list[tuple[int, int]]:
    """Run ``steps`` on ``table`` (position -> value; must hold every position the steps
    touch) in place. Returns the issued (value, cycle) pairs in draw order."""
    issued: list[tuple[int, int]] = []
    for step in steps:
        table[step.pick], table[step.top] = table[step.top], table[step.pick]
        issued.append((table[step.top], step.cycle))
    return issued
