"""The rule that keeps codes of different extras apart (docs/ring.md, "Extras").

A code is ``extra + uniquizer + base`` and ``uniquizer + base`` is always made of
alphabet characters. So two extras E1 != E2 can produce the same string only when
one is the other followed by alphabet characters only (``E2 == E1 + s``, ``s`` in
the alphabet). An extra is refused when it stands in that relation to an extra the
ring has used; the empty extra counts as always used, so an extra made only of
alphabet characters (``X``, ``26``, ``AB``) is always refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from coder_ring.alphabet import is_alphabet_text
from coder_ring.errors import ExtraConflict


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
