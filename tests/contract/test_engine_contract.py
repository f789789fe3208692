"""The engine's contract, run on the in-memory store, SQLite and PostgreSQL (``make_service``).

Starts with the original library's own tests (on a base_length 1 ring), then draws,
code lengths and the filter, storage, the status model, registering and the schema.
Give-backs, fencing, reset, rebuild and bad input: test_engine_operations.py; extras:
test_extras.py.
"""

from __future__ import annotations

import pytest

from coder_ring import (
    ALPHABET,
    InvalidInput,
    RingConfig,
    RingService,
    RingStatus,
    SchemaMissing,
    SqlStore,
)
from coder_ring.alphabet import uniquizer
from coder_ring.profanity import is_profane, space_of
from tests.harness.shared import ServiceFactory

ONE = RingConfig("one", base_length=1)
OTHER = RingConfig("other", base_length=2)
BASES = set(ALPHABET)


def state(service: RingService, name: str = "one") -> dict[str, object]:
    return service.status(name).as_dict()


# --------------------------------------------------------------------------------------
# The original library's tests


def test_original_a_cycle_draws_each_base_once_then_x_and_each_base(
    make_service: ServiceFactory,
) -> None:
    service = make_service(ONE)
    service.reset("one")
    first = [service.get_code("one") for _ in range(32)]
    assert sorted(first) == sorted(ALPHABET)
    second = [service.get_code("one") for _ in range(32)]
    assert len(set(second)) == 32
    assert {code[0] for code in second} == {"X"}
    assert {code[1:] for code in second} == set(first)
    third = service.get_codes("one", 32)
    assert {code[0] for code in third} == {"W"}
    assert {code[1:] for code in third} == BASES
    status = service.status("one")
    assert (status.cycle, status.uniquizer, status.remaining_in_cycle) == (2, "W", 0)
    assert service.get_code("one")[0] == "2"  # fourth cycle


