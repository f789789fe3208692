"""A store in this process's memory: the same contract as the SQL store, for tests,
demos and embedding. Nothing survives the process.

The lock of :meth:`MemoryStore.locked` is one mutex for the whole store; writes are
buffered and applied when the ``with`` block ends without an exception, so an
operation that fails midway changes nothing (as a rolled-back transaction).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from coder_ring.store import ExtraRecord, PositionChanges, RingRecord


@dataclass
class _Ring:
    record: RingRecord
    extras: dict[str, ExtraRecord] = field(default_factory=dict)
    positions: dict[str, dict[int, int]] = field(default_factory=dict)


class _LockedMemoryRing:
    """A ring inside a memory transaction: reads see the committed state plus this
    transaction's own writes."""

    def __init__(self, ring: _Ring) -> None:
        self.ring = self._ring = ring
        self.record = ring.record
        self._extras: dict[str, ExtraRecord] = {}
        self._changes: list[tuple[str, PositionChanges]] = []
        self._dropped = False

    def extra(self, extra: str) -> ExtraRecord | None:
        if extra in self._extras:
            return self._extras[extra]
        return None if self._dropped else self._ring.extras.get(extra)

    def related_extras(self, extra: str, prefixes: Sequence[str]) -> list[str]:
        wanted = set(prefixes)
        return [
            used.extra
            for used in self.extras()
            if used.extra in wanted
            or (len(used.extra) > len(extra) and used.extra.startswith(extra))
        ]

    def extras(self) -> list[ExtraRecord]:
        merged = {} if self._dropped else dict(self._ring.extras)
        merged.update(self._extras)
        return list(merged.values())

    def read_positions(self, extra: str, positions: set[int]) -> dict[int, int]:
        table = {} if self._dropped else self._ring.positions.get(extra, {})
        return {position: table[position] for position in positions if position in table}

    def write_extra(self, state: ExtraRecord, changes: PositionChanges) -> None:
        self._extras[state.extra] = state
        self._changes.append((state.extra, changes))

    def write_ring(self, record: RingRecord) -> None:
        self.record = record

    def drop_extras(self) -> None:
        self._dropped = True
        self._extras.clear()
        self._changes.clear()

    def commit(self) -> None:
        ring = self._ring
        if self._dropped:
            ring.extras.clear()
            ring.positions.clear()
        for extra, changes in self._changes:
            table = ring.positions.setdefault(extra, {})
            if changes.wipe:
                table.clear()
            for position in changes.deletes:
                table.pop(position, None)
            table.update(changes.upserts)
        ring.extras.update(self._extras)
        ring.record = self.record


class MemoryStore:
    """Rings in a dict. Thread-safe; every operation is serialized by one mutex."""

    dialect = "memory"

    def __init__(self) -> None:
        self._rings: dict[str, _Ring] = {}
        self._mutex = threading.RLock()

    def migrate(self) -> None:
        """Nothing to create."""

    def ping(self) -> None:
        """Always reachable."""

    @contextmanager
    def locked(
        self, name: str, create: RingRecord | None = None, extra: str | None = None
    ) -> Iterator[_LockedMemoryRing | None]:
        with self._mutex:
            ring = self._rings.get(name)
            if ring is None and create is None:
                yield None
                return
            # A ring created here exists only once the transaction commits.
            locked = _LockedMemoryRing(ring or _Ring(create))  # type: ignore[arg-type]
            yield locked
            locked.commit()
            self._rings.setdefault(name, locked.ring)

    def ring_record(self, name: str) -> RingRecord | None:
        with self._mutex:
            ring = self._rings.get(name)
            return None if ring is None else ring.record

    def ring_records(self, names: Sequence[str]) -> dict[str, RingRecord]:
        with self._mutex:
            return {name: self._rings[name].record for name in names if name in self._rings}

    def extra_records(self, name: str) -> list[ExtraRecord]:
        with self._mutex:
            ring = self._rings.get(name)
            return [] if ring is None else list(ring.extras.values())

    def stored_positions(self, name: str) -> int:
        with self._mutex:
            ring = self._rings.get(name)
            return 0 if ring is None else sum(len(table) for table in ring.positions.values())

    def dispose(self) -> None:
        """Nothing to close."""
