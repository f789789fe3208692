"""Extras (docs/ring.md, "Extras"): each (ring, extra) has its own cycle, and an extra that
could issue another used extra's codes is refused. The rule alone, then on the three
stores (``make_service``: memory, SQLite, PostgreSQL)."""

from __future__ import annotations

import pytest

from coder_ring import ALPHABET, ExtraConflict, InvalidInput, RingConfig, RingService
from coder_ring.alphabet import uniquizer
from coder_ring.extras import (
    MAX_CYCLE,
    Takeover,
    ambiguous_prefixes,
    check_unambiguous,
    default_takeover,
    extends_by_alphabet,
)
from tests.harness.shared import ServiceFactory

ONE = RingConfig("one", base_length=1)


# --------------------------------------------------------------------------------------
# The rule


def test_ambiguous_prefixes_are_the_cuts_before_an_alphabet_tail() -> None:
    assert ambiguous_prefixes("") == []
    assert ambiguous_prefixes("X") == [""]
    assert ambiguous_prefixes("AB") == ["A", ""]
    assert ambiguous_prefixes("hi") == []
    assert ambiguous_prefixes("hiX") == ["hi"]
    assert ambiguous_prefixes("26-X9") == ["26-X", "26-"]
    # "0" is not in the alphabet: "2026" could clash with "202" or "20" only, not "".
    assert ambiguous_prefixes("2026") == ["202", "20"]


def test_extends_by_alphabet() -> None:
    assert extends_by_alphabet("hiX", "hi")
    assert extends_by_alphabet("X", "")
    assert not extends_by_alphabet("hi", "hi")
    assert not extends_by_alphabet("hi-", "hi")
    assert not extends_by_alphabet("hiXa", "hi")
    assert not extends_by_alphabet("hi", "hiX")


@pytest.mark.parametrize(
    ("extra", "used", "other"),
    [
        ("X", [], ""),
        ("26", [], ""),
        ("AB", ["hi"], ""),
        ("hiX", ["hi"], "hi"),
        ("26-", ["26-X"], "26-X"),
        ("a-", ["a-W2"], "a-W2"),
    ],
)
def test_check_unambiguous_names_both_extras(extra: str, used: list[str], other: str) -> None:
    with pytest.raises(ExtraConflict) as caught:
        check_unambiguous("one", extra, used)
    message = str(caught.value)
    assert f"extra {extra!r} is refused on ring 'one'" in message
    assert f"same codes as extra {other!r}" in message
    assert isinstance(caught.value, InvalidInput)


@pytest.mark.parametrize(
    ("extra", "used"),
    [("", []), ("hi", []), ("2026", []), ("26-", []), ("26-X", []), ("h", ["hi"]), ("hi-", ["hi"])],
)
def test_check_unambiguous_lets_these_pass(extra: str, used: list[str]) -> None:
    check_unambiguous("one", extra, used)


@pytest.mark.parametrize(
    ("extra", "cycle", "expected"),
    [
        ("26", 0, Takeover(71, continues=True)),  # uniquizer "26"
        ("26", 2, Takeover(2242, continues=True)),  # "26" + "W"
        ("X", 0, Takeover(1, continues=True)),  # "X" + base is the default's cycle 1
        ("X", 5, Takeover(1, continues=False)),  # "XW..." is no uniquizer: only cycle 0
        ("XA", 3, None),  # no uniquizer starts "XA"
        ("ABCDEFGHJKLMN", 0, None),  # its twin is beyond the largest cycle stored
    ],
)
def test_default_takeover(extra: str, cycle: int, expected: Takeover | None) -> None:
    assert default_takeover(extra, cycle) == expected


def test_default_takeover_lands_on_the_latest_twin_a_store_can_hold() -> None:
    # 12 characters: cycle 0's twin fits in 64 bits, cycle 1's (13 digits) does not.
    takeover = default_takeover("ABCDEFGHJKLM", 40)
    assert takeover is not None and not takeover.continues
    assert uniquizer(takeover.cycle) == "ABCDEFGHJKLM" and takeover.cycle <= MAX_CYCLE
    # Every cycle of "2" has a twin: the default extra goes on with the current one.
    for cycle in (0, 1, 31, 32, 33, 5000):
        takeover = default_takeover("2", cycle)
        assert takeover is not None and takeover.continues
        assert uniquizer(takeover.cycle) == "2" + uniquizer(cycle)