def test_original_bump_gives_lengths_1_1_2(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    service.reset("one")
    codes = [
        service.get_code("one"),
        service.get_code("one"),
        service.get_code("one", bump=True),
    ]
    assert [len(code) for code in codes] == [1, 1, 2]
    assert codes[2][0] == "X"
    status = service.status("one")
    assert (status.cycle, status.uniquizer, status.remaining_in_cycle) == (1, "X", 31)


def test_original_extra_starts_its_own_cycle(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    service.reset("one")
    plain = [service.get_code("one") for _ in range(16)]
    assert len(set(plain)) == 16
    with_extra = [service.get_code("one", extra="hi") for _ in range(32)]
    assert all(len(code) == 3 and code.startswith("hi") for code in with_extra)
    assert {code[2:] for code in with_extra} == BASES
    after = service.get_code("one", extra="hi")
    assert len(after) == 4
    assert after.startswith("hiX")
    assert after[3] in BASES
    status = service.status("one")
    assert (status.extra, status.cycle, status.remaining_in_cycle) == ("hi", 1, 31)


# --------------------------------------------------------------------------------------
# Draws


def test_get_codes_is_one_transaction_and_crosses_the_cycle(
    make_service: ServiceFactory,
) -> None:
    service = make_service(ONE)
    first = [service.get_code("one") for _ in range(30)]
    version = _version(service)
    drawn = service.draw("one", 5)
    # One write for the whole batch (every committed write bumps the version once).
    assert drawn.ring.version == version + 1 == _version(service)
    assert drawn.extra.version == drawn.ring.version
    codes = drawn.codes
    assert [len(code) for code in codes] == [1, 1, 2, 2, 2]
    assert sorted(first + codes[:2]) == sorted(ALPHABET)
    assert {code[0] for code in codes[2:]} == {"X"}
    assert len({code[1] for code in codes[2:]}) == 3
    assert drawn.cycles == [0, 0, 1, 1, 1]
    status = service.status("one")
    assert (status.cycle, status.uniquizer, status.remaining_in_cycle) == (1, "X", 29)


def _version(service: RingService, name: str = "one") -> int:
    record = service.store.ring_record(name)
    assert record is not None
    return record.version


def test_get_codes_count_bounds(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    codes = service.get_codes("one", 10_000)
    # 10,000 = 312 full cycles of 32 and 16 codes of the 313th; none repeats.
    assert len(codes) == len(set(codes)) == 10_000
    status = service.status("one")
    assert (status.cycle, status.remaining_in_cycle) == (312, 32 - 16)
    assert status.uniquizer == uniquizer(312) == "9N"
    assert codes[-1].startswith("9N")
    assert service.store.stored_positions("one") <= 2 * 16  # at most two rows per code
    assert len(service.get_codes("one", 1)) == 1
    before = state(service)
    with pytest.raises(InvalidInput, match="10001"):
        service.get_codes("one", 10_001)
    assert state(service) == before


def test_within_cycle_stops_at_the_end_of_the_cycle(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    first = service.draw("one", 30, within_cycle=True).codes
    rest = service.draw("one", 5, within_cycle=True).codes
    assert len(rest) == 2
    assert sorted(first + rest) == sorted(ALPHABET)
    status = service.status("one")
    # The wrap is lazy: the used-up cycle stays the current one until the next draw.
    assert (status.cycle, status.remaining_in_cycle) == (0, 0)
    nxt = service.draw("one", 40, within_cycle=True).codes
    assert len(nxt) == 32
    assert {code[0] for code in nxt} == {"X"}
    assert {code[1:] for code in nxt} == BASES


def test_other_rings_are_untouched(make_service: ServiceFactory) -> None:
    service = make_service(ONE, OTHER)
    service.get_codes("one", 40)
    assert state(service, "other")["remaining_in_cycle"] == 1024
    assert len(service.get_code("other")) == 2
    assert service.status("one").remaining_in_cycle == 32 - 8


LENGTHS = [(length, filtered) for length in range(1, 9) for filtered in (False, True)]


@pytest.mark.parametrize(("length", "filtered"), LENGTHS)
def test_every_base_length_with_and_without_the_filter(
    make_service: ServiceFactory, length: int, filtered: bool
) -> None:
    ring = RingConfig("sized", base_length=length, profanity_filter=filtered)
    service = make_service(ring)
    space = space_of(length, filtered)
    status = service.status("sized")
    assert (status.base_length, status.profanity_filter) == (length, filtered)
    assert status.total_codes == space.total == status.remaining_in_cycle
    if length <= 2:
        # Short enough to drain whole cycles: each code of the ring once per cycle.
        codes = service.draw("sized", space.total, within_cycle=True).codes
        assert sorted(codes) == sorted(space.render_many(range(space.total)))
        codes += service.draw("sized", space.total + 1).codes
        assert len(codes) == len(set(codes)) == 2 * space.total + 1
        assert {len(code) for code in codes[space.total : -1]} == {length + 1}
        assert codes[-1].startswith("W")
        return
    codes = service.get_codes("sized", 150) + [service.get_code("sized") for _ in range(150)]
    assert len(set(codes)) == 300
    assert {len(code) for code in codes} == {length}
    assert set("".join(codes)) <= BASES
    if filtered:
        assert not [code for code in codes if is_profane(code)]
        assert space.total < 32**length
    assert service.status("sized").remaining_in_cycle == space.total - 300


def test_a_filtered_ring_drains_its_clean_codes_only(make_service: ServiceFactory) -> None:
    service = make_service(RingConfig("clean", base_length=3, profanity_filter=True))
    total = space_of(3, True).total
    assert total == sum(
        not is_profane(a + b + c) for a in ALPHABET for b in ALPHABET for c in ALPHABET
    )
    codes: list[str] = []
    while len(codes) < total:
        codes += service.draw("clean", 10_000, within_cycle=True).codes
    assert len(codes) == total == len(set(codes))
    assert not [code for code in codes if is_profane(code)]
    # The used-up cycle keeps what it issued (pooled codes can still go back) until the
    # wrap drops it.
    assert service.store.stored_positions("clean") <= total
    assert service.get_code("clean").startswith("X")
    assert service.store.stored_positions("clean") <= 2


# --------------------------------------------------------------------------------------
# Storage: two rows at most per code issued in the current cycle, none once it wraps


def test_rows_grow_by_at_most_two_per_code_and_the_wrap_frees_them(
    make_service: ServiceFactory,
) -> None:
    service = make_service(OTHER)
    store = service.store
    issued, rows = 0, 0
    for size in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 39]:
        service.get_codes("other", size)
        issued += size
        now = store.stored_positions("other")
        assert now <= rows + 2 * size
        assert now <= min(2 * issued, 1024)
        rows = now
    assert issued == 1024 and service.status("other").remaining_in_cycle == 0
    service.get_codes("other", 10)
    assert 0 < store.stored_positions("other") <= 2 * 10
    # A bump abandons the rest of the cycle, and its rows.
    service.get_code("other", bump=True)
    assert store.stored_positions("other") <= 2
    service.get_codes("other", 5, extra="hi")
    assert store.stored_positions("other") <= 2 + 2 * 5
    assert service.status("other").stored_positions == store.stored_positions("other")


# --------------------------------------------------------------------------------------
# The status model, registering, the schema


STATUS_KEYS = {
    "ring",
    "base_length",
    "profanity_filter",
    "total_codes",
    "epoch",
    "extra",
    "cycle",
    "uniquizer",
    "remaining_in_cycle",
    "percent_used",
    "stored_positions",
    "holder",
    "pooled",
    "received",
    "extras",
}
EXTRA_KEYS = {
    "extra",
    "cycle",
    "uniquizer",
    "remaining_in_cycle",
    "percent_used",
    "issued",
    "received",
}


def test_status_model(make_service: ServiceFactory) -> None:
    service = make_service(ONE, populate=False)
    fresh = state(service)
    assert set(fresh) == STATUS_KEYS
    assert fresh == {
        "ring": "one",
        "base_length": 1,
        "profanity_filter": False,
        "total_codes": 32,
        "epoch": 0,
        "extra": "",
        "cycle": 0,
        "uniquizer": "",
        "remaining_in_cycle": 32,
        "percent_used": 0.0,
        "stored_positions": 0,
        "holder": None,
        "pooled": None,
        "received": None,
        "extras": [],
    }
    service.get_codes("one", 40, extra="a-")
    service.get_codes("one", 8)
    service.get_codes("one", 4, extra="b-")
    status = service.status("one")
    assert [extra.extra for extra in status.extras] == ["b-", "", "a-"]  # latest first
    assert all(set(extra.as_dict()) == EXTRA_KEYS | {"pooled"} for extra in status.extras)
    by_extra = {extra.extra: extra for extra in status.extras}
    assert (by_extra["a-"].cycle, by_extra["a-"].uniquizer) == (1, "X")
    assert (by_extra["a-"].remaining_in_cycle, by_extra["a-"].issued) == (24, 40)
    assert (by_extra[""].remaining_in_cycle, by_extra[""].percent_used) == (24, 25.0)
    assert (status.extra, status.cycle, status.remaining_in_cycle) == ("b-", 0, 28)
    assert status.percent_used == 12.5
    assert status.stored_positions == service.store.stored_positions("one") <= 2 * (8 + 8 + 4)
    assert RingStatus.from_dict(status.as_dict()) == status


def test_first_code_right_after_migrate(make_service: ServiceFactory) -> None:
    service = make_service(ONE, OTHER, populate=False)
    assert service.store.ring_record("one") is None
    code = service.get_code("one")
    assert code in BASES
    assert service.status("one").remaining_in_cycle == 31
    assert len(service.get_codes("other", 3, extra="x-")) == 3


def test_populate_is_a_cheap_register(make_service: ServiceFactory) -> None:
    service = make_service(ONE, OTHER, populate=False)
    records = service.populate()
    assert set(records) == {"one", "other"}
    assert (records["one"].total_codes, records["other"].total_codes) == (32, 1024)
    assert (records["one"].base_length, records["one"].epoch) == (1, 0)
    assert service.store.stored_positions("one") == 0
    drawn = service.get_codes("one", 10)
    before = state(service)
    again = service.populate(["one"])
    assert list(again) == ["one"]
    assert again["one"].version > records["one"].version  # the stored row, as it is now
    assert state(service) == before
    rest = service.get_codes("one", 22)
    assert sorted(drawn + rest) == sorted(ALPHABET)


def test_schema_missing_until_migrate_which_is_idempotent(database_url: str) -> None:
    service = RingService(SqlStore(database_url), {"one": ONE})
    try:
        for call in (
            service.populate,
            lambda: service.get_code("one"),
            lambda: service.status("one"),
            lambda: service.claim("one"),
            lambda: service.reset("one"),
        ):
            with pytest.raises(SchemaMissing, match="coder-ring migrate"):
                call()
        service.migrate()
        service.migrate()
        service.get_code("one")
        service.migrate()
        assert service.status("one").remaining_in_cycle == 31
    finally:
        service.close()
