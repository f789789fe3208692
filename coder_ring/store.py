"""The store interface: what the engine needs from a database, and its atomicity.

Every method is atomic: it commits all of its effect or none of it. In particular:

* :meth:`Store.draw` reads the ring's state under an exclusive lock on its row
  (``SELECT ... FOR UPDATE`` on PostgreSQL, an immediate write transaction on
  SQLite), reads the positions it needs in one query, swaps in memory, writes the
  changed positions in one statement and the new state, and commits: a crash at
  any point issues nothing, and concurrent draws on one ring are serialized, so
  no code is issued twice within a cycle.
* Writes that carry an ``epoch`` compare it with the stored epoch inside that same
  transaction and raise :class:`~coder_ring.errors.Fenced` (writing nothing) when it
  differs. :meth:`Store.claim` increments the epoch under the same row lock, so
  after a claim commits no write of an older epoch can commit.
* :meth:`Store.fill` writes the whole table and sets ``filled`` in one transaction
  under the row lock: a killed fill leaves no row and an unfilled ring, and a second
  concurrent fill waits, then finds the ring filled and writes nothing.
* :meth:`Store.give_back` is one compare-and-set statement on (epoch, version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from coder_ring.alphabet import uniquizer
from coder_ring.config import RingConfig
from coder_ring.shuffle import CycleState, RandBelow


@dataclass(frozen=True)
class RingRecord:
    """A ring's stored state row."""

    name: str
    base_length: int
    profanity_filter: bool
    total_codes: int
    boundary: int
    cycle: int
    extra: str
    epoch: int
    version: int
    filled: bool

    @property
    def uniquizer(self) -> str:
        """Prefix of the codes of the current cycle."""
        return uniquizer(self.cycle)

    def cycle_state(self) -> CycleState:
        """The part of the record the shuffle maths works on."""
        return CycleState(self.total_codes, self.boundary, self.cycle, self.extra)


@dataclass(frozen=True)
class Drawn:
    """The codes of one committed draw, in issue order, and the ring's state after it."""

    codes: list[str]
    record: RingRecord


class Store(Protocol):
    """Persistence of rings. Implementations: :class:`coder_ring.sql.store.SqlStore`."""

    def migrate(self) -> None:
        """Create or upgrade the schema (idempotent, safe to run concurrently)."""

    def register(self, ring: RingConfig) -> RingRecord:
        """The ring's state row, inserted (unfilled) when absent."""

    def fill(self, ring: RingConfig, progress: ProgressCallback | None = None) -> int:
        """Fill the ring's table if it is not filled; returns the rows written (0 if none)."""

    def rebuild(self, ring: RingConfig, progress: ProgressCallback | None = None) -> int:
        """Drop the ring's table and state and fill it anew for ``ring`` (an operator's act)."""

    def draw(
        self,
        ring: RingConfig,
        count: int,
        randbelow: RandBelow,
        *,
        extra: str = "",
        bump: bool = False,
        epoch: int | None = None,
        within_cycle: bool = False,
        expect_version: int | None = None,
    ) -> Drawn:
        """Issue ``count`` codes (fewer only with ``within_cycle``) in one transaction.

        With ``expect_version`` the draw commits only if the ring's row is still at that
        version (else :class:`~coder_ring.errors.Superseded`, nothing written)."""

    def claim(self, ring: RingConfig) -> RingRecord:
        """Increment the ring's epoch; the returned record carries the new epoch."""

    def give_back(self, name: str, count: int, *, epoch: int, version: int) -> bool:
        """Return the ``count`` codes just above the boundary to the ring if the stored
        (epoch, version) still equal the given ones; False (nothing written) otherwise."""

    def reset(self, ring: RingConfig, *, epoch: int | None = None) -> RingRecord:
        """First cycle, no extra; also increments the epoch unless ``epoch`` is given."""

    def record(self, name: str) -> RingRecord | None:
        """The ring's state row, or None when it was never registered."""

    def dispose(self) -> None:
        """Close the store's connections."""


class ProgressCallback(Protocol):
    """Told ``(rows_done, rows_total)`` while a fill runs."""

    def __call__(self, done: int, total: int) -> None: ...
