"""What a ring worker process holds: a seat per ring (lease + pool server), and the
thread that takes, renews and loses leases independently of Celery's event loop.

Nothing here imports Celery; :mod:`workers.ownership` plugs it into the consumer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import redis

from coder_ring.errors import CoderRingError, UnknownRing
from coder_ring.pool import RingServer
from coder_ring.service import RingService
from workers.lease import Lease, new_token
from workers.settings import WorkerSettings

log = logging.getLogger("coder_ring.worker")


@dataclass
class RingSeat:
    """One ring as seen by this worker: its lease and, while held, its pool server."""

    ring: str
    lease: Lease
    server: RingServer
    #: monotonic() time until which the lease is surely ours; 0 when not held.
    valid_until: float = 0.0
    closed: bool = False
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    def holding(self) -> bool:
        """True while this worker may serve the ring."""
        return not self.closed and self.valid_until > time.monotonic()

    def recheck(self) -> bool:
        """Ask Redis now whether the lease is still ours (after a fenced write)."""
        if self.closed:
            return False
        try:
            until = self.lease.acquire_or_renew()
        except redis.RedisError:
            until = None
        self.valid_until = until or 0.0
        return until is not None

    def ensure_active(self) -> None:
        """Claim the ring in the database if this server has not yet (or was fenced)."""
        if self.server.epoch is None and self.holding():
            self.server.activate(if_inactive=True)


class WorkerRuntime:
    """The rings one worker process may serve, and the lease thread."""

    def __init__(
        self,
        settings: WorkerSettings,
        rings: Iterable[str],
        hostname: str,
        service: RingService | None = None,
    ) -> None:
        self.settings = settings
        self.service = service or RingService.from_settings(settings.engine)
        names = list(rings) or list(self.service.rings)
        for name in names:
            self.service.ring(name)  # UnknownRing names the configured rings
        ttl = settings.lock_ttl
        # Socket timeouts below the renewal period: a hung Redis must not stall renewals
        # past the lease's validity.
        self.redis = redis.Redis.from_url(
            settings.redis_url, socket_timeout=ttl / 4, socket_connect_timeout=ttl / 4
        )
        token = new_token(hostname)
        self.hostname = hostname
        self.seats = {
            name: RingSeat(
                name, Lease(self.redis, name, token, ttl), RingServer(self.service, name)
            )
            for name in names
        }
        #: Called (from the lease thread) whenever a lease is won or lost.
        self.on_change: Callable[[], None] = lambda: None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Activations and give-backs wait on a ring's mutex; they run here so that the
        # lease thread never waits on a slow task or database.
        self._transitions = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ring-seat")

    def seat(self, ring: str) -> RingSeat:
        """The seat of ``ring``; UnknownRing if this worker does not serve it."""
        seat = self.seats.get(ring)
        if seat is None:
            raise UnknownRing.naming(ring, self.seats)
        return seat

    def start(self) -> None:
        """Start the lease thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ring-leases", daemon=True)
            self._thread.start()

    def stop(self, give_back: bool = True) -> None:
        """Stop serving every ring: give pooled codes back, then release the leases."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.lock_ttl)
        for seat in self.seats.values():
            seat.closed = True
            seat.valid_until = 0.0
        self.on_change()
        self._transitions.shutdown(wait=True)
        for seat in self.seats.values():
            # Give back before releasing: a standby may claim only after the codes are home.
            returned = seat.server.deactivate(give_back=give_back)
            if returned:
                log.info("ring %s: gave %d pooled codes back", seat.ring, returned)
            with contextlib.suppress(redis.RedisError):  # if so, it expires by itself
                seat.lease.release()
        self.redis.close()
        self.service.close()

    def lose(self, seat: RingSeat) -> None:
        """Treat ``seat`` as lost now (fenced by another holder): stop consuming and drop
        the pool (the server already dropped it if the fenced write was its own)."""
        seat.valid_until = 0.0
        self.on_change()
        if not seat.closed:
            self._transitions.submit(seat.server.deactivate, True)

    def _run(self) -> None:
        self._prepare()
        period = self.settings.lock_ttl / 3
        while not self._stopping.is_set():
            for seat in self.seats.values():
                self._tend(seat)
            self._stopping.wait(period)

    def _prepare(self) -> None:
        # Fill empty rings before competing for any lock, so that holding a lock rarely
        # waits on a fill (32^4 codes take about a second). A failure here (database
        # down, ring shape changed) must not keep the worker from serving: it takes its
        # locks anyway and callers get the error until it is fixed.
        try:
            self.service.migrate()
        except CoderRingError as error:
            log.error("cannot migrate the database: %s", error)
            return
        for ring in self.seats:
            try:
                self.service.populate([ring])
            except CoderRingError as error:
                log.error("ring %s: cannot populate: %s", ring, error)

    def _tend(self, seat: RingSeat) -> None:
        # Held since the last tend (valid_until is 0 only once a loss was handled). A
        # lease that lapsed before this renewal (the process was paused, or this thread
        # starved, past the TTL) is a loss even if the renewal below succeeds: another
        # worker may have held the ring meanwhile, so the pool is dropped and the ring
        # claimed anew on the next tend.
        held = seat.valid_until > 0
        lapsed = held and not seat.holding()
        try:
            until = seat.lease.acquire_or_renew()
        except redis.RedisError as error:
            if held:
                log.warning("ring %s: lock unreachable (%s); stop serving", seat.ring, error)
            until = None
        if self._stopping.is_set() or seat.closed:
            return
        if lapsed:
            until = None
        seat.valid_until = until or 0.0
        if until is not None and not held:
            log.info("ring %s: lock won by %s", seat.ring, self.hostname)
            self._transitions.submit(self._activate, seat)
            self.on_change()
        elif until is None and held:
            log.warning("ring %s: lock lost; pool dropped", seat.ring)
            self._transitions.submit(seat.server.deactivate, True)
            self.on_change()

    def _activate(self, seat: RingSeat) -> None:
        try:
            seat.ensure_active()
        except CoderRingError as error:
            # Requests keep being consumed and get this error until the database is back.
            log.error(
                "ring %s: cannot claim (%s); will retry on the next request", seat.ring, error
            )
