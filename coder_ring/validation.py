"""Checks of caller input. Each raises :class:`InvalidInput` naming the bad value and
what is allowed, before anything is read or written."""

from __future__ import annotations

import re
from typing import TypeGuard

from coder_ring.errors import InvalidInput

MAX_EXTRA_LENGTH = 32
MAX_COUNT = 10_000
MAX_RING_NAME_LENGTH = 40
_RING_NAME = re.compile(r"[a-z][a-z0-9_]*")


def is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool: bool is an int subclass, but ``True`` as a count, a
    length or a position is a caller's mistake, never meant as 1."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_ring_name(name: object) -> str:
    """A ring name: lowercase letter first, then lowercase letters, digits and ``_``."""
    if (
        not isinstance(name, str)
        or len(name) > MAX_RING_NAME_LENGTH
        or not _RING_NAME.fullmatch(name)
    ):
        raise InvalidInput(
            f"invalid ring name {name!r}: use a lowercase letter first, then lowercase "
            f"letters, digits or '_', at most {MAX_RING_NAME_LENGTH} characters"
        )
    return name


def check_extra(extra: object) -> str:
    """The caller's prefix: printable ASCII without whitespace, at most 32 characters."""
    if not isinstance(extra, str):
        raise InvalidInput(f"invalid extra {extra!r}: must be a str (got {type(extra).__name__})")
    if len(extra) > MAX_EXTRA_LENGTH:
        raise InvalidInput(
            f"invalid extra {extra!r}: {len(extra)} characters, at most {MAX_EXTRA_LENGTH}"
        )
    bad = [char for char in extra if not "!" <= char <= "~"]
    if bad:
        raise InvalidInput(
            f"invalid extra {extra!r}: character {bad[0]!r} is not allowed; use printable "
            "ASCII without whitespace"
        )
    return extra


def check_count(count: object) -> int:
    """How many codes one call draws: an int from 1 to 10,000."""
    if not is_int(count):
        raise InvalidInput(
            f"invalid count {count!r}: must be an int from 1 to {MAX_COUNT} "
            f"(got {type(count).__name__})"
        )
    if not 1 <= count <= MAX_COUNT:
        raise InvalidInput(f"invalid count {count!r}: must be from 1 to {MAX_COUNT}")
    return count


def check_bump(bump: object) -> bool:
    """``bump`` must be a real bool (``"yes"`` or ``1`` are refused, not guessed at)."""
    if not isinstance(bump, bool):
        raise InvalidInput(
            f"invalid bump {bump!r}: must be True or False (got {type(bump).__name__})"
        )
    return bump
