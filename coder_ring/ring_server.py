"""Serving one ring from pools of codes drawn ahead, for the process that holds it.

A :class:`RingServer` belongs to the one worker that holds a ring. On
:meth:`~RingServer.activate` it claims a new epoch; every write it makes afterwards
carries that epoch, so once another holder claims the ring (or an operator resets or
rebuilds it), none of this server's writes can commit
(:class:`~coder_ring.errors.Fenced`).

Each extra in use has its own pool, up to :data:`MAX_POOLED_EXTRAS`; an extra beyond
those gets exact draws until a pool idle for :data:`POOL_IDLE_SECONDS` goes back at a
refill. A pool holds codes already issued (committed), with the value and position each
was drawn from, and hands them out in draw order: exactly the codes the ring would
issue without a pool. Giving codes back (:func:`coder_ring.operations.give_back`) needs
the run of positions from the boundary, the values this server's own run of draws
issued there (each top-up ``continues`` the last), and no other write to that extra
since: after a direct draw beside the pool its codes are lost, never repeated.

No pool leaves the server while its top-up is in flight, and nothing draws for an
extra between its pool leaving and its codes going back: a graceful stop, handoff or
idle return gives back every code not handed out.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from concurrent.futures import Executor, ThreadPoolExecutor

from coder_ring.config import RingConfig
from coder_ring.errors import CoderRingError, Fenced, NotHolding, StoreUnavailable
from coder_ring.extra_pool import ExtraPool
from coder_ring.pool_return import give_pools_back
from coder_ring.service import RingService
from coder_ring.store import Drawn, RingRecord
from coder_ring.validation import check_bump, check_count, check_extra

log = logging.getLogger("coder_ring.pool")

#: Extras a server keeps pools for at once; more are served without drawing ahead.
MAX_POOLED_EXTRAS = 64
#: A pool of an extra (other than "") unused for this long goes back at the next refill.
POOL_IDLE_SECONDS = 60.0
#: Seconds a caller waits for a top-up in flight before drawing around it.
SETTLE_TIMEOUT = 30.0


class RingServer:
    """One ring's pools and fenced draws. Thread-safe; calls on one ring are serialized."""

    def __init__(
        self,
        service: RingService,
        name: str,
        pool_size: int | None = None,
        executor: Executor | None = None,
        max_pools: int = MAX_POOLED_EXTRAS,
    ) -> None:
        self.service = service
        self.name = name
        self.max_pools = max_pools
        self.config: RingConfig = service.ring(name)
        self._pool_size = pool_size
        self._mutex = threading.Lock()
        self._executor = executor
        self._own_executor: ThreadPoolExecutor | None = None
        self._pools: dict[str, ExtraPool] = {}
        # The ring's row as of this server's claim (None: not holding).
        self._record: RingRecord | None = None
        # Set while the server lets go: no top-up starts, so every pool can settle.
        self._closing = False

    @property
    def pool_size(self) -> int:
        """Codes drawn ahead per extra."""
        return self.config.pool_size if self._pool_size is None else self._pool_size

    @property
    def epoch(self) -> int | None:
        """The epoch this server writes with, or None when it does not hold the ring."""
        record = self._record
        return None if record is None else record.epoch

    @property
    def pooled(self) -> int:
        """Codes drawn ahead and not handed out yet, all extras."""
        return sum(len(pool.codes) for pool in list(self._pools.values()))

    def pooled_by_extra(self) -> dict[str, int]:
        """extra -> codes drawn ahead and not handed out yet."""
        return {extra: len(pool.codes) for extra, pool in list(self._pools.items())}

    def activate(self, *, if_inactive: bool = False, fill_now: bool = True) -> RingRecord:
        """Claim a new epoch (with the ring's current config) and fill the pool of the
        empty extra: now, or with ``fill_now=False`` in the background (a worker taking
        hundreds of rings at once claims them without waiting on their draws; a request
        that comes first draws for itself). With ``if_inactive`` a server that already
        holds keeps its epoch."""
        self.settle()
        with self._mutex:
            if if_inactive and self._record is not None:
                return self._record
            self._pools.clear()
            self._record = None
            self._closing = False
            self.config = self.service.ring(self.name)
            self._record = self.service.claim(self.name)
            if self.pool_size:
                pool = self._pools[""] = ExtraPool("")
                if not fill_now:
                    pool.refill = self._background().submit(self._refill_in_background, pool)
                    return self._record
                with contextlib.suppress(StoreUnavailable):  # the next request retries
                    self._top_up(pool)
            return self._record

    def deactivate(self, give_back: bool = True) -> int:
        """Stop serving: drop the pools, giving their codes back when ``give_back`` and
        nothing else wrote since. Returns the codes given back."""
        with self._mutex:
            self._closing = True  # top-ups in flight land first, then go back with the rest
        for pool in list(self._pools.values()):
            # One not started yet never will: nothing to draw only to give it back.
            self._settle(pool, cancel_queued=True)
        with self._mutex:
            record, pools = self._record, list(self._pools.values())
            self._pools.clear()
            self._record = None
            self._closing = False
        if not give_back or record is None:
            return 0
        return give_pools_back(self.service, self.config, record.epoch, pools)

    def get_codes(self, count: int, extra: str = "", bump: bool = False) -> list[str]:
        """``count`` codes of ``extra``, served from its pool where the ring allows it.

        Arguments are checked first, and a failed draw leaves the pool as it was: an
        error changes nothing. The pool is not topped up here: call
        :meth:`top_up_if_low` once the codes are on their way (no request waits for it).
        """
        check_count(count)
        check_extra(extra)
        check_bump(bump)
        deadline: float | None = None  # set once a top-up begun meanwhile is waited for
        while True:
            # A top-up in flight may bring what is missing (one still queued is dropped:
            # this request draws for itself). One another thread began meanwhile is waited
            # for too: two draws at once break the run the pool's codes go back in.
            pool = self._pools.get(extra)
            if pool is not None and (bump or len(pool.codes) < count):
                self._settle(pool, cancel_queued=True)
            with self._mutex:
                pool = self._pools.get(extra)
                short = pool is not None and (bump or len(pool.codes) < count)
                if short and pool is not None and pool.in_flight():
                    now = time.monotonic()
                    deadline = deadline or now + SETTLE_TIMEOUT
                    if now < deadline:  # else a stuck top-up: this request draws around it
                        continue
                return self._serve(pool, count, extra, bump)

    def _serve(self, pool: ExtraPool | None, count: int, extra: str, bump: bool) -> list[str]:
        """:meth:`get_codes`' draw (mutex held, no top-up of ``pool`` in flight)."""
        record = self._holding()
        # A new extra's pool is kept only once a draw for it succeeded (a refused extra
        # leaves none behind), and only while there is room for one: beyond that, the
        # extra gets exactly what it asks for, nothing drawn ahead.
        keep = pool is not None or len(self._pools) < self.max_pools
        pool = pool or ExtraPool(extra)
        if bump:
            # A new cycle: the old one's pooled codes are dropped, never handed out.
            drawn = self._draw(record, pool, count, bump=True)
            pool.codes.clear()
            codes = drawn.codes
        elif count <= len(pool.codes):
            codes = pool.codes.take(count)
        else:
            # Draw the rest first: if that fails, the pooled codes stay pooled.
            drawn = self._draw(record, pool, count - len(pool.codes))
            codes = pool.codes.codes() + drawn.codes
            pool.codes.clear()
        if keep:
            self._pools[extra] = pool
            pool.used = time.monotonic()
        return codes

    def get_code(self, extra: str = "", bump: bool = False) -> str:
        """One code (see :meth:`get_codes`)."""
        return self.get_codes(1, extra, bump)[0]

    def top_up_if_low(self, extra: str = "") -> None:
        """Top ``extra``'s pool up in the background if it is below half; returns at once.

        The draw runs outside the serving mutex, so requests go on being served from the
        pool meanwhile. Errors are logged: the next request meets them and reports them.
        """
        pool = self._pools.get(extra)
        if pool is not None and len(pool.codes) * 2 >= self.pool_size:
            return  # full enough (read without the mutex: checked again under it below)
        with self._mutex:
            pool = self._pools.get(extra)
            if (
                self._record is None
                or self._closing
                or pool is None
                or pool.in_flight()
                or len(pool.codes) * 2 >= self.pool_size
            ):
                return
            pool.refill = self._background().submit(self._refill_in_background, pool)

    def settle(self) -> None:
        """Wait until every top-up in flight has landed."""
        for pool in list(self._pools.values()):
            self._settle(pool)

    def refill(self) -> int:
        """Top every pool up to ``pool_size`` now (beat's periodic refill), after giving
        back the pools idle for :data:`POOL_IDLE_SECONDS`; codes drawn."""
        self.settle()
        with self._mutex:
            record = self._holding()
            now = time.monotonic()
            idle = [
                pool
                for pool in self._pools.values()
                if pool.extra and now - pool.used > POOL_IDLE_SECONDS and not pool.in_flight()
            ]
            if idle:
                # Under the mutex: no request draws for these extras before they are home.
                for pool in idle:
                    del self._pools[pool.extra]
                give_pools_back(self.service, self.config, record.epoch, idle)
            if "" not in self._pools:
                self._pools[""] = ExtraPool("")
            # A pool whose top-up started since the settle above is left to it: two draws
            # at once for one pool would break the run its codes go back in.
            pools = [pool for pool in self._pools.values() if not pool.in_flight()]
            return sum(self._top_up(pool, record) for pool in pools)

    def reset(self) -> RingRecord:
        """Start every extra of the ring over, fenced with this server's epoch (the server
        keeps serving, with empty pools)."""
        self.settle()
        with self._mutex:
            record = self._holding()
            self._pools.clear()
            try:
                self._record = self.service.reset(self.name, epoch=record.epoch)
            except Fenced:
                self._record = None
                raise
            return self._record

    def still_current(self, stored: RingRecord | None = None) -> bool:
        """Whether this server's epoch is still the ring's (``stored``: the ring's row if
        the caller read it already). If not (an operator reset or rebuilt the ring, or
        another holder claimed it), drop the pools at once, so no code of the old state
        is served, and return False."""
        record = self._record
        if record is None:
            return False
        if stored is None:
            stored = self.service.store.ring_record(self.name)
        if stored is not None and stored.epoch <= record.epoch:
            return True
        with self._mutex:
            self._drop(record)
        return False

    def close(self) -> None:
        """Stop this server's own top-up thread, if it made one."""
        if self._own_executor is not None:
            self._own_executor.shutdown(wait=True)

    # ----------------------------------------------------------------------------------

    def _drop(self, record: RingRecord) -> None:
        """Forget the pools and the claim if still at ``record`` (mutex held): fenced, its
        codes can neither be served nor given back (lost, never repeated)."""
        if self._record is record:
            self._pools.clear()
            self._record = None

    def _holding(self) -> RingRecord:
        if self._record is None:
            raise NotHolding(f"this worker does not hold ring {self.name!r}")
        return self._record

    def _background(self) -> Executor:
        if self._executor is not None:
            return self._executor
        if self._own_executor is None:
            self._own_executor = ThreadPoolExecutor(1, thread_name_prefix=f"refill-{self.name}")
        return self._own_executor

    def _settle(self, pool: ExtraPool, cancel_queued: bool = False) -> None:
        pending = pool.refill
        if pending is not None and not (cancel_queued and pending.cancel()):
            with contextlib.suppress(Exception):
                pending.result(timeout=SETTLE_TIMEOUT)

    def _draw(
        self,
        record: RingRecord,
        pool: ExtraPool,
        count: int,
        *,
        bump: bool = False,
        within_cycle: bool = False,
    ) -> Drawn:
        """A fenced draw for ``pool``'s extra (mutex held); a fence drops every pool."""
        try:
            drawn = self.service.draw_checked(
                self.config,
                count,
                extra=pool.extra,
                bump=bump,
                epoch=record.epoch,
                within_cycle=within_cycle,
                continues=pool.continues(),
            )
        except Fenced:
            self._drop(record)
            raise
        pool.land(drawn)
        return drawn

    def _top_up(self, pool: ExtraPool, record: RingRecord | None = None) -> int:
        """Fill ``pool`` to ``pool_size`` within its cycle (mutex held); codes drawn."""
        record = record or self._holding()
        missing = self.pool_size - len(pool.codes)
        if missing <= 0 or (pool.codes and pool.boundary == 0):
            # A used-up cycle: the pool must not straddle two cycles (its codes could
            # not be given back), so the next cycle starts once the pool is empty.
            return 0
        drawn = self._draw(record, pool, missing, within_cycle=True)
        pool.add(drawn)
        return len(drawn.codes)

    def _refill_in_background(self, pool: ExtraPool) -> None:
        with self._mutex:
            record = self._record
            missing = self.pool_size - len(pool.codes)
            continues = pool.continues()
            if (
                record is None
                or self._pools.get(pool.extra) is not pool
                or missing <= 0
                or (pool.codes and pool.boundary == 0)
            ):
                return
        try:
            drawn = self.service.draw_checked(
                self.config,
                missing,
                extra=pool.extra,
                epoch=record.epoch,
                within_cycle=True,
                continues=continues,
            )
        except CoderRingError as error:
            log.warning("ring %s: pool top-up failed: %s", self.name, error)
            if isinstance(error, Fenced):
                with self._mutex:
                    self._drop(record)
            return
        with self._mutex:
            if self._record is not record or self._pools.get(pool.extra) is not pool:
                # Dropped meanwhile: the codes are issued, so they are lost, never repeated.
                log.warning(
                    "ring %s: %d codes drawn ahead dropped: the pool was dropped meanwhile",
                    self.name,
                    len(drawn.codes),
                )
                return
            pool.land(drawn)
            pool.add(drawn)
