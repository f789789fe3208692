"""The engine's contract, run on SQLite and on PostgreSQL (``make_service``).

Starts with the original library's own tests (on a base_length 1 ring), then draws,
fencing and give-backs, reset and rebuild, configuration drift, readiness, the schema,
and every bad input.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import text

from coder_ring import (
    ALPHABET,
    CoderRingError,
    Fenced,
    InvalidInput,
    RingConfig,
    RingMismatch,
    RingNotReady,
    RingService,
    SchemaMissing,
    SqlStore,
    UnknownRing,
)
from coder_ring.alphabet import uniquizer
from coder_ring.profanity import is_profane, kept_values
from tests.conftest import ServiceFactory

ONE = RingConfig("one", base_length=1)
OTHER = RingConfig("other", base_length=2)
BASES = set(ALPHABET)


def state(service: RingService, name: str = "one") -> dict[str, object]:
    return service.status(name).as_dict()


def assert_permutation(service: RingService, name: str) -> None:
    """The ring's table holds each of its kept values exactly once, at 0..total-1."""
    status = service.status(name)
    kept = kept_values(status.base_length, status.profanity_filter)
    with service.store.engine.connect() as conn:  # type: ignore[attr-defined]
        row = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT position), min(position), max(position), "
                "count(DISTINCT value), min(value), max(value), sum(value) "
                "FROM coder_ring_codes WHERE ring_id = "
                "(SELECT id FROM coder_ring_rings WHERE name = :name)"
            ),
            {"name": name},
        ).one()
    total = len(kept)
    assert status.total_codes == total
    assert tuple(row) == (total, total, 0, total - 1, total, kept[0], kept[-1], sum(kept))


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
    version = service.store.record("one").version  # type: ignore[union-attr]
    drawn = service.draw("one", 5)
    # One state write for the whole batch (every committed write bumps the version).
    assert drawn.record.version == version + 1
    assert service.store.record("one").version == version + 1  # type: ignore[union-attr]
    codes = drawn.codes
    assert [len(code) for code in codes] == [1, 1, 2, 2, 2]
    assert set(first) | set(codes[:2]) == BASES
    assert len(set(first) | set(codes[:2])) == 32
    assert {code[0] for code in codes[2:]} == {"X"}
    assert len({code[1] for code in codes[2:]}) == 3
    status = service.status("one")
    assert (status.cycle, status.uniquizer, status.remaining_in_cycle) == (1, "X", 29)


