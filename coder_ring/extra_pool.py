"""One extra's pool of codes drawn ahead (see :class:`coder_ring.ring_server.RingServer`): the
codes in draw order with what each was drawn from, and what can go back."""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from coder_ring.store import Drawn


@dataclass(slots=True)  # a worker of 1,000 rings pools 250,000 of them: no __dict__ each
class PooledCode:
    """A code drawn ahead, with the value and position it was issued from, and its cycle."""

    code: str
    value: int
    position: int
    cycle: int


@dataclass
class ExtraPool:
    """Codes of one extra drawn ahead, and the extra's state after this server's latest
    write to it (``version`` -1: none yet)."""

    extra: str
    codes: deque[PooledCode] = field(default_factory=deque)
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
            entry.position: entry.value for entry in self.codes if entry.cycle == self.cycle
        }
        values = []
        position = self.boundary
        while position in by_position:
            values.append(by_position[position])
            position += 1
        return values

    def add(self, drawn: Drawn) -> None:
        """Pool the codes of ``drawn``, keeping what each was drawn from."""
        self.codes.extend(
            PooledCode(code, value, position, cycle)
            for code, value, position, cycle in zip(
                drawn.codes, drawn.values, drawn.positions, drawn.cycles, strict=True
            )
        )

    def continues(self) -> int | None:
        """The version to draw with (``continues``): this pool's codes and the next draw's
        can then go back together."""
        return self.version if self.version >= 0 else None

    def in_flight(self) -> bool:
        """Whether a top-up of this pool is still running."""
        return self.refill is not None and not self.refill.done()
