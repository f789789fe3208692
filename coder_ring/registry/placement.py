"""Where each ring should be served: a pure function of the members and where the rings
are now. No I/O; :mod:`coder_ring.registry.coordinator` runs it.

The rule, in order:

1. A ring stays where it is while its member is alive, healthy and may serve it
   (sticky: nothing moves without a reason).
2. A ring with no such member goes to the least-loaded member that may serve it
   (ties: the smallest member id). These are failovers and first placements.
3. Only when ``rebalance`` is allowed (the coordinator waits for membership to settle
   first), rings move from the most loaded member to one with at least two fewer, one
   at a time, at most ``max_moves`` per round, until loads differ by at most 1 (as far
   as the members' ring lists allow). A join of one member among n thus moves about
   R/(n+1) rings (each to the newcomer), never a reshuffle. Rings placed in step 2 of
   the same round go first and are not counted as moves (nobody holds them yet).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A member as placement sees it: its id and the rings it may serve."""

    id: str
    rings: frozenset[str]


@dataclass(frozen=True)
class Placement:
    """The assignment (ring -> member id) and what changed to reach it."""

    assignment: dict[str, str]
    placed: int
    moved: int


def place(
    rings: Iterable[str],
    members: Iterable[Candidate],
    current: Mapping[str, str],
    *,
    rebalance: bool,
    max_moves: int,
) -> Placement:
    """The assignment of ``rings`` over ``members`` starting from ``current``."""
    candidates = sorted(members, key=lambda member: member.id)
    by_id = {member.id: member for member in candidates}
    assignment: dict[str, str] = {}
    loads = {member.id: 0 for member in candidates}
    orphans = []
    for ring in sorted(set(rings)):
        holder = by_id.get(current.get(ring, ""))
        if holder is not None and ring in holder.rings:
            assignment[ring] = holder.id
            loads[holder.id] += 1
        else:
            orphans.append(ring)
    placed = 0
    for ring in orphans:
        able = [member.id for member in candidates if ring in member.rings]
        if able:
            target = min(able, key=lambda member_id: (loads[member_id], member_id))
            assignment[ring] = target
            loads[target] += 1
            placed += 1
    # Rings placed in this very round have no holder yet: sending one elsewhere is free
    # (it is still a placement, not a move), so the rebalancing below takes them first and
    # counts only rings that leave a member holding them (the cap bounds real handoffs).
    fresh = {ring for ring in orphans if ring in assignment}
    moved = 0
    while rebalance and moved < max_moves:
        move = _best_move(assignment, loads, by_id, fresh)
        if move is None:
            break
        ring, target = move
        loads[assignment[ring]] -= 1
        loads[target] += 1
        assignment[ring] = target
        if ring not in fresh:
            moved += 1
    return Placement(assignment, placed, moved)


def _best_move(
    assignment: Mapping[str, str],
    loads: Mapping[str, int],
    by_id: Mapping[str, Candidate],
    fresh: set[str],
) -> tuple[str, str] | None:
    """One ring from the most loaded member able to give one to a member with at least two
    fewer rings that may serve it; None when no such move exists. Rings of ``fresh``
    (placed this round) go first."""
    for source in sorted(loads, key=lambda member_id: (-loads[member_id], member_id)):
        # Fresh rings, then highest ring names first: deterministic, and it leaves low
        # names where they are.
        held = sorted((r for r, m in assignment.items() if m == source), reverse=True)
        for ring in sorted(held, key=lambda r: r not in fresh):
            able = [
                member_id
                for member_id, member in by_id.items()
                if ring in member.rings and loads[member_id] <= loads[source] - 2
            ]
            if able:
                return ring, min(able, key=lambda member_id: (loads[member_id], member_id))
    return None
