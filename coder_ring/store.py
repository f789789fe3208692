"""The store interface: what the engine needs from a database, and its atomicity.

A store gives one thing: a ring's state, locked, inside a transaction
(:meth:`Store.locked`). Every operation of :mod:`coder_ring.operations` runs in one
such transaction, so each commits all of its effect or none of it:

* The lock is exclusive and per ring (``SELECT ... FOR UPDATE`` of the ring's row on
  PostgreSQL, an immediate write transaction on SQLite, a mutex in memory): two
  draws of one ring, whatever their extras, never interleave, so no code is issued
  twice, and the first use of two clashing extras is decided one at a time.
* A crash at any point before the commit issues nothing.
* Writes that carry an ``epoch`` compare it with the stored epoch under that lock and
  raise :class:`~coder_ring.errors.Fenced` (writing nothing) when it differs; a claim
  increments the epoch under the same lock, so once it commits no write of an older
  epoch can commit.
* Every committed write gives the ring a new ``version`` (a counter that only grows)
  and stamps it on the extra it wrote. A give-back compares the extra's version with
  the one its caller last saw: it succeeds only if nothing wrote to that extra since,
  and only with the very values the latest draws recorded at those positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from coder_ring.alphabet import uniquizer


@dataclass(frozen=True)
class RingRecord:
    """A ring's stored row: its shape, its fencing epoch and its version counter."""

    name: str
    base_length: int
    profanity_filter: bool
    total_codes: int
    epoch: int
    version: int


@dataclass(frozen=True)
class ExtraRecord:
    """One (ring, extra)'s stored cycle state.

    ``version`` is the ring's version at this extra's last write; ``issued`` counts the
    codes ever issued with this extra (codes given back are not counted). Positions
    from ``boundary`` up hold the values issued in this cycle; those up to
    ``returnable_top`` were issued by the latest run of draws, each made by the caller of
    the previous one (it knew the version that draw left): only they can go back.
    """

    extra: str
    boundary: int
    cycle: int
    version: int
    issued: int
    returnable_top: int

    @property
    def uniquizer(self) -> str:
        """Prefix of the codes of the current cycle."""
        return uniquizer(self.cycle)


@dataclass(frozen=True)
class Drawn:
    """The codes of one committed draw, in issue order, and the state after it.

    ``values[i]``, ``positions[i]`` and ``cycles[i]`` say what ``codes[i]`` was rendered
    from and where it sat in which cycle: a pool keeps them to give codes back exactly.
    """

    codes: list[str]
    values: list[int]
    positions: list[int]
    cycles: list[int]
    ring: RingRecord
    extra: ExtraRecord


@dataclass(frozen=True)
class PositionChanges:
    """Storage changes of one (ring, extra): drop every stored position first when
    ``wipe``, then delete ``deletes`` and store ``upserts`` (position -> value)."""

    wipe: bool
    upserts: Mapping[int, int]
    deletes: Sequence[int]


class LockedRing(Protocol):
    """One ring, locked, inside a transaction. Everything it writes commits together
    when the ``with`` block of :meth:`Store.locked` ends without an exception."""

    record: RingRecord

    def extra(self, extra: str) -> ExtraRecord | None:
        """The stored state of ``extra``, or None if the ring never used it."""

    def related_extras(self, extra: str, prefixes: Sequence[str]) -> list[str]:
        """The ring's used extras that are in ``prefixes`` or that start with ``extra``
        (longer than it): the candidates of an ambiguity."""

    def extras(self) -> list[ExtraRecord]:
        """Every extra the ring used."""

    def read_positions(self, extra: str, positions: set[int]) -> dict[int, int]:
        """The stored values among ``positions`` (absent ones hold their own position)."""

    def write_extra(self, state: ExtraRecord, changes: PositionChanges) -> None:
        """Store ``state`` (inserting the extra if new) and apply ``changes``."""

    def write_ring(self, record: RingRecord) -> None:
        """Store the ring's row (shape, epoch, version)."""

    def drop_extras(self) -> None:
        """Forget every extra of the ring and their positions."""


class Store(Protocol):
    """Persistence of rings: :class:`coder_ring.sql.store.SqlStore` (PostgreSQL and
    SQLite) and :class:`coder_ring.memory_store.MemoryStore`."""

    #: "postgresql", "sqlite" or "memory".
    dialect: str

    def migrate(self) -> None:
        """Create or upgrade the schema (idempotent, safe to run concurrently)."""

    def locked(
        self, name: str, create: RingRecord | None = None, extra: str | None = None
    ) -> AbstractContextManager[LockedRing | None]:
        """A transaction holding ring ``name``'s lock; yields None when the ring has no
        row, unless ``create`` is given: then that row is inserted first (if absent).
        ``extra``: an extra the caller will read (a store may fetch it with the lock)."""

    def ping(self) -> None:
        """A plain read of the rings table, taking no lock: the database answers and has
        the schema (:class:`StoreUnavailable` or :class:`SchemaMissing` if not)."""

    def ring_record(self, name: str) -> RingRecord | None:
        """The ring's row without locking it, or None."""

    def ring_records(self, names: Sequence[str]) -> dict[str, RingRecord]:
        """The rows of ``names`` that exist, in one read (a worker checks its epochs)."""

    def extra_records(self, name: str) -> list[ExtraRecord]:
        """Every extra of the ring, without locking it."""

    def stored_positions(self, name: str) -> int:
        """How many positions the ring stores (all extras): its storage footprint."""

    def dispose(self) -> None:
        """Close the store's connections."""


def iter_chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
