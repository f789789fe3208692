"""The code alphabet and the pure functions that turn numbers into code text."""

from __future__ import annotations

#: 32 characters: digits 2-9 and A-Z without I and O (no 0/O or 1/I confusion).
ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
ALPHABET_SIZE = len(ALPHABET)
#: Base lengths a ring may have (32**8 is about 1.1e12 codes).
MIN_BASE_LENGTH = 1
MAX_BASE_LENGTH = 8

# Base-32 digits of the cycle number, then the look-alike substitutions (docs/ring.md).
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUV"
_UNIQUIZER_SUBSTITUTES = str.maketrans({"0": "X", "1": "W", "I": "Y", "O": "Z"})
_UNIQUIZER_DIGITS = str.maketrans({"X": "0", "W": "1", "Y": "I", "Z": "O"})


def code_space(base_length: int) -> int:
    """Number of base codes of ``base_length`` characters (before any filter)."""
    return int(ALPHABET_SIZE**base_length)


def encode_base(value: int, base_length: int) -> str:
    """The base code for table value ``value`` (0 <= value < 32**base_length)."""
    chars = []
    for _ in range(base_length):
        value, digit = divmod(value, ALPHABET_SIZE)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def decode_base(code: str) -> int:
    """Inverse of :func:`encode_base`."""
    value = 0
    for char in code:
        value = value * ALPHABET_SIZE + ALPHABET.index(char)
    return value


def uniquizer(cycle: int) -> str:
    """Prefix of codes issued in ``cycle`` (0 is the first cycle: no prefix).

    Cycle k >= 1 uses the base-32 digits of k-1 with 0->X, 1->W, I->Y, O->Z, so the
    second cycle's codes start with X, the third's with W, and codes grow by one
    character only after 32 further cycles.
    """
    if cycle <= 0:
        return ""
    number = cycle - 1
    digits = []
    while True:
        number, digit = divmod(number, ALPHABET_SIZE)
        digits.append(_DIGITS[digit])
        if number == 0:
            break
    return "".join(reversed(digits)).translate(_UNIQUIZER_SUBSTITUTES)


def cycle_of_uniquizer(text: str) -> int | None:
    """The cycle whose uniquizer is ``text`` (inverse of :func:`uniquizer`), or None when
    no cycle has it: a character outside the alphabet, or ``X`` (the digit 0) leading a
    longer text."""
    if not text:
        return 0
    if not is_alphabet_text(text) or (text[0] == "X" and len(text) > 1):
        return None
    return int(text.translate(_UNIQUIZER_DIGITS), ALPHABET_SIZE) + 1


def is_alphabet_text(text: str) -> bool:
    """True when every character of ``text`` is in :data:`ALPHABET` (True for "")."""
    return all(char in _ALPHABET_SET for char in text)


_ALPHABET_SET = frozenset(ALPHABET)


def format_code(extra: str, cycle: int, value: int, base_length: int) -> str:
    """A whole code of an unfiltered ring: ``extra + uniquizer(cycle) + base``."""
    return extra + uniquizer(cycle) + encode_base(value, base_length)
