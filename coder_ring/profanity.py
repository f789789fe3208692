"""The profanity filter: which base codes a filtered ring leaves out of its table.

Our own short list of roots that can be spelled with the alphabet (no I, no O).
A code is left out when any root appears in it as a substring after reading the
digits that look like letters as those letters (3=E, 4=A, 5=S, 7=T, 8=B).
"""

from __future__ import annotations

from functools import lru_cache
from itertools import product

from coder_ring.alphabet import ALPHABET, code_space, decode_base

#: Roots spelled only with letters of the alphabet, checked as substrings. Kept short
#: on purpose: three-letter roots remove whole families of codes at base length 4.
PROFANE_ROOTS: tuple[str, ...] = (
    "FUCK",
    "FUK",
    "FCK",
    "FUQ",
    "CUNT",
    "KUNT",
    "TWAT",
    "SLUT",
    "SHAT",
    "CRAP",
    "DYKE",
    "FAG",
    "KKK",
    "ASS",
    "NGGR",
    "NGR",
    "CUM",
    "JZZ",
    "DCK",
    "XXX",
    "SEX",
    "WTF",
    "STFU",
    "RAPE",
    "SPAZ",
    "WANK",
    "PRCK",
    "DAMN",
    "TURD",
    "PUSS",
    "TWT",
)

_LOOKALIKES = str.maketrans({"3": "E", "4": "A", "5": "S", "7": "T", "8": "B"})


def normalize(code: str) -> str:
    """``code`` with look-alike digits read as the letters they resemble."""
    return code.upper().translate(_LOOKALIKES)


def is_profane(code: str) -> bool:
    """True when ``code`` contains a profane root, look-alike digits included."""
    text = normalize(code)
    return any(root in text for root in PROFANE_ROOTS)


# Raw characters that read as each letter: the letter itself and its look-alike digit.
_READS_AS: dict[str, str] = {letter: letter for letter in ALPHABET}
for _digit, _letter in (("3", "E"), ("4", "A"), ("5", "S"), ("7", "T"), ("8", "B")):
    _READS_AS[_letter] += _digit


@lru_cache(maxsize=8)
def excluded_values(base_length: int) -> frozenset[int]:
    """Table values of every profane base code of ``base_length`` characters.

    Built by placing each root (and its look-alike spellings) at every offset rather
    than by testing all 32**base_length codes, so filling a filtered ring stays fast.
    """
    excluded: set[int] = set()
    for root in PROFANE_ROOTS:
        if len(root) > base_length:
            continue
        for offset in range(base_length - len(root) + 1):
            slots = [ALPHABET] * base_length
            for index, letter in enumerate(root):
                slots[offset + index] = _READS_AS[letter]
            for chars in product(*slots):
                excluded.add(decode_base("".join(chars)))
    return frozenset(excluded)


def kept_values(base_length: int, profanity_filter: bool) -> list[int]:
    """The table values of a ring, ascending: every base code, minus the profane ones
    when the filter is on."""
    values = range(code_space(base_length))
    if not profanity_filter:
        return list(values)
    excluded = excluded_values(base_length)
    return [value for value in values if value not in excluded]
