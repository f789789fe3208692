"""What each ring operation does inside its store transaction, written once for every
store (see :mod:`coder_ring.store` for the atomicity the transaction gives).

Arguments are not checked here: :class:`~coder_ring.service.RingService` and
:class:`~coder_ring.ring_server.RingServer` check them at the engine's boundary.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from coder_ring.alphabet import uniquizer
from coder_ring.config import RingConfig
from coder_ring.errors import Fenced, InvalidInput, RingMismatch
from coder_ring.extras import ambiguous_prefixes, check_unambiguous
from coder_ring.profanity import space_of
from coder_ring.shuffle import (
    CycleState,
    RandBelow,
    check_give_back,
    give_back_positions,
    plan_draw,
    run_plan,
)
from coder_ring.store import (
    Drawn,
    ExtraRecord,
    LockedRing,
    PositionChanges,
    RingRecord,
    Store,
)


def new_record(ring: RingConfig) -> RingRecord:
    """The row of a ring never stored before: ready at once (there is nothing to fill)."""
    total = space_of(ring.base_length, ring.profanity_filter).total
    return RingRecord(ring.name, ring.base_length, ring.profanity_filter, total, 0, 0)


def shape(base_length: int, profanity_filter: bool) -> str:
    """``base_length=4, profanity_filter=true``: a ring's shape as the rings file says it."""
    return f"base_length={base_length}, profanity_filter={str(profanity_filter).lower()}"


def check_shape(record: RingRecord, ring: RingConfig) -> None:
    """:class:`RingMismatch` when the stored ring has another shape than ``ring``."""
    if (record.base_length, record.profanity_filter) != (ring.base_length, ring.profanity_filter):
        raise RingMismatch(
            f"ring {ring.name!r} is stored with "
            f"{shape(record.base_length, record.profanity_filter)} but the rings file says "
            f"{shape(ring.base_length, ring.profanity_filter)}: restore the rings file, or run "
            f"`coder-ring rebuild {ring.name}` to restart the ring with the new shape (it may "
            "repeat codes issued before)"
        )


def check_epoch(record: RingRecord, epoch: int | None) -> None:
    """:class:`Fenced` when ``epoch`` is given and is no longer the ring's."""
    if epoch is not None and epoch != record.epoch:
        raise Fenced(
            f"ring {record.name!r} is at epoch {record.epoch}, not {epoch}: another holder "
            "claimed it, or it was reset or rebuilt"
        )


def draw(
    store: Store,
    ring: RingConfig,
    count: int,
    randbelow: RandBelow,
    *,
    extra: str = "",
    bump: bool = False,
    epoch: int | None = None,
    within_cycle: bool = False,
    continues: int | None = None,
) -> Drawn:
    """Issue ``count`` codes of ``ring`` with ``extra`` (fewer only with ``within_cycle``).

    ``continues``: the extra's version the caller's previous draw left; if nothing wrote
    to the extra since, this draw's codes and that one's can go back together, else only
    this draw's can (no caller can give back codes another one was handed)."""
    with store.locked(ring.name, create=new_record(ring), extra=extra) as locked:
        assert locked is not None
        record = locked.record
        check_shape(record, ring)
        check_epoch(record, epoch)
        before = locked.extra(extra)
        if before is None:
            check_unambiguous(
                ring.name, extra, locked.related_extras(extra, ambiguous_prefixes(extra))
            )
            before = ExtraRecord(extra, record.total_codes, 0, 0, 0, record.total_codes)
        plan = plan_draw(
            CycleState(record.total_codes, before.boundary, before.cycle),
            count,
            randbelow,
            bump=bump,
            within_cycle=within_cycle,
        )
        reads = plan.reads
        stored = locked.read_positions(extra, reads) if reads else {}
        outcome = run_plan(plan, stored)
        after_ring = replace(record, version=record.version + 1)
        after = ExtraRecord(
            extra,
            outcome.state.boundary,
            outcome.state.cycle,
            after_ring.version,
            before.issued + len(outcome.issued),
            before.returnable_top
            if continues == before.version and outcome.state.cycle == before.cycle
            else plan.segments[-1].start,
        )
        locked.write_extra(after, PositionChanges(outcome.wipe, outcome.upserts, outcome.deletes))
        locked.write_ring(after_ring)
    render = space_of(record.base_length, record.profanity_filter).render_many
    codes: list[str] = []
    positions: list[int] = []
    cycles: list[int] = []
    values = [value for value, _ in outcome.issued]
    for segment in plan.segments:
        prefix = extra + uniquizer(segment.cycle)
        start, size = len(codes), len(segment.picks)
        codes += [prefix + base for base in render(values[start : start + size])]
        # Step i issues the value that ends up at its top, start - 1 - i.
        positions += range(segment.start - 1, segment.start - 1 - size, -1)
        cycles += [segment.cycle] * size
    return Drawn(codes, values, positions, cycles, after_ring, after)


