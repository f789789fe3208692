"""Give-backs, fencing, reset, rebuild, configuration drift and bad input, on the three
stores (``make_service``: memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from coder_ring import (
    ALPHABET,
    CoderRingError,
    Fenced,
    InvalidInput,
    RingConfig,
    RingMismatch,
    RingService,
    UnknownRing,
)
from tests.harness.shared import ServiceFactory

ONE = RingConfig("one", base_length=1)
OTHER = RingConfig("other", base_length=2)


def state(service: RingService, name: str = "one") -> dict[str, object]:
    return service.status(name).as_dict()


def top_picker(service: RingService) -> RingService:
    """A client of the same database whose every pick is the top position: it issues
    positions from the boundary down, so it shows which value sits where."""
    return RingService(service.store, service.rings, randbelow=lambda n: n - 1)


# --------------------------------------------------------------------------------------
# Give-backs


def test_give_back_puts_each_value_back_at_its_position(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    epoch = service.claim("one").epoch
    drawn = service.draw("one", 5, epoch=epoch, within_cycle=True)
    assert drawn.positions == [31, 30, 29, 28, 27]
    handed_out, unissued = drawn.codes[:2], drawn.codes[2:]
    # The last drawn goes back lowest, at the boundary.
    values = drawn.values[:1:-1]
    assert service.give_back("one", "", values, epoch=epoch, version=drawn.extra.version)
    status = service.status("one")
    assert (status.remaining_in_cycle, status.cycle, status.epoch) == (30, 0, epoch)
    assert status.extras[0].issued == 2
    # Picking the top each time re-issues them from position 29 down: the same order.
    again = top_picker(service).draw("one", 3, epoch=epoch).codes
    assert again == unissued
    rest = service.draw("one", 32, within_cycle=True).codes
    assert len(rest) == 27
    assert sorted(handed_out + again + rest) == sorted(ALPHABET)
    assert service.get_code("one").startswith("X")


def test_the_cycle_yields_exactly_the_given_back_and_the_never_drawn(
    make_service: ServiceFactory,
) -> None:
    service = make_service(OTHER)
    epoch = service.claim("other").epoch
    before = service.get_codes("other", 100)
    drawn = service.draw("other", 40, epoch=epoch, within_cycle=True)
    handed_out = drawn.codes[:15]
    assert service.give_back(
        "other", "", drawn.values[:14:-1], epoch=epoch, version=drawn.extra.version
    )
    assert service.status("other").remaining_in_cycle == 1024 - 115
    rest = service.draw("other", 2000, within_cycle=True).codes
    assert len(rest) == len(set(rest)) == 1024 - 115
    assert set(drawn.codes[15:]) <= set(rest)
    assert not set(rest) & set(before + handed_out)
    service.get_code("other")  # the wrap drops the used-up cycle's rows
    assert service.store.stored_positions("other") <= 2


def test_give_back_at_the_end_of_a_cycle_lands_in_that_cycle(
    make_service: ServiceFactory,
) -> None:
    service = make_service(ONE)
    service.get_codes("one", 28)
    drawn = service.draw("one", 10, within_cycle=True)
    assert len(drawn.codes) == 4
    assert service.status("one").remaining_in_cycle == 0
    record = drawn.ring
    assert service.give_back(
        "one", "", drawn.values[::-1], epoch=record.epoch, version=drawn.extra.version
    )
    again = service.draw("one", 10, within_cycle=True).codes
    assert sorted(again) == sorted(drawn.codes)


def test_give_back_is_refused_after_another_draw_of_that_extra_or_a_claim(
    make_service: ServiceFactory,
) -> None:
    service = make_service(ONE)
    epoch = service.claim("one").epoch
    drawn = service.draw("one", 5, epoch=epoch, within_cycle=True)
    service.get_code("one")  # someone else drew meanwhile
    before = state(service)
    back = drawn.values[:1:-1]
    assert not service.give_back("one", "", back, epoch=epoch, version=drawn.extra.version)
    assert state(service) == before

    drawn = service.draw("one", 5, epoch=epoch, within_cycle=True)
    service.get_code("one", extra="x-")  # another extra does not block it...
    service.claim("one")  # ...but a claim does (the epoch moved on)
    before = state(service)
    back = drawn.values[:1:-1]
    assert not service.give_back("one", "", back, epoch=epoch, version=drawn.extra.version)
    assert not service.give_back("one", "x-", back, epoch=epoch, version=drawn.extra.version)
    assert state(service) == before
    assert before["extras"][1]["remaining_in_cycle"] == 32 - 11  # type: ignore[index]
    # Nothing given back: the 11 drawn are never drawn again in this cycle.
    assert len(service.draw("one", 32, within_cycle=True).codes) == 21


def test_give_back_is_allowed_after_a_draw_of_another_extra(
    make_service: ServiceFactory,
) -> None:
    service = make_service(ONE)
    epoch = service.claim("one").epoch
    drawn = service.draw("one", 6, epoch=epoch, within_cycle=True)
    other = service.get_codes("one", 40, extra="x-")
    assert service.give_back(
        "one", "", drawn.values[:2:-1], epoch=epoch, version=drawn.extra.version
    )
    rest = service.draw("one", 32, within_cycle=True).codes
    assert sorted(drawn.codes[:3] + rest) == sorted(ALPHABET)
    assert set(drawn.codes[3:]) <= set(rest)
    more = service.get_codes("one", 24, extra="x-")
    assert len(set(other + more)) == 64  # the other extra's cycle went on undisturbed


def test_give_back_never_above_the_ring_size_nor_empty(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    drawn = service.draw("one", 2, within_cycle=True)
    epoch, version = drawn.ring.epoch, drawn.extra.version
    before = state(service)
    assert not service.give_back("one", "", [5, 6, 7], epoch=epoch, version=version)
    assert not service.give_back("one", "", [], epoch=epoch, version=version)
    assert not service.give_back("one", "y-", [1], epoch=epoch, version=version)  # never used
    assert state(service) == before


# --------------------------------------------------------------------------------------
# Fencing


def test_claim_increments_the_epoch(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    start = service.status("one").epoch
    first = service.claim("one")
    second = service.claim("one")
    assert (first.epoch, second.epoch) == (start + 1, start + 2)
    assert service.status("one").epoch == start + 2
    assert len(service.draw("one", 3, epoch=second.epoch).codes) == 3


def test_a_stale_epoch_is_fenced_and_writes_nothing(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    old = service.claim("one").epoch
    drawn = service.get_codes("one", 7, extra="ab-")
    new = service.claim("one").epoch
    before = state(service)
    version = service.store.ring_record("one").version  # type: ignore[union-attr]
    with pytest.raises(Fenced, match=f"epoch {new}, not {old}"):
        service.draw("one", 1, epoch=old)
    with pytest.raises(Fenced):
        service.draw("one", 5, epoch=old, extra="ab-", within_cycle=True)
    with pytest.raises(Fenced):
        service.draw("one", 1, epoch=old, extra="new-")  # a new extra is not recorded
    with pytest.raises(Fenced):
        service.draw("one", 1, epoch=new + 1)
    with pytest.raises(Fenced):
        service.reset("one", epoch=old)
    assert state(service) == before
    assert service.store.ring_record("one").version == version  # type: ignore[union-attr]
    rest = service.draw("one", 25, epoch=new, extra="ab-").codes
    assert sorted(code[3:] for code in drawn + rest) == sorted(ALPHABET)


# --------------------------------------------------------------------------------------
# Reset and rebuild


def test_reset_starts_every_extra_over(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    first = service.get_codes("one", 40, extra="hi")
    plain = service.get_codes("one", 5)
    epoch = service.status("one").epoch
    record = service.reset("one")
    assert record.epoch == epoch + 1
    status = service.status("one")
    assert (status.cycle, status.uniquizer, status.extra, status.remaining_in_cycle) == (
        0,
        "",
        "",
        32,
    )
    assert (status.epoch, status.extras, status.stored_positions) == (epoch + 1, (), 0)
    # It may repeat: each extra's first cycle again.
    assert sorted(service.get_codes("one", 32, extra="hi")) == sorted(first[:32])
    assert set(plain) <= set(service.get_codes("one", 32))
    # A holder resetting with its own epoch keeps it.
    assert service.reset("one", epoch=epoch + 1).epoch == epoch + 1
    assert service.status("one").remaining_in_cycle == 32


def test_rebuild_changes_the_shape_drops_the_extras_and_fences(
    make_service: ServiceFactory,
) -> None:
    service = make_service(ONE)
    epoch = service.claim("one").epoch
    service.get_codes("one", 3)
    service.get_codes("one", 3, extra="hi")
    bigger = make_service(replace(ONE, base_length=2), populate=False)
    record = bigger.rebuild("one")
    assert (record.base_length, record.total_codes, record.epoch) == (2, 1024, epoch + 1)
    status = bigger.status("one")
    assert (status.base_length, status.total_codes, status.remaining_in_cycle) == (2, 1024, 1024)
    assert (status.extras, status.stored_positions) == ((), 0)
    assert len(bigger.get_code("one")) == 2
    with pytest.raises(RingMismatch):
        service.get_code("one")
    with pytest.raises(Fenced):
        bigger.draw("one", 1, epoch=epoch)
    # Rebuild with the same shape restarts it too.
    assert bigger.rebuild("one").epoch == epoch + 2
    assert bigger.status("one").remaining_in_cycle == 1024
    assert service.rebuild("one").base_length == 1
    assert len(service.get_code("one")) == 1


def test_ring_mismatch_on_draw_populate_claim_and_reset(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    service.get_codes("one", 3)
    before = state(service)
    for changed in (replace(ONE, base_length=2), replace(ONE, profanity_filter=True)):
        drifted = make_service(changed, populate=False)
        calls: list[Callable[[], object]] = [
            lambda s=drifted: s.get_code("one"),
            lambda s=drifted: s.draw("one", 2, extra="new-"),
            lambda s=drifted: s.populate(),
            lambda s=drifted: s.claim("one"),
            lambda s=drifted: s.reset("one"),
        ]
        for call in calls:
            with pytest.raises(RingMismatch) as caught:
                call()
            message = str(caught.value)
            assert "stored with base_length=1, profanity_filter=false" in message
            assert "coder-ring rebuild one" in message
        assert state(service) == before
    assert len(service.get_codes("one", 29)) == 29


# --------------------------------------------------------------------------------------
# Bad input


def test_unknown_ring_names_the_configured_rings(make_service: ServiceFactory) -> None:
    service = make_service(ONE, OTHER)
    service.get_codes("one", 3)
    before = (state(service, "one"), state(service, "other"))
    calls: dict[str, Callable[[Any], object]] = {
        "get_code": service.get_code,
        "get_codes": lambda name: service.get_codes(name, 2),
        "draw": lambda name: service.draw(name, 1),
        "status": service.status,
        "claim": service.claim,
        "reset": service.reset,
        "rebuild": service.rebuild,
        "give_back": lambda name: service.give_back(name, "", [1], epoch=0, version=1),
        "populate": lambda name: service.populate([name]),
    }
    for label, call in calls.items():
        for name in ("nope", "ONE", None, 3):
            with pytest.raises(UnknownRing) as caught:
                call(name)
            message = str(caught.value)
            assert repr(name) in message, (label, message)
            assert "configured rings: one, other" in message, (label, message)
            assert isinstance(caught.value, InvalidInput)
            assert isinstance(caught.value, CoderRingError)
    assert (state(service, "one"), state(service, "other")) == before


BAD_CALLS = [
    # (label, keyword arguments of draw, text the message must contain)
    ("extra int", {"extra": 5}, "5"),
    ("extra None", {"extra": None}, "None"),
    ("extra bytes", {"extra": b"hi"}, "b'hi'"),
    ("extra too long", {"extra": "x" * 33}, repr("x" * 33)),
    ("extra space", {"extra": "a b"}, repr("a b")),
    ("extra tab", {"extra": "a\tb"}, repr("a\tb")),
    ("extra newline", {"extra": "ab\n"}, repr("ab\n")),
    ("extra bell", {"extra": "a\x07"}, repr("a\x07")),
    ("extra DEL", {"extra": "a\x7f"}, repr("a\x7f")),
    ("extra non-ASCII", {"extra": "café"}, repr("café")),
    ("extra NUL", {"extra": "\x00"}, repr("\x00")),
    ("extra ambiguous", {"extra": "X"}, "'X'"),
    ("count 0", {"count": 0}, "0"),
    ("count -1", {"count": -1}, "-1"),
    ("count 10**6", {"count": 10**6}, "1000000"),
    ("count '5'", {"count": "5"}, "'5'"),
    ("count True", {"count": True}, "True"),
    ("count 2.0", {"count": 2.0}, "2.0"),
    ("count None", {"count": None}, "None"),
    ("bump 'yes'", {"bump": "yes"}, "'yes'"),
    ("bump 1", {"bump": 1}, "1"),
    ("bump None", {"bump": None}, "None"),
]


def test_every_bad_input_is_refused_and_changes_nothing(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    codes = service.get_codes("one", 3, extra="x")
    for label, arguments, shown in BAD_CALLS:
        before = (state(service), service.store.stored_positions("one"))
        keywords = dict(arguments)
        count = keywords.pop("count", 1)
        with pytest.raises(InvalidInput) as caught:
            service.draw("one", count, **keywords)
        message = str(caught.value)
        assert shown in message, (label, message)
        assert (state(service), service.store.stored_positions("one")) == before, label
        # The next good draw continues the same cycle of the same extra.
        codes.append(service.get_code("one", extra="x"))
    codes += service.get_codes("one", 32 - len(codes), extra="x")
    assert sorted(codes) == sorted("x" + base for base in ALPHABET)
    assert service.status("one").cycle == 0


@pytest.mark.parametrize(
    ("method", "shown"),
    [
        (lambda s: s.get_code("one", extra="a b"), "'a b'"),
        (lambda s: s.get_code("one", bump="yes"), "'yes'"),
        (lambda s: s.get_codes("one", 0), "0"),
        (lambda s: s.get_codes("one", "5"), "'5'"),
        (lambda s: s.get_codes("one", 3, extra="é"), "'é'"),
        (lambda s: s.get_codes("one", 3, bump=1), "1"),
        (lambda s: s.get_codes("one", 3, extra="26"), "'26'"),
    ],
)
def test_bad_input_through_get_code_and_get_codes(
    make_service: ServiceFactory, method: Callable[[RingService], object], shown: str
) -> None:
    service = make_service(ONE)
    service.get_codes("one", 2)
    before = state(service)
    with pytest.raises(InvalidInput, match=shown):
        method(service)
    assert state(service) == before


@pytest.mark.parametrize(
    ("values", "override", "shown"),
    [
        ([3, 3], {}, "3 is given twice"),
        ([32], {}, "32"),
        ([-1], {}, "-1"),
        (["4"], {}, "'4'"),
        ([True], {}, "True"),
        ("4", {}, "'4'"),
        ([4], {"epoch": "0"}, "'0'"),
        ([4], {"version": None}, "None"),
        ([4], {"version": True}, "True"),
    ],
)
def test_bad_give_back_is_refused_and_changes_nothing(
    make_service: ServiceFactory, values: object, override: dict[str, object], shown: str
) -> None:
    service = make_service(ONE)
    drawn = service.draw("one", 5, within_cycle=True)
    before = (state(service), service.store.stored_positions("one"))
    arguments: dict[str, Any] = {"epoch": drawn.ring.epoch, "version": drawn.extra.version}
    with pytest.raises(InvalidInput) as caught:
        service.give_back("one", "", values, **{**arguments, **override})  # type: ignore[arg-type]
    assert shown in str(caught.value)
    assert (state(service), service.store.stored_positions("one")) == before