def test_get_codes_count_bounds(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    codes = service.get_codes("one", 10_000)
    # 10,000 = 312 full cycles of 32 and 16 codes of the 313th; none repeats.
    assert len(set(codes)) == 10_000
    status = service.status("one")
    assert (status.cycle, status.remaining_in_cycle) == (312, 32 - 16)
    assert status.uniquizer == uniquizer(312) == "9N"
    assert codes[-1].startswith("9N")
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
    assert (status.cycle, status.remaining_in_cycle) == (0, 0)
    nxt = service.draw("one", 40, within_cycle=True).codes
    assert len(nxt) == 32
    assert {code[0] for code in nxt} == {"X"}


def test_new_extra_starts_over_and_status_reports_it(make_service: ServiceFactory) -> None:
    service = make_service(ONE, OTHER)
    service.get_codes("one", 40)
    codes = service.get_codes("one", 3, extra="24")
    assert all(len(code) == 3 and code.startswith("24") for code in codes)
    status = service.status("one")
    assert (status.extra, status.cycle, status.remaining_in_cycle) == ("24", 0, 29)
    # The other ring is untouched.
    assert service.status("other").remaining_in_cycle == 1024
    assert len(service.get_code("other")) == 2


def test_longest_and_punctuated_extras_are_kept_verbatim(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    longest = "Y" * 32
    code = service.get_code("one", extra=longest)
    assert len(code) == 33
    assert code.startswith(longest)
    assert service.status("one").extra == longest
    odd = "a'b;--%_\"\\?:"
    codes = service.get_codes("one", 33, extra=odd)
    assert {code[len(odd) :] for code in codes[:32]} == BASES
    assert codes[32].startswith(odd + "X")
    assert service.status("one").extra == odd


def test_populate_again_writes_nothing_and_keeps_the_cycle(
    make_service: ServiceFactory,
) -> None:
    service = make_service(ONE, OTHER, populate=False)
    assert service.populate() == {"one": 32, "other": 1024}
    drawn = service.get_codes("one", 10)
    before = state(service)
    assert service.populate() == {"one": 0, "other": 0}
    assert service.populate(["one"]) == {"one": 0}
    assert state(service) == before
    rest = service.get_codes("one", 22)
    assert sorted(drawn + rest) == sorted(ALPHABET)
    assert_permutation(service, "one")
    assert_permutation(service, "other")


def test_populate_reports_progress(
    make_service: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("coder_ring.sql.dialects.FILL_CHUNK_ROWS", 10_000)
    service = make_service(RingConfig("big", base_length=3), populate=False)
    seen: list[tuple[int, int]] = []
    service.populate(progress=lambda ring: lambda done, total: seen.append((done, total)))
    assert seen == [(10_000, 32**3), (20_000, 32**3), (30_000, 32**3), (32**3, 32**3)]
    assert_permutation(service, "big")


def test_filtered_ring_never_issues_a_profane_code(make_service: ServiceFactory) -> None:
    ring = RingConfig("clean", base_length=3, profanity_filter=True)
    service = make_service(ring)
    total = len(kept_values(3, True))
    status = service.status("clean")
    assert status.profanity_filter
    assert status.total_codes == total < 32**3
    codes = []
    while len(codes) < total:
        codes += service.draw("clean", 10_000, within_cycle=True).codes
    assert len(codes) == total == len(set(codes))
    assert all(len(code) == 3 for code in codes)
    assert not [code for code in codes if is_profane(code)]
    assert service.get_code("clean").startswith("X")
    assert_permutation(service, "clean")


# --------------------------------------------------------------------------------------
# Fencing and give-backs


def test_claim_increments_the_epoch(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    start = service.status("one").epoch
    first = service.claim("one")
    second = service.claim("one")
    assert (first.epoch, second.epoch) == (start + 1, start + 2)
    assert service.status("one").epoch == start + 2
    assert len(service.draw("one", 3, epoch=second.epoch).codes) == 3


def test_stale_epoch_draw_and_reset_are_fenced_and_write_nothing(
    make_service: ServiceFactory,
) -> None:
    service = make_service(ONE)
    old = service.claim("one").epoch
    drawn = service.get_codes("one", 7, extra="ab")
    new = service.claim("one").epoch
    before = state(service)
    version = service.store.record("one").version  # type: ignore[union-attr]
    with pytest.raises(Fenced, match=f"epoch {old} is stale"):
        service.draw("one", 1, epoch=old)
    with pytest.raises(Fenced):
        service.draw("one", 5, epoch=old, extra="ab", within_cycle=True)
    with pytest.raises(Fenced):
        service.draw("one", 1, epoch=new + 1)
    with pytest.raises(Fenced):
        service.reset("one", epoch=old)
    assert state(service) == before
    assert service.store.record("one").version == version  # type: ignore[union-attr]
    rest = service.draw("one", 25, epoch=new, extra="ab").codes
    assert sorted(code[2:] for code in drawn + rest) == sorted(ALPHABET)


def test_give_back_returns_unissued_codes_to_the_ring(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    epoch = service.claim("one").epoch
    drawn = service.draw("one", 5, epoch=epoch, within_cycle=True)
    handed_out, unissued = drawn.codes[:2], drawn.codes[2:]
    assert service.give_back("one", 3, epoch=epoch, version=drawn.record.version)
    status = service.status("one")
    assert (status.remaining_in_cycle, status.cycle, status.epoch) == (32 - 2, 0, epoch)
    rest = service.draw("one", 32, epoch=epoch, within_cycle=True).codes
    # The cycle goes on with the 3 given back and the 27 never drawn: 30 codes, and
    # with the 2 handed out every base once.
    assert len(rest) == 30
    assert set(unissued) <= set(rest)
    assert not set(handed_out) & set(rest)
    assert sorted(handed_out + rest) == sorted(ALPHABET)
    assert service.draw("one", 1, epoch=epoch).codes[0].startswith("X")


def test_give_back_all_at_the_end_of_a_cycle(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    service.get_codes("one", 28)
    drawn = service.draw("one", 10, within_cycle=True)
    assert len(drawn.codes) == 4
    record = drawn.record
    assert service.give_back("one", 4, epoch=record.epoch, version=record.version)
    again = service.draw("one", 10, within_cycle=True).codes
    assert sorted(again) == sorted(drawn.codes)


def test_give_back_fails_after_another_draw_or_a_claim(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    epoch = service.claim("one").epoch
    drawn = service.draw("one", 5, epoch=epoch, within_cycle=True)
    version = drawn.record.version
    service.get_code("one")  # someone else drew meanwhile
    before = state(service)
    assert not service.give_back("one", 3, epoch=epoch, version=version)
    assert state(service) == before

    drawn = service.draw("one", 5, epoch=epoch, within_cycle=True)
    service.claim("one")
    before = state(service)
    assert not service.give_back("one", 3, epoch=epoch, version=drawn.record.version)
    assert not service.give_back("one", 3, epoch=epoch + 1, version=drawn.record.version)
    assert state(service) == before
    assert before["remaining_in_cycle"] == 32 - 11
    # Nothing given back: the 11 drawn are never drawn again in this cycle.
    assert len(service.draw("one", 32, within_cycle=True).codes) == 21


def test_give_back_never_above_the_ring_size(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    drawn = service.draw("one", 2, within_cycle=True)
    record = drawn.record
    before = state(service)
    assert not service.give_back("one", 3, epoch=record.epoch, version=record.version)
    assert not service.give_back("one", 0, epoch=record.epoch, version=record.version)
    assert state(service) == before


# --------------------------------------------------------------------------------------
# Reset, rebuild, configuration drift, readiness, schema


def test_reset_starts_the_first_cycle_over(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    service.get_codes("one", 40, extra="hi")
    epoch = service.status("one").epoch
    record = service.reset("one")
    assert (record.cycle, record.extra, record.boundary, record.epoch) == (0, "", 32, epoch + 1)
    status = service.status("one")
    assert (status.cycle, status.uniquizer, status.extra, status.remaining_in_cycle) == (
        0,
        "",
        "",
        32,
    )
    assert status.epoch == epoch + 1
    assert sorted(service.get_codes("one", 32)) == sorted(ALPHABET)
    # A holder resetting with its own epoch keeps it.
    assert service.reset("one", epoch=epoch + 1).epoch == epoch + 1
    assert service.status("one").remaining_in_cycle == 32


def test_ring_mismatch_on_draw_populate_and_claim(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    service.get_codes("one", 3)
    before = state(service)
    for changed in (replace(ONE, base_length=2), replace(ONE, profanity_filter=True)):
        drifted = make_service(changed, populate=False)
        for call in (
            lambda s=drifted: s.get_code("one"),
            lambda s=drifted: s.populate(),
            lambda s=drifted: s.claim("one"),
            lambda s=drifted: s.reset("one"),
        ):
            with pytest.raises(RingMismatch) as caught:
                call()
            message = str(caught.value)
            assert "base_length=1" in message
            assert "coder-ring rebuild one" in message
        assert state(service) == before
    assert len(service.get_codes("one", 29)) == 29


def test_rebuild_changes_the_shape_and_fences_the_holder(make_service: ServiceFactory) -> None:
    service = make_service(ONE)
    epoch = service.claim("one").epoch
    service.get_codes("one", 3)
    bigger = make_service(replace(ONE, base_length=2), populate=False)
    assert bigger.rebuild("one") == 1024
    status = bigger.status("one")
    assert (status.base_length, status.total_codes, status.remaining_in_cycle) == (2, 1024, 1024)
    assert (status.cycle, status.extra, status.filled) == (0, "", True)
    assert status.epoch > epoch
    assert len(bigger.get_code("one")) == 2
    assert_permutation(bigger, "one")
    with pytest.raises(RingMismatch):
        service.get_code("one")
    with pytest.raises(RingMismatch):
        service.draw("one", 1, epoch=epoch)
    # Rebuild with the same shape restarts it too.
    assert bigger.rebuild("one") == 1024
    assert bigger.status("one").remaining_in_cycle == 1024


def test_unpopulated_ring_is_not_ready(make_service: ServiceFactory) -> None:
    service = make_service(ONE, populate=False)
    status = service.status("one")
    assert (status.filled, status.total_codes, status.remaining_in_cycle) == (False, 0, 0)
    with pytest.raises(RingNotReady, match="coder-ring populate one"):
        service.get_code("one")
    with pytest.raises(RingNotReady):
        service.get_codes("one", 5)
    with pytest.raises(RingNotReady):
        service.reset("one")
    assert service.populate() == {"one": 32}
    assert service.status("one").filled
    assert sorted(service.get_codes("one", 32)) == sorted(ALPHABET)


def test_schema_missing_until_migrate_which_is_idempotent(database_url: str) -> None:
    service = RingService(SqlStore(database_url), {"one": ONE})
    try:
        for call in (
            service.populate,
            lambda: service.get_code("one"),
            lambda: service.status("one"),
            lambda: service.claim("one"),
        ):
            with pytest.raises(SchemaMissing, match="coder-ring migrate"):
                call()
        service.migrate()
        service.migrate()
        assert service.populate() == {"one": 32}
        service.get_code("one")
        service.migrate()
        assert service.status("one").remaining_in_cycle == 31
    finally:
        service.close()


# --------------------------------------------------------------------------------------
# Bad input


def test_unknown_ring_names_the_configured_rings(make_service: ServiceFactory) -> None:
    service = make_service(ONE, OTHER)
    before = (state(service, "one"), state(service, "other"))
    calls = {
        "get_code": service.get_code,
        "get_codes": lambda name: service.get_codes(name, 2),
        "draw": lambda name: service.draw(name, 1),
        "status": service.status,
        "claim": service.claim,
        "reset": service.reset,
        "rebuild": service.rebuild,
        "give_back": lambda name: service.give_back(name, 1, epoch=1, version=1),
        "populate": lambda name: service.populate([name]),
    }
    for label, call in calls.items():
        for name in ("nope", "ONE", None, 3):
            with pytest.raises(UnknownRing) as caught:
                call(name)
            message = str(caught.value)
            assert repr(name) in message, (label, message)
            assert "one" in message and "other" in message, (label, message)
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
        before = state(service)
        keywords = dict(arguments)
        count = keywords.pop("count", 1)
        with pytest.raises(InvalidInput) as caught:
            service.draw("one", count, **keywords)  # type: ignore[arg-type]
        message = str(caught.value)
        assert shown in message, (label, message)
        assert state(service) == before, label
        # The next good draw continues the same cycle of the same extra.
        codes.append(service.get_code("one", extra="x"))
    # 3 + 21 drawn, then the rest: exactly one cycle of "x" + each base.
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
    ],
)
def test_bad_input_through_get_code_and_get_codes(
    make_service: ServiceFactory, method: object, shown: str
) -> None:
    service = make_service(ONE)
    service.get_codes("one", 2)
    before = state(service)
    with pytest.raises(InvalidInput, match=shown):
        method(service)  # type: ignore[operator]
    assert state(service) == before


def test_draw_expecting_a_version_commits_only_at_that_version(
    make_service: ServiceFactory,
) -> None:
    from coder_ring import Superseded

    service = make_service(RingConfig("one", base_length=1))
    drawn = service.draw("one", 2)
    before = service.status("one")
    with pytest.raises(Superseded):
        service.draw("one", 1, expect_version=drawn.record.version - 1)
    assert service.status("one") == before
    again = service.draw("one", 1, expect_version=drawn.record.version)
    assert again.record.version == drawn.record.version + 1