# --------------------------------------------------------------------------------------
# On the stores


def test_extras_are_independent_cycles(make_service: ServiceFactory) -> None:
    plain = make_service(ONE)  # one client with "", another with "hi"
    other = make_service(ONE, populate=False)
    a_codes: list[str] = []
    b_codes: list[str] = []
    for index in range(32):
        a_codes.append(plain.get_code("one"))
        b_codes += other.get_codes("one", 1 + index % 3, extra="hi")
    assert sorted(a_codes) == sorted(ALPHABET)  # A's cycle is untouched by B's draws
    assert len(b_codes) == len(set(b_codes)) == 63
    assert all(code.startswith("hi") for code in b_codes)
    assert {code[2:] for code in b_codes[:32]} == set(ALPHABET)
    assert all(code.startswith("hiX") for code in b_codes[32:])
    by_extra = {extra.extra: extra for extra in plain.status("one").extras}
    assert (by_extra[""].cycle, by_extra[""].remaining_in_cycle) == (0, 0)
    assert (by_extra["hi"].cycle, by_extra["hi"].remaining_in_cycle) == (1, 1)


def test_going_back_to_an_extra_continues_where_it_stopped(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    first = service.get_codes("one", 16)
    hi = service.get_codes("one", 40, extra="hi")
    second = service.get_codes("one", 16)
    assert sorted(first + second) == sorted(ALPHABET)
    hi += service.get_codes("one", 24, extra="hi")
    assert len(set(hi)) == 64
    assert service.get_code("one").startswith("X")
    assert service.get_code("one", extra="hi").startswith("hiW")


def state(service: RingService) -> tuple[dict[str, object], int]:
    return service.status("one").as_dict(), service.store.stored_positions("one")


def test_ambiguous_extras_are_refused_and_change_nothing(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    for extra in ("hi", "2026", "26-X"):
        assert len(service.get_codes("one", 3, extra=extra)) == 3
    before = state(service)
    refused = {
        "X": "",
        "26": "",
        "AB": "",
        "hiX": "hi",
        "hiXY": "hi",
        "2026X": "2026",
        "26-X2": "26-X",
        "26-XW": "26-X",
        "26-": "26-X",
    }
    for extra, other in refused.items():
        with pytest.raises(ExtraConflict) as caught:
            service.get_codes("one", 2, extra=extra)
        message = str(caught.value)
        assert repr(extra) in message and f"extra {other!r}" in message, message
        assert state(service) == before, extra
    # Extended by a character outside the alphabet: fine.
    for extra in ("hi-", "hiXa", "h", "26-X-", "2026-", "26-Xa"):
        assert service.get_code("one", extra=extra).startswith(extra)


def test_an_extra_extended_by_a_used_one_is_refused(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    service.get_code("one", extra="26-X")  # fine next to "": "26-" is not alphabet
    service.get_code("one", extra="ab-CD")
    before = state(service)
    for extra, other in (("26-", "26-X"), ("ab-", "ab-CD"), ("ab-C", "ab-CD")):
        with pytest.raises(ExtraConflict, match=f"extra {other!r}"):
            service.get_code("one", extra=extra)
        assert state(service) == before
    # A refused extra was not recorded: its would-be extensions stay free.
    assert service.get_code("one", extra="ab-Cx").startswith("ab-Cx")


def test_the_check_runs_on_every_client_of_the_database(make_service: ServiceFactory) -> None:
    first = make_service(ONE)
    second = make_service(ONE, populate=False)
    first.get_code("one", extra="ab-")
    with pytest.raises(ExtraConflict, match="extra 'ab-'"):
        second.get_code("one", extra="ab-X")
    with pytest.raises(ExtraConflict):
        second.draw("one", 3, extra="ab-X", within_cycle=True, bump=True)
    assert [extra.extra for extra in second.status("one").extras] == ["ab-"]


def test_extras_outside_the_alphabet_pass_together(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    codes = [service.get_code("one", extra=extra) for extra in ("", "hi", "2026", "26-")]
    assert [code[:-1] for code in codes] == ["", "hi", "2026", "26-"]
    assert [extra.extra for extra in service.status("one").extras] == ["26-", "2026", "hi", ""]
