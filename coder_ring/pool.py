"""Serving one ring from a pool of codes drawn ahead, for the process that holds it.

A :class:`RingServer` belongs to the one worker that holds a ring. On
:meth:`~RingServer.activate` it claims a new epoch; every write it makes afterwards
carries that epoch, so once another holder claims the ring, none of this server's
writes can commit (:class:`~coder_ring.errors.Fenced`).

The pool is a FIFO of codes already issued in the database (committed), drawn
within one cycle and one extra. Handing them out in draw order keeps the codes
exactly what they would be without a pool, and keeps the unissued rest at the
positions just above the ring's boundary, so a graceful stop can give them back
with one compare-and-set (nothing lost); a crash loses at most the pool.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from coder_ring.errors import CoderRingError, Fenced, StoreUnavailable, Superseded
from coder_ring.service import RingService
from coder_ring.store import RingRecord
from coder_ring.validation import check_bump, check_count, check_extra

log = logging.getLogger("coder_ring.pool")


class NotHolding(CoderRingError):
    """This server does not hold its ring (not activated, or lost it)."""


class RingServer:
    """One ring's pool and fenced draws. Thread-safe; calls on one ring are serialized."""

    def __init__(self, service: RingService, name: str, pool_size: int | None = None) -> None:
        ring = service.ring(name)
        self.service = service
        self.name = name
        self.pool_size = ring.pool_size if pool_size is None else pool_size
        self._mutex = threading.Lock()
        self._refiller: ThreadPoolExecutor | None = None
        self._refill: Future[None] | None = None
        self._pool: deque[str] = deque()
        # The ring's row as of this server's last committed write (None: not holding).
        self._record: RingRecord | None = None

    @property
    def epoch(self) -> int | None:
        """The epoch this server writes with, or None when it does not hold the ring."""
        record = self._record
        return None if record is None else record.epoch

    @property
    def pooled(self) -> int:
        """Codes drawn ahead and not handed out yet."""
        return len(self._pool)

    def activate(self, *, if_inactive: bool = False) -> RingRecord:
        """Fill the ring if it is empty, claim a new epoch and fill the pool.

        With ``if_inactive`` a server that already holds its epoch keeps it.
        """
        self.settle()
        with self._mutex:
            if if_inactive and self._record is not None:
                return self._record
            self._pool.clear()
            self._record = None
            self.service.populate([self.name])
            self._record = self.service.claim(self.name)
            self._top_up()
            return self._record

    def deactivate(self, give_back: bool = True) -> int:
        """Stop serving: drop the pool, giving its codes back to the ring when
        ``give_back`` and nothing else wrote since. Returns the codes given back."""
        self.settle()  # a background top-up lands in the pool first, then goes back with it
        with self._mutex:
            record, codes = self._record, len(self._pool)
            self._pool.clear()
            self._record = None
        if not give_back or record is None or not codes:
            return 0
        try:
            returned = self.service.give_back(
                self.name, codes, epoch=record.epoch, version=record.version
            )
        except CoderRingError:
            return 0  # unreachable database: the codes are lost, never repeated
        return codes if returned else 0

    def get_codes(
        self, count: int, extra: str = "", bump: bool = False, *, top_up: bool = True
    ) -> list[str]:
        """``count`` codes, served from the pool where RING.md allows it.

        Bad arguments are refused before the pool is touched, and a failed draw leaves
        the pool as it was: an error changes nothing. With ``top_up=False`` the pool is
        not topped up here; the caller does it with :meth:`top_up_if_low` once the codes
        are on their way (so no request waits for a refill).
        """
        check_count(count)
        check_extra(extra)
        check_bump(bump)
        if len(self._pool) < count:
            # A draw now would supersede a top-up in flight and lose its codes: wait.
            self.settle()
        with self._mutex:
            record = self._holding()
            if bump or extra != record.extra:
                # A new cycle or a new extra: the pooled codes belong to the old one and
                # are dropped, never handed out; the draw goes straight to the ring.
                codes = self._draw(count, extra=extra, bump=bump)
                self._pool.clear()
            elif count <= len(self._pool):
                codes = [self._pool.popleft() for _ in range(count)]
            else:
                # Draw the rest first: if that fails, the pooled codes stay pooled.
                rest = self._draw(count - len(self._pool), extra=extra)
                codes = [*self._pool, *rest]
                self._pool.clear()
            if top_up:
                self._top_up_after_serving()
            return codes

    def get_code(self, extra: str = "", bump: bool = False, *, top_up: bool = True) -> str:
        """One code (see :meth:`get_codes`)."""
        return self.get_codes(1, extra, bump, top_up=top_up)[0]

    def top_up_if_low(self) -> None:
        """Top the pool up in the background if it is below half; returns at once.

        The draw runs outside the serving mutex, so requests go on being served from the
        pool meanwhile. Its codes join the pool only if nothing else wrote to the ring
        since it started; otherwise they are dropped (issued, so lost, never repeated).
        Errors are logged: the next request meets them again and reports them.
        """
        with self._mutex:
            if self._record is None or self._refilling() or len(self._pool) * 2 >= self.pool_size:
                return
            if self._refiller is None:
                self._refiller = ThreadPoolExecutor(1, thread_name_prefix=f"refill-{self.name}")
            self._refill = self._refiller.submit(self._refill_in_background)

    def _refilling(self) -> bool:
        pending = self._refill
        return pending is not None and not pending.done()

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until a background top-up (if one runs) has finished."""
        pending = self._refill
        if pending is not None:
            with contextlib.suppress(Exception):
                pending.result(timeout=timeout)

    def _refill_in_background(self) -> None:
        with self._mutex:
            record, pooled = self._record, len(self._pool)
        missing = self.pool_size - pooled
        if record is None or missing <= 0 or (pooled and record.boundary == 0):
            return
        try:
            # Only from the very state the record shows: a draw planned from a stale
            # record could start over with an old extra and repeat codes.
            drawn = self.service.draw(
                self.name,
                missing,
                extra=record.extra,
                epoch=record.epoch,
                within_cycle=True,
                expect_version=record.version,
            )
        except Superseded:
            return  # something wrote since; the next request's top-up tries again
        except CoderRingError as error:
            log.warning("ring %s: pool top-up failed: %s", self.name, error)
            if isinstance(error, Fenced):
                with self._mutex:
                    if self._record is record:
                        self._pool.clear()
                        self._record = None
            return
        with self._mutex:
            # Every write replaces the record: the same object means the new codes sit
            # just below the pooled ones, so the pool stays one block a give-back can
            # return.
            if self._record is not record:
                log.warning(
                    "ring %s: %d codes drawn ahead dropped: the ring changed meanwhile",
                    self.name,
                    len(drawn.codes),
                )
                return
            self._record = drawn.record
            self._pool.extend(drawn.codes)

    def refill(self) -> int:
        """Top the pool up to ``pool_size`` (beat's periodic refill); returns codes drawn."""
        self.settle()
        with self._mutex:
            self._holding()
            return self._top_up()

    def reset(self) -> RingRecord:
        """Start the ring over (first cycle, no extra), fenced with this server's epoch."""
        self.settle()
        with self._mutex:
            record = self._holding()
            self._pool.clear()
            try:
                self._record = self.service.reset(self.name, epoch=record.epoch)
            except Fenced:
                self._record = None
                raise
            return self._record

    def _holding(self) -> RingRecord:
        if self._record is None:
            raise NotHolding(f"this worker does not hold ring {self.name!r}")
        return self._record

    def _draw(
        self, count: int, *, extra: str, bump: bool = False, within_cycle: bool = False
    ) -> list[str]:
        record = self._holding()
        try:
            drawn = self.service.draw(
                self.name,
                count,
                extra=extra,
                bump=bump,
                epoch=record.epoch,
                within_cycle=within_cycle,
            )
        except Fenced:
            self._pool.clear()
            self._record = None
            raise
        self._record = drawn.record
        return drawn.codes

    def _top_up_after_serving(self) -> None:
        # The codes in hand are committed as issued: a top-up that fails because the
        # database is down must not keep them from the caller, or they would be lost.
        # The next request draws (and reports the failure) once the pool runs dry.
        # Fenced still propagates: the ring was taken over and the caller must know.
        try:
            self._top_up(only_below_half=True)
        except StoreUnavailable as error:
            log.warning("ring %s: pool top-up failed: %s", self.name, error)

    def _top_up(self, only_below_half: bool = False) -> int:
        record = self._holding()
        missing = self.pool_size - len(self._pool)
        if missing <= 0 or (only_below_half and len(self._pool) * 2 >= self.pool_size):
            return 0
        if self._pool and record.boundary == 0:
            # The cycle is used up: the pool must not straddle two cycles (a give-back
            # could not return it), so the next cycle starts once the pool is empty.
            return 0
        codes = self._draw(missing, extra=record.extra, within_cycle=True)
        self._pool.extend(codes)
        return len(codes)
