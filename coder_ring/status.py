"""Where a ring stands: one model, one set of keys, computed in one place.

:func:`ring_status` builds it from the database; the worker layer adds the lock
holder and the holder's pool with :meth:`RingStatus.served_by`. The CLI table, its
``--json``, the ``status`` task and the metrics all read this model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from coder_ring.alphabet import uniquizer
from coder_ring.config import RingConfig
from coder_ring.store import ExtraRecord, RingRecord


@dataclass(frozen=True)
class ExtraStatus:
    """One (ring, extra)'s cycle.

    ``remaining_in_cycle`` counts the codes not yet drawn from the database in this
    cycle; codes drawn ahead into the holder's pool are counted in ``pooled``, not there.
    ``issued`` counts every code drawn from the database, pooled ones included;
    ``received`` (``issued - pooled``, None while the pool is unknown) what callers got.
    """

    extra: str
    cycle: int
    uniquizer: str
    remaining_in_cycle: int
    percent_used: float
    issued: int
    pooled: int | None = None

    @property
    def received(self) -> int | None:
        """Codes callers received (or that a lost pool took): ``issued - pooled``; None
        while the holder's pool is unknown."""
        if self.pooled is None:
            return None
        # Never below 0: a pool read just after a status of the database it outran.
        return max(self.issued - self.pooled, 0)

    def as_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-friendly); ``percent_used`` rounded as everywhere."""
        data = dict(self.__dict__)
        data["percent_used"] = round_percent(self.percent_used)
        data["received"] = self.received
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExtraStatus:
        """The inverse of :meth:`as_dict`."""
        return cls(**{key: value for key, value in data.items() if key != "received"})


#: Decimals of ``percent_used`` wherever a status is shown as data (JSON, the task).
PERCENT_DECIMALS = 3


def round_percent(value: float) -> float:
    """``percent_used`` as shown: the one rounding rule of the ring and of each extra."""
    return round(value, PERCENT_DECIMALS)


@dataclass(frozen=True)
class RingStatus:
    """One ring: its shape, epoch, every extra it used (latest first) and, from the worker
    layer, its holder and pool. The top-level ``extra``, ``cycle``, ``uniquizer``,
    ``remaining_in_cycle`` and ``percent_used`` are those of the latest extra used."""

    ring: str
    base_length: int
    profanity_filter: bool
    total_codes: int
    epoch: int
    stored_positions: int
    extras: tuple[ExtraStatus, ...] = ()
    holder: str | None = None
    pooled: int | None = None
    _latest: ExtraStatus = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        latest = self.extras[0] if self.extras else _fresh("", self.total_codes)
        object.__setattr__(self, "_latest", latest)

    @property
    def extra(self) -> str:
        """The extra of the latest draw ("" before any)."""
        return self._latest.extra

    @property
    def cycle(self) -> int:
        """The latest extra's cycle (0 is the first)."""
        return self._latest.cycle

    @property
    def uniquizer(self) -> str:
        """Prefix of the latest extra's current cycle."""
        return self._latest.uniquizer

    @property
    def remaining_in_cycle(self) -> int:
        """Codes of the latest extra's cycle not yet drawn from the database."""
        return self._latest.remaining_in_cycle

    @property
    def percent_used(self) -> float:
        """Share of the latest extra's cycle already drawn, in percent."""
        return self._latest.percent_used

    @property
    def received(self) -> int | None:
        """Codes callers received over every extra (``issued - pooled``, summed), like
        ``pooled`` a total of the ring; None while the holder's pool is unknown."""
        if self.pooled is None:
            return None
        return sum(extra.received or 0 for extra in self.extras)

    def served_by(self, holder: str | None, pooled: Mapping[str, int] | None) -> RingStatus:
        """This status with the lock ``holder`` and its pool (extra -> codes drawn ahead;
        None when the holder could not say)."""
        extras = self.extras
        if pooled is not None:
            known = {status.extra for status in extras}
            extras = tuple(replace(status, pooled=pooled.get(status.extra, 0)) for status in extras)
            extras += tuple(
                replace(_fresh(extra, self.total_codes), pooled=count)
                for extra, count in pooled.items()
                if extra not in known
            )
        total = None if pooled is None else sum(pooled.values())
        return replace(self, extras=extras, holder=holder, pooled=total)

    def as_dict(self) -> dict[str, Any]:
        """Every key, JSON-friendly; the same keys wherever a status is shown."""
        return {
            "ring": self.ring,
            "base_length": self.base_length,
            "profanity_filter": self.profanity_filter,
            "total_codes": self.total_codes,
            "epoch": self.epoch,
            "extra": self.extra,
            "cycle": self.cycle,
            "uniquizer": self.uniquizer,
            "remaining_in_cycle": self.remaining_in_cycle,
            "percent_used": round_percent(self.percent_used),
            "stored_positions": self.stored_positions,
            "holder": self.holder,
            "pooled": self.pooled,
            "received": self.received,
            "extras": [status.as_dict() for status in self.extras],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RingStatus:
        """The inverse of :meth:`as_dict` (a status sent by a worker)."""
        return cls(
            ring=data["ring"],
            base_length=data["base_length"],
            profanity_filter=data["profanity_filter"],
            total_codes=data["total_codes"],
            epoch=data["epoch"],
            stored_positions=data["stored_positions"],
            extras=tuple(ExtraStatus.from_dict(extra) for extra in data["extras"]),
            holder=data["holder"],
            pooled=data["pooled"],
        )


def _fresh(extra: str, total: int) -> ExtraStatus:
    return ExtraStatus(extra, 0, "", total, 0.0, 0)


def extra_status(record: ExtraRecord, total: int) -> ExtraStatus:
    """The status of one stored extra."""
    used = 100.0 * (total - record.boundary) / total if total else 0.0
    return ExtraStatus(
        record.extra,
        record.cycle,
        uniquizer(record.cycle),
        record.boundary,
        used,
        record.issued,
    )


def ring_status(
    ring: RingConfig,
    record: RingRecord | None,
    extras: Sequence[ExtraRecord],
    stored_positions: int,
    total_if_new: int,
) -> RingStatus:
    """The database's view of ``ring`` (holder and pool unknown)."""
    if record is None:
        return RingStatus(ring.name, ring.base_length, ring.profanity_filter, total_if_new, 0, 0)
    latest_first = sorted(extras, key=lambda extra: extra.version, reverse=True)
    return RingStatus(
        ring=record.name,
        base_length=record.base_length,
        profanity_filter=record.profanity_filter,
        total_codes=record.total_codes,
        epoch=record.epoch,
        stored_positions=stored_positions,
        extras=tuple(extra_status(extra, record.total_codes) for extra in latest_first),
    )