def claim(store: Store, ring: RingConfig) -> RingRecord:
    """Take the ring over: a new epoch fences every earlier holder's writes."""
    with store.locked(ring.name, create=new_record(ring)) as locked:
        assert locked is not None
        check_shape(locked.record, ring)
        after = replace(
            locked.record, epoch=locked.record.epoch + 1, version=locked.record.version + 1
        )
        locked.write_ring(after)
        return after


@dataclass(frozen=True)
class GiveBack:
    """Drawn-ahead codes of one extra to put back: their ``values``, the last drawn
    first, and the extra's ``version`` after the draws that issued them."""

    extra: str
    values: Sequence[int]
    version: int


def give_back(
    store: Store, ring: RingConfig, returns: Sequence[GiveBack], *, epoch: int
) -> list[bool]:
    """Put each extra's drawn-ahead values back just above its boundary (``values[0]``,
    the last drawn, lowest), in one transaction. Each goes back only if the ring is
    still at ``epoch`` and nothing wrote to that extra since its ``version``; a list of
    which did (the others write nothing).

    :class:`InvalidInput`, writing nothing at all, unless each value is the one the
    latest draws issued from its position: no give-back can put back a code that was
    not issued, or one issued elsewhere in the cycle, so none can make a code issued
    twice.
    """
    done = [False] * len(returns)
    extras = [back.extra for back in returns]
    if len(set(extras)) < len(extras):
        raise InvalidInput(f"invalid give-back: an extra is named twice in {extras!r}")
    if not any(back.values for back in returns):
        return done
    first = next(back.extra for back in returns if back.values)
    with store.locked(ring.name, extra=first) as locked:
        if locked is None or locked.record.epoch != epoch:
            return done
        version = locked.record.version + 1
        for index, back in enumerate(returns):
            done[index] = _put_back(locked, ring, back, version)
        if any(done):
            locked.write_ring(replace(locked.record, version=version))
        return done


def _put_back(locked: LockedRing, ring: RingConfig, back: GiveBack, version: int) -> bool:
    state = locked.extra(back.extra)
    values = back.values
    if not values or state is None or state.version != back.version:
        return False
    if state.boundary + len(values) > state.returnable_top:
        return False  # beyond the caller's own run of draws (or drawn before 0.3.0)
    stored = locked.read_positions(back.extra, give_back_positions(state.boundary, len(values)))
    if not check_give_back(state.boundary, values, stored):
        raise InvalidInput(
            f"invalid give-back to ring {ring.name!r}, extra {back.extra!r}: values "
            f"{reprlib.repr(list(values))} are not the codes last issued from positions "
            f"{state.boundary} up (a give-back returns the latest draws' codes not "
            "handed out, the last drawn first)"
        )
    after = replace(
        state,
        boundary=state.boundary + len(values),
        version=version,
        issued=max(0, state.issued - len(values)),
    )
    # The values already sit at their positions: only the boundary moves.
    locked.write_extra(after, PositionChanges(False, {}, []))
    return True


def reset(store: Store, ring: RingConfig, *, epoch: int | None = None) -> RingRecord:
    """Start every extra of the ring over at its first cycle. A new epoch fences the holder,
    unless ``epoch`` is given (the holder resetting its own ring keeps serving)."""
    with store.locked(ring.name, create=new_record(ring)) as locked:
        assert locked is not None
        check_shape(locked.record, ring)
        check_epoch(locked.record, epoch)
        locked.drop_extras()
        after = replace(
            locked.record,
            epoch=locked.record.epoch + (0 if epoch is not None else 1),
            version=locked.record.version + 1,
        )
        locked.write_ring(after)
        return after


def rebuild(store: Store, ring: RingConfig) -> RingRecord:
    """Give the ring the shape of ``ring`` and start it over; fences the holder."""
    fresh = new_record(ring)
    with store.locked(ring.name, create=fresh) as locked:
        assert locked is not None
        locked.drop_extras()
        after = replace(fresh, epoch=locked.record.epoch + 1, version=locked.record.version + 1)
        locked.write_ring(after)
        return after


def register(store: Store, ring: RingConfig) -> RingRecord:
    """The ring's row, inserted when absent; :class:`RingMismatch` if its shape changed."""
    existing = store.ring_record(ring.name)
    if existing is None:
        with store.locked(ring.name, create=new_record(ring)) as locked:
            assert locked is not None
            existing = locked.record
    check_shape(existing, ring)
    return existing
