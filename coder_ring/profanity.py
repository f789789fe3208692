"""The profanity filter, and the initial order of a ring's base codes.

Our own short list of roots that can be spelled with the alphabet (no I, no O).
A code is left out when any root appears in it as a substring after reading the
digits that look like letters as those letters (3=E, 4=A, 5=S, 7=T, 8=B).

A ring's position p initially holds the p-th code of its :class:`CodeSpace`. With the
filter on, that is the p-th *clean* code, found without listing the clean codes: an
Aho-Corasick automaton over the roots tracks which roots a prefix could still complete,
and a table of how many clean completions each automaton state has (per remaining
length, cumulative over the 32 characters) lets :meth:`CodeSpace.render` pick a code
digit by digit with ``bisect`` and :meth:`CodeSpace.rank` count its way back.

Measured with the ``python -m timeit`` commands in tests/unit/test_codespace.py (2-CPU dev
container, best of 5): building every table for ``space_of(8, True)`` takes about
1.1 ms (57 live automaton states), ``render_many`` of 1,000 values at base length 8,
filtered, about 1.5 ms, and 1,000 ``rank`` calls about 1.7 ms.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from functools import lru_cache
from itertools import product

from coder_ring.alphabet import (
    ALPHABET,
    MAX_BASE_LENGTH,
    MIN_BASE_LENGTH,
    code_space,
    decode_base,
    encode_base,
)
from coder_ring.validation import is_int

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

#: Base lengths small enough to list every code (:func:`excluded_values`).
_MAX_LISTED = 4

_LOOKALIKES = str.maketrans({"3": "E", "4": "A", "5": "S", "7": "T", "8": "B"})


def normalize(code: str) -> str:
    """``code`` with look-alike digits read as the letters they resemble."""
    return code.upper().translate(_LOOKALIKES)


def is_profane(code: str) -> bool:
    """True when ``code`` contains a profane root, look-alike digits included."""
    text = normalize(code)
    return any(root in text for root in PROFANE_ROOTS)


_DIGIT_OF: dict[str, int] = {char: digit for digit, char in enumerate(ALPHABET)}


def _automaton() -> tuple[list[list[int]], int]:
    """The Aho-Corasick automaton over the roots as a complete table over raw digits.

    Returns ``(step, live)``: ``step[s][d]`` is the state after reading ALPHABET[d] in
    state s. States 0..live-1 are live (no root matched yet; 0 is the start); every
    state in which a root has matched, directly or through a failure link, is merged
    into the one dead state ``live``, which loops on itself: a profane prefix stays
    profane whatever follows, so nothing needs to tell those states apart.
    """
    # Transitions are over normalized characters, so "5" and "S" lead to the same state.
    symbols = sorted(set(normalize(ALPHABET)))
    children: list[dict[str, int]] = [{}]
    matched = [False]
    for root in PROFANE_ROOTS:
        node = 0
        for char in root:
            if char not in children[node]:
                children[node][char] = len(children)
                children.append({})
                matched.append(False)
            node = children[node][char]
        matched[node] = True
    goto: list[dict[str, int]] = [{} for _ in children]
    fail = [0] * len(children)
    queue: list[int] = []
    for char in symbols:
        goto[0][char] = children[0].get(char, 0)
        if goto[0][char]:
            queue.append(goto[0][char])
    # Breadth first: a failure target is shallower, so its row is complete when needed.
    for node in queue:
        matched[node] = matched[node] or matched[fail[node]]
        for char in symbols:
            child = children[node].get(char)
            if child is None:
                goto[node][char] = goto[fail[node]][char]
            else:
                fail[child] = goto[fail[node]][char]
                goto[node][char] = child
                queue.append(child)
    order = [node for node in range(len(children)) if not matched[node]]
    live = len(order)
    index = {node: position for position, node in enumerate(order)}
    raw = normalize(ALPHABET)
    step = [[index.get(goto[node][char], live) for char in raw] for node in order]
    step.append([live] * len(ALPHABET))
    return step, live


@lru_cache(maxsize=1)
def _tables() -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[tuple[int, ...], ...], ...]]:
    """``(step, cumulative)`` for every length up to ``MAX_BASE_LENGTH``, built once and shared.

    ``cumulative[k][s][d]`` is the number of clean strings of k characters, read from
    state s, whose first character comes before ALPHABET[d] (33 entries, the last being
    the total). Selecting the v-th string is then a bisect per character, and the
    ranks add up exactly in Python ints however large 32**k gets.
    """
    step, live = _automaton()
    counts = [1] * live + [0]  # clean strings of length 0: the empty one, unless dead
    cumulative: list[tuple[tuple[int, ...], ...]] = [()]
    for _ in range(MAX_BASE_LENGTH):
        rows: list[tuple[int, ...]] = []
        for row in step:
            running = [0]
            for target in row:
                running.append(running[-1] + counts[target])
            rows.append(tuple(running))
        rows[live] = (0,) * (len(ALPHABET) + 1)  # nothing clean starts from a dead state
        cumulative.append(tuple(rows))
        counts = [row[-1] for row in rows]
    return tuple(tuple(row) for row in step), tuple(cumulative)


class CodeSpace:
    """The initial order of one ring's base codes: value v in [0, total) is the v-th code
    in ascending order (ascending = ascending decode_base value), skipping profane codes
    when the filter is on.

    Treat it as immutable: :func:`space_of` caches one per shape and shares it.
    """

    __slots__ = ("_cumulative", "_step", "base_length", "profanity_filter", "total")

    base_length: int
    profanity_filter: bool
    total: int

    def __init__(self, base_length: int, profanity_filter: bool) -> None:
        """The space of ``base_length``-character codes (``MIN_BASE_LENGTH`` to
        ``MAX_BASE_LENGTH``), filtered or not."""
        if not is_int(base_length):
            raise ValueError(f"base_length must be an integer, got {base_length!r}")
        if not MIN_BASE_LENGTH <= base_length <= MAX_BASE_LENGTH:
            raise ValueError(
                f"base_length must be from {MIN_BASE_LENGTH} to {MAX_BASE_LENGTH}, "
                f"got {base_length!r}"
            )
        self.base_length = base_length
        self.profanity_filter = bool(profanity_filter)
        step, cumulative = _tables()
        self._step = step
        # Rows for the remaining lengths base_length..1, in the order render reads them.
        self._cumulative = tuple(cumulative[k] for k in range(base_length, 0, -1))
        if self.profanity_filter:
            self.total = cumulative[base_length][0][-1]
        else:
            self.total = code_space(base_length)

    def __repr__(self) -> str:
        return (
            f"CodeSpace(base_length={self.base_length}, "
            f"profanity_filter={self.profanity_filter}, total={self.total})"
        )

    def _bad_value(self, value: object) -> ValueError:
        return ValueError(
            f"value {value!r} is out of range: a {self!r} has values 0 to {self.total - 1}"
        )

    def render(self, value: int) -> str:
        """The ``value``-th code; ValueError unless 0 <= value < total."""
        return self.render_many((value,))[0]

    def render_many(self, values: Sequence[int]) -> list[str]:
        """``[render(v) for v in values]``, with the per-code work inlined for batches."""
        total = self.total
        for value in values:
            if not is_int(value) or not 0 <= value < total:
                raise self._bad_value(value)
        if not self.profanity_filter:
            length = self.base_length
            return [encode_base(value, length) for value in values]
        step, rows_by_length, alphabet = self._step, self._cumulative, ALPHABET
        codes: list[str] = []
        for value in values:
            state, rest, chars = 0, value, []
            for rows in rows_by_length:
                row = rows[state]
                # The last digit whose cumulative count is <= rest; digits leading to
                # no clean completion have zero width and are skipped by bisect_right.
                digit = bisect_right(row, rest) - 1
                rest -= row[digit]
                chars.append(alphabet[digit])
                state = step[state][digit]
            codes.append("".join(chars))
        return codes

    def rank(self, code: str) -> int:
        """The value of ``code``, inverse of :meth:`render`.

        ValueError when ``code`` is not ``base_length`` alphabet characters, or is
        profane in a filtered space (it has no position there).
        """
        if not isinstance(code, str) or len(code) != self.base_length:
            raise ValueError(
                f"code {code!r} must be {self.base_length} characters of the alphabet {ALPHABET}"
            )
        bad = sorted({char for char in code if char not in _DIGIT_OF})
        if bad:
            raise ValueError(
                f"code {code!r} has characters outside the alphabet {ALPHABET}: "
                f"{', '.join(map(repr, bad))}"
            )
        if not self.profanity_filter:
            return decode_base(code)
        step, value, state = self._step, 0, 0
        for rows, char in zip(self._cumulative, code, strict=True):
            digit = _DIGIT_OF[char]
            # Every clean string that starts with a smaller digit here comes before.
            value += rows[state][digit]
            state = step[state][digit]
        if state == len(step) - 1:  # the dead state: a root matched somewhere
            raise ValueError(f"code {code!r} is profane: a filtered space does not hold it")
        return value


@lru_cache(maxsize=2 * (MAX_BASE_LENGTH - MIN_BASE_LENGTH + 1))
def space_of(base_length: int, profanity_filter: bool) -> CodeSpace:
    """The (cached) :class:`CodeSpace` of a ring's shape; ValueError for a base length
    outside ``MIN_BASE_LENGTH`` to ``MAX_BASE_LENGTH``."""
    return CodeSpace(base_length, profanity_filter)


# Raw characters that read as each letter: the letter itself and its look-alike digit.
_READS_AS: dict[str, str] = {letter: letter for letter in ALPHABET}
for _digit, _letter in (("3", "E"), ("4", "A"), ("5", "S"), ("7", "T"), ("8", "B")):
    _READS_AS[_letter] += _digit


def _check_listable(base_length: int) -> None:
    # Listing is for short codes only: 32**5 is already 33 million values.
    if not MIN_BASE_LENGTH <= base_length <= _MAX_LISTED:
        raise ValueError(
            f"base_length must be from {MIN_BASE_LENGTH} to {_MAX_LISTED} to list codes, got "
            f"{base_length!r}; use space_of() for longer codes"
        )


@lru_cache(maxsize=8)
def excluded_values(base_length: int) -> frozenset[int]:
    """Table values of every profane base code of ``base_length`` (1..4) characters.

    Built by placing each root (and its look-alike spellings) at every offset rather
    than by testing all 32**base_length codes. Kept for callers that list a ring;
    :class:`CodeSpace` is the way that scales.
    """
    _check_listable(base_length)
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
    """The table values (decode_base of each code) of a ring of ``base_length`` (1..4),
    ascending: every base code, minus the profane ones when the filter is on."""
    _check_listable(base_length)
    values = range(code_space(base_length))
    if not profanity_filter:
        return list(values)
    excluded = excluded_values(base_length)
    return [value for value in values if value not in excluded]
