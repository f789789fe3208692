"""CodeSpace: the v-th (clean) base code without listing the codes, lengths 1 to 8.

The filtered order is checked against brute force where that is affordable (lengths 1-4
in full) and, at lengths 5-8, against a count written differently (a DP over the last
three normalized characters, no automaton), a scan of consecutive codes, and round trips.

Speed is a benchmark figure, not a test; measured with:

    .venv/bin/python -m timeit -s "from coder_ring.profanity import space_of; \
        import random; s = space_of(8, True); \
        v = [random.randrange(s.total) for _ in range(1000)]" "s.render_many(v)"
    -> about 1.5 ms per 1,000 codes (aim: under 5 ms)

    .venv/bin/python -m timeit -s "from coder_ring.profanity import CodeSpace, _tables" \
        "_tables.cache_clear(); CodeSpace(8, True)"
    -> about 1.1 ms to build the automaton and all count tables (aim: under 50 ms)
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from functools import cache
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coder_ring import profanity
from coder_ring.alphabet import ALPHABET, decode_base, encode_base
from coder_ring.profanity import PROFANE_ROOTS, CodeSpace, _tables, is_profane, space_of
from tests.harness.tiers import examples

# Written out here rather than imported: the tests' own reading of docs/ring.md.
LOOKALIKES = str.maketrans({"3": "E", "4": "A", "5": "S", "7": "T", "8": "B"})
LENGTHS = range(1, 9)


def brute_force_clean(base_length: int) -> list[str]:
    """Every clean code of ``base_length``, ascending, each one tested on its own."""
    pattern = re.compile("|".join(PROFANE_ROOTS))
    codes = ("".join(chars) for chars in product(ALPHABET, repeat=base_length))
    return [code for code in codes if not pattern.search(code.translate(LOOKALIKES))]


@cache
def dp_clean_counts() -> tuple[int, ...]:
    """Clean codes of each length 0..8, counted by a DP whose state is the last three
    normalized characters (no root is longer than four), cut after the last character
    that occurs in no root, since no match can span it."""
    in_roots = set("".join(PROFANE_ROOTS))
    weights: dict[str, int] = {}
    for char in ALPHABET.translate(LOOKALIKES):
        symbol = char if char in in_roots else "."
        weights[symbol] = weights.get(symbol, 0) + 1
    keep = max(map(len, PROFANE_ROOTS)) - 1

    @cache
    def after(tail: str, symbol: str) -> str | None:
        """The state after ``symbol``, or None when a root ends there."""
        text = tail + symbol
        if any(text.endswith(root) for root in PROFANE_ROOTS):
            return None
        return text[-keep:].rpartition(".")[2]

    totals = [1]
    counts = {"": 1}
    for _ in LENGTHS:
        following: dict[str, int] = {}
        for tail, count in counts.items():
            for symbol, weight in weights.items():
                state = after(tail, symbol)
                if state is not None:
                    following[state] = following.get(state, 0) + count * weight
        counts = following
        totals.append(sum(counts.values()))
    return tuple(totals)


# --- unfiltered spaces -------------------------------------------------------------


@pytest.mark.parametrize("base_length", LENGTHS)
def test_unfiltered_space_is_plain_base_32(base_length: int) -> None:
    space = space_of(base_length, False)
    assert (space.base_length, space.profanity_filter) == (base_length, False)
    assert space.total == 32**base_length
    rng = random.Random(base_length)
    values = [0, 1, space.total - 1, *(rng.randrange(space.total) for _ in range(500))]
    codes = space.render_many(values)
    assert codes == [encode_base(value, base_length) for value in values]
    assert [space.render(value) for value in values] == codes
    assert [space.rank(code) for code in codes] == values
    # Unfiltered means unfiltered: profane codes are there too.
    if base_length >= 4:
        code = "FUCK" + "2" * (base_length - 4)
        assert space.rank(code) == decode_base(code)


# --- filtered spaces against brute force (lengths 1-4) -----------------------------


@pytest.mark.parametrize("base_length", [1, 2, 3])
def test_filtered_order_equals_brute_force(base_length: int) -> None:
    space = space_of(base_length, True)
    clean = brute_force_clean(base_length)
    assert space.total == len(clean)
    assert space.render_many(range(space.total)) == clean
    assert [space.rank(code) for code in clean] == list(range(space.total))


@pytest.mark.slow  # brute force over every code: `make test` runs it
def test_filtered_length_4_is_the_known_1046673_codes_in_brute_force_order() -> None:
    """The README's figure: 1,903 of the 32**4 four-character codes are left out."""
    space = space_of(4, True)
    assert space.total == 32**4 - 1903 == 1_046_673
    clean = brute_force_clean(4)  # about a second; the full comparison is affordable
    assert space.render_many(range(space.total)) == clean
    rng = random.Random(4)
    for value in rng.sample(range(space.total), 3000):
        assert space.rank(clean[value]) == value


