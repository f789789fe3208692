"""The engine's entry point: rings as configured, on a store, with input checked.

>>> rings = RingService.from_settings(Settings.from_env())
>>> rings.migrate()
>>> rings.get_code("widget")
'8CH4'

Every public method checks its arguments before anything is read or written
(:class:`~coder_ring.errors.InvalidInput` naming the bad value), and is one store
transaction, so any number of threads and processes may call at once.
"""

from __future__ import annotations

import reprlib
import secrets
from collections.abc import Iterable, Mapping, Sequence

from coder_ring import operations
from coder_ring.config import RingConfig
from coder_ring.errors import InvalidInput, UnknownRing
from coder_ring.operations import GiveBack
from coder_ring.profanity import space_of
from coder_ring.settings import Settings
from coder_ring.shuffle import RandBelow
from coder_ring.status import RingStatus, ring_status
from coder_ring.store import Drawn, RingRecord, Store
from coder_ring.validation import MAX_COUNT, check_bump, check_count, check_extra, is_int


class RingService:
    """Draws codes from configured rings. Thread-safe.

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
        self.rings: dict[str, RingConfig] = dict(rings)
        self.randbelow = randbelow

    @classmethod
    def from_settings(cls, settings: Settings) -> RingService:
        """A service on ``settings.database_url`` serving the rings of the rings file."""
        from coder_ring.sql.store import SqlStore

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

    def reload(self, rings: Mapping[str, RingConfig]) -> None:
        """Serve ``rings`` from now on (the rings file changed)."""
        self.rings = dict(rings)

    def migrate(self) -> None:
        """Create or upgrade the schema (idempotent)."""
        self.store.migrate()

    def populate(self, names: Iterable[str] | None = None) -> dict[str, RingRecord]:
        """Make sure each ring (all configured by default) has its row, and that its shape
        matches the rings file. Rings need no fill: this writes one row per new ring."""
        return {ring.name: operations.register(self.store, ring) for ring in self.select(names)}

    def rebuild(self, name: str) -> RingRecord:
        """Restart ring ``name`` with the shape the rings file gives it now.

        An operator's act: every extra starts over at its first cycle, so codes issued
        before may be issued again; the holder is fenced.
        """
        return operations.rebuild(self.store, self.ring(name))

    def get_code(self, name: str, extra: str = "", bump: bool = False) -> str:
        """One code from ring ``name`` (``extra``: a prefix with its own cycle; ``bump``:
        start the next cycle of that extra first)."""
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
        continues: int | None = None,
    ) -> Drawn:
        """Draw with every argument checked first; the full store result.

        ``continues``: ``drawn.extra.version`` of your previous draw of ``extra``, to give
        back codes of both together (:meth:`give_back`)."""
        ring = self.ring(name)
        check_count(count)
        check_extra(extra)
        check_bump(bump)
        for label, number in (("epoch", epoch), ("continues", continues)):
            if number is not None:
                _check_int(label, number)
        return self.draw_checked(
            ring,
            count,
            extra=extra,
            bump=bump,
            epoch=epoch,
            within_cycle=within_cycle,
            continues=continues,
        )

    def draw_checked(
        self,
        ring: RingConfig,
        count: int,
        *,
        extra: str = "",
        bump: bool = False,
        epoch: int | None = None,
        within_cycle: bool = False,
        continues: int | None = None,
    ) -> Drawn:
        """:meth:`draw` for arguments its caller checked already (a pool server)."""
        return operations.draw(
            self.store,
            ring,
            count,
            self.randbelow,
            extra=extra,
            bump=bump,
            epoch=epoch,
            within_cycle=within_cycle,
            continues=continues,
        )

    def claim(self, name: str) -> RingRecord:
        """Take ring ``name`` over: a new epoch fences every earlier holder's writes."""
        return operations.claim(self.store, self.ring(name))

    def give_back(
        self, name: str, extra: str, values: Sequence[int], *, epoch: int, version: int
    ) -> bool:
        """Return drawn-ahead codes not handed out (their ``values``, last drawn first)
        just above the boundary of ``extra``, if the ring is still at ``epoch`` and
        nothing wrote to ``extra`` since ``version``; False, changing nothing, otherwise.

        A pool's call: ``values`` must be the values of your own latest draw (or run of
        draws, see ``continues`` of :meth:`draw`), exactly as
        :class:`~coder_ring.store.Drawn` gave them, else :class:`InvalidInput` or False
        (nothing changed). Codes handed out must never be given back: they would be
        issued again. Checked first: at most 10,000 distinct code values of the ring,
        ``epoch`` and ``version`` ints."""
        ring = self.ring(name)
        check_extra(extra)
        _check_give_back(ring, values, epoch, version)
        return self.give_back_all(ring, [GiveBack(extra, values, version)], epoch=epoch)[0]

    def give_back_all(
        self, ring: RingConfig, returns: Sequence[GiveBack], *, epoch: int
    ) -> list[bool]:
        """:meth:`give_back` of several extras in one transaction, for values its caller
        drew itself with ``ring``'s config (a pool server), even once the rings file no
        longer lists the ring or changed it; which went back."""
        return operations.give_back(self.store, ring, returns, epoch=epoch)

    def reset(self, name: str, *, epoch: int | None = None) -> RingRecord:
        """Start every extra of ring ``name`` over. May repeat earlier codes."""
        return operations.reset(self.store, self.ring(name), epoch=epoch)

    def status(self, name: str) -> RingStatus:
        """Where ring ``name`` stands in the database (holder and pool unknown here)."""
        ring = self.ring(name)
        record = self.store.ring_record(name)
        extras = self.store.extra_records(name) if record is not None else []
        stored = self.store.stored_positions(name) if record is not None else 0
        total = space_of(ring.base_length, ring.profanity_filter).total
        return ring_status(ring, record, extras, stored, total)

    def close(self) -> None:
        """Release the store's connections."""
        self.store.dispose()


def _check_give_back(ring: RingConfig, values: object, epoch: object, version: object) -> None:
    """:class:`InvalidInput` unless ``values`` are distinct code values of ``ring`` (at
    most one draw's worth) and ``epoch`` and ``version`` are ints: a wrong value given
    back would be issued as a code, or twice."""
    for name, number in (("epoch", epoch), ("version", version)):
        _check_int(name, number)
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidInput(
            f"invalid values {reprlib.repr(values)}: must be a list of ints "
            f"(got {type(values).__name__})"
        )
    if len(values) > MAX_COUNT:
        raise InvalidInput(
            f"invalid values: {len(values):,} of them, at most {MAX_COUNT:,} (one draw's worth)"
        )
    total = space_of(ring.base_length, ring.profanity_filter).total
    seen: set[int] = set()
    for value in values:
        # Exactly int: a subclass could compare equal to anything.
        if type(value) is not int or not 0 <= value < total:
            raise InvalidInput(
                f"invalid value {value!r} in values: must be an int from 0 to {total - 1} "
                f"(a code value of ring {ring.name!r})"
            )
        if value in seen:
            raise InvalidInput(f"invalid values: {value} is given twice (each code goes back once)")
        seen.add(value)


def _check_int(name: str, number: object) -> None:
    """:class:`InvalidInput` unless ``number`` is an int (not a bool)."""
    if not is_int(number):
        raise InvalidInput(
            f"invalid {name} {number!r}: must be an int (got {type(number).__name__})"
        )
