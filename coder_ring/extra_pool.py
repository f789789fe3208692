"""One extra's pool of codes drawn ahead (see :class:`coder_ring.ring_server.RingServer`): the
codes in draw order with what each was drawn from, and what can go back."""

from __future__ import annotations

import time
from array import array
from concurrent.futures import Future
from dataclasses import dataclass, field

from coder_ring.store import Drawn


class PooledCodes:
    """Codes drawn ahead, oldest first, each with the value and position it was issued
    from and its cycle. Kept as a list of the codes and three arrays of machine integers
    rather than an object a code: about 90 bytes a pooled code instead of 180 (a worker
    holding 2,500 rings pools 640,000 codes). Taken from the front by moving a start
    index; the taken slots are freed once they are half the lists."""

    __slots__ = ("_codes", "_cycles", "_positions", "_start", "_values")

    def __init__(self) -> None:
        self._codes: list[str] = []
        # Values and positions stay below 32**MAX_BASE_LENGTH (2**40): int64 holds them.
        self._values = array("q")
        self._positions = array("q")
        self._cycles = array("q")
        self._start = 0

    def __len__(self) -> int:
        return len(self._codes) - self._start

    def extend(self, drawn: Drawn) -> None:
        """Pool the codes of ``drawn`` after the others, keeping what each was drawn from."""
        if not len(drawn.codes) == len(drawn.values) == len(drawn.positions) == len(drawn.cycles):
            raise ValueError("a draw's codes, values, positions and cycles differ in number")
        self._codes.extend(drawn.codes)
        self._values.extend(drawn.values)
        self._positions.extend(drawn.positions)
        self._cycles.extend(drawn.cycles)

    def take(self, count: int) -> list[str]:
        """The ``count`` oldest codes (at most all of them), no longer pooled."""
        end = min(self._start + count, len(self._codes))
        taken = self._codes[self._start : end]
        self._start = end
        if self._start * 2 >= len(self._codes):
            self._compact()
        return taken

    def codes(self) -> list[str]:
        """Every code pooled, oldest first (still pooled)."""
        return self._codes[self._start :]

    def entries(self) -> zip[tuple[int, int, int]]:
        """(value, position, cycle) of every code pooled, oldest first."""
        start = self._start
        return zip(self._values[start:], self._positions[start:], self._cycles[start:], strict=True)

    def clear(self) -> None:
        """Pool nothing."""
        self._codes.clear()
        for numbers in (self._values, self._positions, self._cycles):
            del numbers[:]
        self._start = 0

    def _compact(self) -> None:
        start, self._start = self._start, 0
        del self._codes[:start]
        for numbers in (self._values, self._positions, self._cycles):
            del numbers[:start]


@dataclass
class ExtraPool:
    """Codes of one extra drawn ahead, and the extra's state after this server's latest
    write to it (``version`` -1: none yet)."""

    extra: str
    codes: PooledCodes = field(default_factory=PooledCodes)
    version: int = -1
    boundary: int = 0
    cycle: int = 0
    refill: Future[None] | None = None
    #: monotonic() time of the last request served from this pool.
    used: float = field(default_factory=time.monotonic)

    def land(self, drawn: Drawn) -> None:
        """Record the state after a draw of this server (the latest write wins)."""
        if drawn.extra.version > self.version:
            self.version = drawn.extra.version
            self.boundary = drawn.extra.boundary
            self.cycle = drawn.extra.cycle

    def returnable(self) -> list[int]:
        """Values to give back: the pooled codes whose positions run up from the boundary
        without a gap (lowest position first)."""
        by_position = {
            position: value
            for value, position, cycle in self.codes.entries()
            if cycle == self.cycle
        }
        values = []
        position = self.boundary
        while position in by_position:
            values.append(by_position[position])
            position += 1
        return values

    def add(self, drawn: Drawn) -> None:
        """Pool the codes of ``drawn``, keeping what each was drawn from."""
        self.codes.extend(drawn)

    def continues(self) -> int | None:
        """The version to draw with (``continues``): this pool's codes and the next draw's
        can then go back together."""
        return self.version if self.version >= 0 else None

    def in_flight(self) -> bool:
        """Whether a top-up of this pool is still running."""
        return self.refill is not None and not self.refill.done()
