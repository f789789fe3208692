"""The engine's entry point: rings as configured, on a store, with input checked.

>>> rings = RingService.from_settings(Settings.from_env())
>>> rings.migrate(); rings.populate()
>>> rings.get_code("widget")
'8CH4'
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from coder_ring.config import RingConfig
from coder_ring.errors import UnknownRing
from coder_ring.settings import Settings
from coder_ring.shuffle import RandBelow
from coder_ring.sql.store import SqlStore
from coder_ring.store import Drawn, ProgressCallback, RingRecord, Store
from coder_ring.validation import check_bump, check_count, check_extra


@dataclass(frozen=True)
class RingStatus:
    """What ``status`` reports for one ring."""

    ring: str
    base_length: int
    profanity_filter: bool
    total_codes: int
    remaining_in_cycle: int
    cycle: int
    uniquizer: str
    extra: str
    epoch: int
    filled: bool

    @property
    def percent_used(self) -> float:
        """Share of this cycle's codes already issued, in percent."""
        if not self.total_codes:
            return 0.0
        return 100.0 * (self.total_codes - self.remaining_in_cycle) / self.total_codes

    def as_dict(self) -> dict[str, object]:
        """A plain dict (JSON-friendly)."""
        return dict(self.__dict__)


class RingService:
    """Draws codes from configured rings. Thread-safe: every call is one store transaction.

    ``randbelow`` draws the Fisher-Yates picks; the default uses the OS's randomness so
    the order of codes cannot be predicted from earlier codes.
    """

    def __init__(
        self,
        store: Store,
        rings: Mapping[str, RingConfig],
        randbelow: RandBelow = secrets.randbelow,
    ) -> None:
        self.store = store
        self.rings = dict(rings)
        self.randbelow = randbelow

    @classmethod
    def from_settings(cls, settings: Settings) -> RingService:
        """A service on ``settings.database_url`` serving the rings of ``settings.config_path``."""
        rings = settings.load_rings()
        return cls(SqlStore(settings.database_url), rings)

    def ring(self, name: object) -> RingConfig:
        """The config of ring ``name``; :class:`UnknownRing` lists the configured ones."""
        ring = self.rings.get(name) if isinstance(name, str) else None
        if ring is None:
            raise UnknownRing.naming(name, self.rings)
        return ring

    def select(self, names: Iterable[str] | None = None) -> list[RingConfig]:
        """Configs of ``names`` (all configured rings when None or empty), checked."""
        chosen = list(names or [])
        return [self.ring(name) for name in chosen] if chosen else list(self.rings.values())

    def migrate(self) -> None:
        """Create or upgrade the schema (idempotent)."""
        self.store.migrate()

    def populate(
        self, names: Iterable[str] | None = None, progress: ProgressFactory | None = None
    ) -> dict[str, int]:
        """Fill each ring (all configured by default) that is not filled yet.

        Returns ring -> rows written (0 for a ring that was already filled).
        """
        written = {}
        for ring in self.select(names):
            written[ring.name] = self.store.fill(ring, progress(ring) if progress else None)
        return written

    def rebuild(self, name: str, progress: ProgressCallback | None = None) -> int:
        """Restart ring ``name`` with the shape the rings file gives it now.

        An operator's act: the table is filled anew and the first cycle starts over, so
        codes issued before may be issued again.
        """
        return self.store.rebuild(self.ring(name), progress)

    def get_code(self, name: str, extra: str = "", bump: bool = False) -> str:
        """One code from ring ``name`` (see RING.md for ``extra`` and ``bump``)."""
        return self.draw(name, 1, extra=extra, bump=bump).codes[0]

    def get_codes(self, name: str, count: int, extra: str = "", bump: bool = False) -> list[str]:
        """``count`` codes (1 to 10,000) from ring ``name`` in one transaction."""
        return self.draw(name, count, extra=extra, bump=bump).codes

    def draw(
        self,
        name: str,
        count: int,
        *,
        extra: str = "",
        bump: bool = False,
        epoch: int | None = None,
        within_cycle: bool = False,
        expect_version: int | None = None,
    ) -> Drawn:
        """Draw with every argument checked first; the full store result."""
        ring = self.ring(name)
        check_count(count)
        check_extra(extra)
        check_bump(bump)
        return self.store.draw(
            ring,
            count,
            self.randbelow,
            extra=extra,
            bump=bump,
            epoch=epoch,
            within_cycle=within_cycle,
            expect_version=expect_version,
        )

    def claim(self, name: str) -> RingRecord:
        """Take ring ``name`` over: a new epoch fences every earlier holder's writes."""
        return self.store.claim(self.ring(name))

    def give_back(self, name: str, count: int, *, epoch: int, version: int) -> bool:
        """Return ``count`` drawn-ahead codes if nothing drew since (see Store.give_back)."""
        self.ring(name)
        return self.store.give_back(name, count, epoch=epoch, version=version)

    def reset(self, name: str, *, epoch: int | None = None) -> RingRecord:
        """Start ring ``name`` over (first cycle, no extra). May repeat earlier codes."""
        return self.store.reset(self.ring(name), epoch=epoch)

    def status(self, name: str) -> RingStatus:
        """Where ring ``name`` stands."""
        ring = self.ring(name)
        record = self.store.record(name)
        if record is None:
            return RingStatus(
                ring=name,
                base_length=ring.base_length,
                profanity_filter=ring.profanity_filter,
                total_codes=0,
                remaining_in_cycle=0,
                cycle=0,
                uniquizer="",
                extra="",
                epoch=0,
                filled=False,
            )
        return RingStatus(
            ring=name,
            base_length=record.base_length,
            profanity_filter=record.profanity_filter,
            total_codes=record.total_codes,
            remaining_in_cycle=record.boundary,
            cycle=record.cycle,
            uniquizer=record.uniquizer,
            extra=record.extra,
            epoch=record.epoch,
            filled=record.filled,
        )

    def close(self) -> None:
        """Release the store's connections."""
        self.store.dispose()


class ProgressFactory(Protocol):
    """Makes the progress callback of one ring's fill."""

    def __call__(self, ring: RingConfig) -> ProgressCallback: ...