# --- filtered spaces at lengths 5-8 ------------------------------------------------


@pytest.mark.slow  # brute force over every code: `make test` runs it
def test_dp_count_agrees_with_brute_force_where_both_run() -> None:
    """The test's own counter is trusted at 5-8 only because it matches brute force here."""
    assert dp_clean_counts()[:5] == (1, 32, 32**2, 32**3 - 29, 1_046_673)
    assert dp_clean_counts()[3] == len(brute_force_clean(3))


@pytest.mark.parametrize("base_length", LENGTHS)
def test_filtered_total_equals_an_independent_count(base_length: int) -> None:
    assert space_of(base_length, True).total == dp_clean_counts()[base_length]


@pytest.mark.parametrize("base_length", [5, 6, 7, 8])
@settings(max_examples=examples(60), deadline=None)
@given(data=st.data())
def test_render_is_clean_ordered_and_inverted_by_rank(
    base_length: int, data: st.DataObject
) -> None:
    space = space_of(base_length, True)
    value = data.draw(st.integers(0, space.total - 2), label="value")
    code, following = space.render_many([value, value + 1])
    assert len(code) == base_length and set(code) <= set(ALPHABET)
    assert not is_profane(code) and not is_profane(following)
    assert decode_base(code) < decode_base(following)
    # Nothing clean lies between two consecutive values.
    skipped = range(decode_base(code) + 1, decode_base(following))
    assert len(skipped) < 200_000, "an implausibly long run of profane codes"
    assert all(is_profane(encode_base(raw, base_length)) for raw in skipped)
    assert space.rank(code) == value and space.rank(following) == value + 1


@pytest.mark.parametrize("base_length", [5, 8])
@settings(max_examples=examples(20), deadline=None)
@given(data=st.data())
def test_consecutive_values_are_the_next_clean_codes_found_by_scanning(
    base_length: int, data: st.DataObject
) -> None:
    """From any code, the next 300 values are the next 300 clean codes by a plain scan."""
    space = space_of(base_length, True)
    start = data.draw(st.integers(0, 32**base_length - 1), label="start")
    scanned: list[str] = []
    raw = start
    while len(scanned) < 300 and raw < 32**base_length:
        code = encode_base(raw, base_length)
        if not is_profane(code):
            scanned.append(code)
        raw += 1
    if not scanned:
        return
    first = space.rank(scanned[0])
    assert space.render_many(range(first, first + len(scanned))) == scanned


@pytest.mark.parametrize("base_length", [3, 4, 5, 8])
@settings(max_examples=examples(80), deadline=None)
@given(data=st.data())
def test_rank_refuses_profane_codes_and_inverts_render_on_clean_ones(
    base_length: int, data: st.DataObject
) -> None:
    space = space_of(base_length, True)
    chars = st.sampled_from(ALPHABET)
    code = "".join(data.draw(st.lists(chars, min_size=base_length, max_size=base_length)))
    # Plant a root, in some look-alike spelling, at some offset, most of the time.
    roots = [root for root in PROFANE_ROOTS if len(root) <= base_length]
    if data.draw(st.booleans(), label="plant"):
        root = data.draw(st.sampled_from(roots), label="root")
        digits = {"E": "3", "A": "4", "S": "5", "T": "7", "B": "8"}
        spelled = "".join(
            digits[letter] if letter in digits and data.draw(st.booleans()) else letter
            for letter in root
        )
        offset = data.draw(st.integers(0, base_length - len(root)), label="offset")
        code = code[:offset] + spelled + code[offset + len(root) :]
        assert is_profane(code)
    if is_profane(code):
        with pytest.raises(ValueError, match=re.escape(repr(code))):
            space.rank(code)
    else:
        assert space.render(space.rank(code)) == code


def test_ends_of_the_filtered_spaces() -> None:
    for base_length in LENGTHS:
        space = space_of(base_length, True)
        assert space.render(0) == "2" * base_length
        assert space.render(space.total - 1) == "Z" * base_length
        assert space.rank("Z" * base_length) == space.total - 1


