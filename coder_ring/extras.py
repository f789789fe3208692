"""The rule that keeps codes of different extras apart (docs/ring.md, "Extras").

A code is ``extra + uniquizer + base`` and ``uniquizer + base`` is always made of
alphabet characters. So two extras E1 != E2 can produce the same string only when
one is the other followed by alphabet characters only (``E2 == E1 + s``, ``s`` in
the alphabet). An extra is refused when it stands in that relation to an extra the
ring has used; the empty extra counts as always used, so an extra made only of
alphabet characters (``X``, ``26``, ``AB``) is always refused.

0.1.0 accepted such extras. An upgrade hands the one a ring used over to the default
extra (:func:`default_takeover`), so the default extra serves and repeats none of its
codes (README, "Upgrading from 0.1.0").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from coder_ring.alphabet import cycle_of_uniquizer, is_alphabet_text, uniquizer
from coder_ring.errors import ExtraConflict

#: The largest cycle number the SQL stores hold (a signed 64-bit column).
MAX_CYCLE = 2**63 - 1


def ambiguous_prefixes(extra: str) -> list[str]:
    """Every shorter extra that ``extra`` extends by alphabet characters only (the empty
    extra included when ``extra`` is all alphabet), longest first."""
    prefixes = []
    for cut in range(len(extra) - 1, -1, -1):
        if not is_alphabet_text(extra[cut:]):
            break
        prefixes.append(extra[:cut])
    return prefixes


def extends_by_alphabet(longer: str, shorter: str) -> bool:
    """True when ``longer`` is ``shorter`` followed by one or more alphabet characters."""
    return (
        len(longer) > len(shorter)
        and longer.startswith(shorter)
        and is_alphabet_text(longer[len(shorter) :])
    )


def check_unambiguous(ring: str, extra: str, used: Iterable[str]) -> None:
    """Raise :class:`ExtraConflict` when ``extra`` could produce the codes of an extra in
    ``used`` (the ring's used extras; the empty extra always counts as used)."""
    candidates = {"", *used}
    for other in sorted(candidates, key=lambda text: (len(text), text)):
        if other == extra:
            continue
        if extends_by_alphabet(extra, other):
            tail = extra[len(other) :]
        elif extends_by_alphabet(other, extra):
            tail = other[len(extra) :]
        else:
            continue
        raise ExtraConflict(
            f"extra {extra!r} is refused on ring {ring!r}: it could issue the same codes as "
            f"extra {other!r} (they differ by {tail!r}, which is made of alphabet characters "
            "only, like a uniquizer or a base code). Use an extra that differs by a character "
            "outside the alphabet, such as a lowercase letter, '0', '1' or '-'"
        )


@dataclass(frozen=True)
class Takeover:
    """Where the default extra stands after taking over an alphabet-only extra.

    ``cycle``: the default extra's cycle that issues exactly the codes of the old extra's
    latest cycle that has such a twin. ``continues``: that is the old extra's current
    cycle, so the default extra goes on with it where the old extra stopped (its
    boundary and stored positions); otherwise the twin was used up long ago (boundary
    0, nothing stored) and the default extra's next draw starts the cycle after it.
    """

    cycle: int
    continues: bool


def default_takeover(extra: str, cycle: int) -> Takeover | None:
    """What becomes of ``extra`` (made only of alphabet characters; 0.1.0 accepted it), used
    up to its ``cycle``, so that the default extra may serve beside it and never repeats
    one of its codes. None when no cycle of the default extra can issue one of them (the
    extra is simply forgotten: it stays refused, as every alphabet-only extra).

    Its cycle j issued ``extra + uniquizer(j) + base``: the default extra's codes in the
    cycle whose uniquizer is ``extra + uniquizer(j)``, the twin of j, if there is one
    (none when ``extra`` starts with ``X``, the digit 0, except "X"'s cycle 0). Twins
    grow with j, so a default extra at the latest twin, never going back, issues no code
    of ``extra``'s cycles 0 to ``cycle``; and ``extra`` is refused from then on.
    """

    def twin(own: int) -> int | None:
        found = cycle_of_uniquizer(extra + uniquizer(own))
        return found if found is not None and found <= MAX_CYCLE else None

    current = twin(cycle)
    if current is not None:
        return Takeover(current, continues=True)
    # The cycles with a twin are 0 up to some j (or none): find the last below ``cycle``.
    low, high, latest = 0, cycle - 1, None
    while low <= high:
        middle = (low + high) // 2
        found = twin(middle)
        if found is None:
            high = middle - 1
        else:
            low, latest = middle + 1, found
    return None if latest is None else Takeover(latest, continues=False)


def is_legacy_extra(extra: str) -> bool:
    """An extra made only of alphabet characters: only 0.1.0 could have used one."""
    return bool(extra) and is_alphabet_text(extra)
