"""The alphabet, the code text (uniquizer included) and the profanity filter."""

from __future__ import annotations

import re
from itertools import product

import pytest

from coder_ring.alphabet import (
    ALPHABET,
    code_space,
    cycle_of_uniquizer,
    decode_base,
    encode_base,
    format_code,
    uniquizer,
)
from coder_ring.profanity import (
    PROFANE_ROOTS,
    excluded_values,
    is_profane,
    kept_values,
    normalize,
)

# Written out here rather than imported: the tests' own reading of docs/ring.md.
LOOKALIKES = str.maketrans({"3": "E", "4": "A", "5": "S", "7": "T", "8": "B"})

#: How many of the 32**4 = 1,048,576 base codes a filtered base_length 4 ring leaves
#: out (the filtered ring has 1,046,673 codes).
FILTERED_OUT_OF_32_POW_4 = 1903


def test_alphabet_is_32_unambiguous_characters() -> None:
    assert len(ALPHABET) == 32
    assert len(set(ALPHABET)) == 32
    assert set(ALPHABET) == set("23456789ABCDEFGHJKLMNPQRSTUVWXYZ")
    assert not set(ALPHABET) & set("01IO")


def test_encode_and_decode_are_inverse_and_ordered() -> None:
    for base_length in (1, 2, 3):
        codes = [encode_base(value, base_length) for value in range(code_space(base_length))]
        assert all(len(code) == base_length and set(code) <= set(ALPHABET) for code in codes)
        assert len(set(codes)) == 32**base_length
        assert [decode_base(code) for code in codes] == list(range(32**base_length))
    assert encode_base(0, 4) == "2222"
    assert encode_base(32**4 - 1, 4) == "ZZZZ"
    assert encode_base(33, 2) == "33"
    assert decode_base("ZZZZ") == 32**4 - 1
    assert code_space(4) == 1_048_576


@pytest.mark.parametrize(
    ("cycle", "expected"),
    [
        (0, ""),
        (1, "X"),  # second cycle
        (2, "W"),  # third cycle
        (3, "2"),
        (10, "9"),
        (11, "A"),
        (19, "Y"),  # digit I
        (25, "Z"),  # digit O
        (32, "V"),
        (33, "WX"),  # codes grow one character only after 32 further cycles
        (34, "WW"),
        (65, "2X"),
        (1024, "VV"),
        (1025, "WXX"),
    ],
)
def test_uniquizer(cycle: int, expected: str) -> None:
    assert uniquizer(cycle) == expected


def test_uniquizers_are_distinct_alphabet_strings_that_grow_only_when_needed() -> None:
    seen = [uniquizer(cycle) for cycle in range(1, 40_000)]
    assert len(set(seen)) == len(seen)
    assert all(set(text) <= set(ALPHABET) for text in seen)
    lengths = [len(text) for text in seen]
    assert lengths == sorted(lengths)
    assert lengths.count(1) == 32
    assert lengths.count(2) == 32 * 32 - 32


def test_cycle_of_uniquizer_inverts_uniquizer() -> None:
    for cycle in [*range(40_000), 2**63 - 1]:
        assert cycle_of_uniquizer(uniquizer(cycle)) == cycle
    assert cycle_of_uniquizer("26") == 71
    # No cycle: a character outside the alphabet, or X (the digit 0) leading.
    assert [cycle_of_uniquizer(text) for text in ("XA", "XX", "26-", "a", "0")] == [None] * 5


def test_format_code() -> None:
    assert format_code("", 0, 0, 4) == "2222"
    assert format_code("24", 2, decode_base("AB"), 2) == "24WAB"


def test_every_profane_root_can_be_spelled_with_the_alphabet() -> None:
    for root in PROFANE_ROOTS:
        assert root == root.upper()
        assert set(root) <= set(ALPHABET), root


def test_normalize_reads_look_alike_digits_as_letters() -> None:
    assert normalize("5LU7") == "SLUT"
    assert normalize("TW47") == "TWAT"
    assert normalize("2345") == "2EAS"
    assert normalize("6789") == "6TB9"
    assert normalize("fuck") == "FUCK"


def _brute_force_excluded(base_length: int) -> set[int]:
    """Every base code tested one by one: the slow definition of the filter."""
    pattern = re.compile("|".join(PROFANE_ROOTS))
    normalized = ALPHABET.translate(LOOKALIKES)
    # product() varies the last character fastest: the n-th code has table value n.
    return {
        value
        for value, chars in enumerate(product(normalized, repeat=base_length))
        if pattern.search("".join(chars))
    }


@pytest.mark.parametrize("base_length", [1, 2, 3])
def test_excluded_values_equal_brute_force(base_length: int) -> None:
    assert excluded_values(base_length) == _brute_force_excluded(base_length)


def test_filter_removes_1903_of_the_1048576_four_character_codes() -> None:
    """A filtered base_length 4 ring holds 1,046,673 codes: 1,903 of 32**4 are left out."""
    brute = _brute_force_excluded(4)
    assert excluded_values(4) == brute
    assert len(brute) == FILTERED_OUT_OF_32_POW_4
    kept = kept_values(4, True)
    assert len(kept) == 32**4 - FILTERED_OUT_OF_32_POW_4 == 1_046_673
    assert kept == sorted(set(range(32**4)) - brute)


def _spellings(word: str) -> set[str]:
    """``word`` with each letter written as itself or as its look-alike digit."""
    digits = {"E": "3", "A": "4", "S": "5", "T": "7", "B": "8"}
    slots = [letter + digits.get(letter, "") for letter in word]
    return {"".join(chars) for chars in product(*slots)}


def test_the_worst_words_and_their_leet_forms_are_never_in_a_filtered_ring() -> None:
    forms = set()
    for word in ("FUCK", "CUNT", "TWAT", "SLUT"):
        forms |= _spellings(word)
    assert {"5LU7", "SLU7", "5LUT", "TW47", "7W4T", "7WA7", "CUN7"} <= forms
    assert len(forms) == 1 + 2 + 8 + 4
    kept = set(kept_values(4, True))
    for form in forms:
        assert is_profane(form), form
        assert decode_base(form) not in kept, form
    # ...and not as part of a longer code either (base_length 4 leaves no room, so
    # check the three-character roots and a word inside a 5-character text).
    assert is_profane("X5LU7") and is_profane("TW47Z") and is_profane("2A55")


def test_unfiltered_ring_keeps_every_code_and_clean_codes_stay() -> None:
    assert kept_values(3, False) == list(range(32**3))
    assert kept_values(1, True) == list(range(32))
    assert kept_values(2, True) == list(range(32**2))  # no root is shorter than 3
    kept = set(kept_values(4, True))
    for clean in ("8CH4", "GU96", "2222", "ZZZZ", "SLUG", "TWA2"):
        assert not is_profane(clean), clean
        assert decode_base(clean) in kept, clean


@pytest.mark.parametrize("base_length", [0, 5, 8])
def test_listing_is_refused_beyond_four_characters(base_length: int) -> None:
    """32**5 values are too many to list: longer rings go through space_of()."""
    with pytest.raises(ValueError, match=rf"got {base_length}; use space_of"):
        kept_values(base_length, True)
    with pytest.raises(ValueError, match=rf"got {base_length}; use space_of"):
        excluded_values(base_length)