@pytest.fixture
def fresh_tables() -> Iterator[None]:
    """Forget the cached spaces and tables before and after a test that patches roots."""
    space_of.cache_clear()
    _tables.cache_clear()
    yield
    space_of.cache_clear()
    _tables.cache_clear()


@pytest.mark.slow  # brute force over every code: `make test` runs it
def test_roots_inside_other_roots_are_matched_through_failure_links(
    monkeypatch: pytest.MonkeyPatch, fresh_tables: None
) -> None:
    """Today's roots never hold one another mid-word; a future list may. "BC" inside
    "ABCD", "ZZ" inside "XZZY", "SEA" overlapping "EAT" need the failure links."""
    roots = ("ABCD", "BC", "XZZY", "ZZ", "SEA", "EAT", "TTT")
    monkeypatch.setattr(profanity, "PROFANE_ROOTS", roots)
    pattern = re.compile("|".join(roots))
    for base_length in (1, 2, 3, 4):
        space = space_of(base_length, True)
        clean = [
            "".join(chars)
            for chars in product(ALPHABET, repeat=base_length)
            if not pattern.search("".join(chars).translate(LOOKALIKES))
        ]
        assert space.render_many(range(space.total)) == clean
    assert space_of(8, True).total < 32**8
    with pytest.raises(ValueError, match="profane"):
        space_of(5, True).rank("2ABC2")  # "BC" inside, before "ABCD" could complete


# --- bad arguments -----------------------------------------------------------------


@pytest.mark.parametrize("profanity_filter", [False, True])
@pytest.mark.parametrize("base_length", [1, 4, 8])
def test_values_out_of_range_are_refused_by_name(base_length: int, profanity_filter: bool) -> None:
    space = space_of(base_length, profanity_filter)
    for bad in (-1, space.total, space.total + 10**20):
        with pytest.raises(ValueError, match=rf"value {bad} is out of range"):
            space.render(bad)
        with pytest.raises(ValueError, match=rf"value {bad} is out of range"):
            space.render_many([0, bad])
    with pytest.raises(ValueError, match=r"value '3' is out of range"):
        space.render("3")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, 9, -1, 100])
def test_base_lengths_outside_1_to_8_are_refused_by_name(bad: int) -> None:
    for build in (space_of, CodeSpace):
        for profanity_filter in (False, True):
            with pytest.raises(ValueError, match=rf"from 1 to 8, got {bad}\b"):
                build(bad, profanity_filter)


@pytest.mark.parametrize("profanity_filter", [False, True])
@pytest.mark.parametrize(
    ("code", "named"),
    [
        ("2I22", "'I'"),
        ("O222", "'O'"),
        ("ab22", "'a', 'b'"),
        ("22-2", "'-'"),
        ("0122", "'0', '1'"),
    ],
)
def test_codes_with_characters_outside_the_alphabet_are_refused_by_name(
    code: str, named: str, profanity_filter: bool
) -> None:
    space = space_of(4, profanity_filter)
    with pytest.raises(ValueError, match=re.escape(f"code {code!r} has characters")) as caught:
        space.rank(code)
    assert str(caught.value).endswith(named)


@pytest.mark.parametrize("profanity_filter", [False, True])
@pytest.mark.parametrize("code", ["", "222", "22222", "ZZZZZZZZZ"])
def test_codes_of_the_wrong_length_are_refused_by_name(code: str, profanity_filter: bool) -> None:
    with pytest.raises(ValueError, match=re.escape(f"code {code!r} must be 4 characters")):
        space_of(4, profanity_filter).rank(code)


def test_profane_codes_have_no_rank_in_a_filtered_space() -> None:
    for code in ("FUCK", "5LU7", "2A55", "XXX2", "TW47"):
        with pytest.raises(ValueError, match=re.escape(f"code {code!r} is profane")):
            space_of(4, True).rank(code)
    with pytest.raises(ValueError, match="is profane"):
        space_of(8, True).rank("2222FUCK")


# --- caching and speed -------------------------------------------------------------


def test_space_of_is_cached_and_describes_itself() -> None:
    assert space_of(8, True) is space_of(8, True)
    assert space_of(8, True) is not space_of(8, False)
    assert repr(space_of(2, False)) == (
        "CodeSpace(base_length=2, profanity_filter=False, total=1024)"
    )
