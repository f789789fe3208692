"""What a ring worker process holds, and the thread that keeps it right.

The lease thread runs every TTL/3 (sooner on a notice), independently of Celery's
event loop and of any task in flight (a thread of its own renews the worker's lease
between rounds). Each round it:

1. reloads the rings file if it changed, and makes the seats match the rings
   (:mod:`coder_ring.celery.reload`: rings added are served, rings removed are handed
   off, changed ones are claimed again with their new settings);
2. checks the database's health (:mod:`coder_ring.celery.health`);
3. heartbeats its membership, takes a turn as coordinator if elected
   (:mod:`coder_ring.registry.coordinator`), and reads the assignment;
4. takes, renews, hands off or loses each ring's lock to follow the assignment, and
   gives every ring up when Redis answers too slowly (:class:`~.health.LinkHealth`);
5. checks that the epochs of the rings it serves are still its own
   (:mod:`coder_ring.celery.epoch_check`: an operator's reset or rebuild reaches it
   here, or at once by a notice).

Nothing here imports Celery (test_floors checks it): :mod:`~coder_ring.celery.ownership` does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import redis

from coder_ring.celery.epoch_check import EpochCheck
from coder_ring.celery.health import LOST, Bounded, DatabaseHealth, LinkHealth
from coder_ring.celery.link_watch import LinkWatch
from coder_ring.celery.registry_view import RegistryView
from coder_ring.celery.reload import RingsReload
from coder_ring.celery.ring_locks import LeaseKeeper, RingLocks
from coder_ring.celery.seat import RingSeat, served_pools
from coder_ring.celery.serving_log import ServingLog
from coder_ring.celery.transitions import OrderedTransitions
from coder_ring.config import RingsFile
from coder_ring.errors import CoderRingError, StoreUnavailable, UnknownRing
from coder_ring.metrics.worker import WorkerMetrics
from coder_ring.registry import notices
from coder_ring.registry.client import registry_client
from coder_ring.registry.keys import lock_key, member_key
from coder_ring.registry.lease import new_member_id
from coder_ring.registry.member_lease import MemberLease
from coder_ring.registry.membership import MemberInfo
from coder_ring.registry.reachability import Reachability
from coder_ring.ring_server import RingServer
from coder_ring.service import RingService
from coder_ring.settings import WorkerSettings
from coder_ring.urls import redact_url

log = logging.getLogger("coder_ring.worker")

#: Rings let go at once when the worker stops (each one transaction and two Redis calls).
LET_GO_THREADS = 4
#: Rings whose activation or handoff runs at once (each mostly waits on the database).
TRANSITION_THREADS = 4


class WorkerRuntime:
    """The rings one worker process may serve, its membership, and the lease thread."""

    def __init__(
        self,
        settings: WorkerSettings,
        rings: Iterable[str],
        node: str,
        service: RingService | None = None,
    ) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self.node = node
        self.serving_log = ServingLog(node)
        rings_file = RingsFile(settings.engine.config_path)
        # Taken before the service reads the file: an edit made meanwhile is reloaded.
        seen = rings_file.stamp()
        self.service = service or RingService.from_settings(settings.engine)
        #: Rings named on the command line (empty: every configured ring).
        self.restriction = frozenset(rings)
        for name in sorted(self.restriction):
            self.service.ring(name)  # UnknownRing names the configured rings
        ttl = settings.lock_ttl
        # A round makes at most two calls to an unreachable Redis (the first failure ends
        # the registry's part, then one tend): a third of the TTL between them.
        self.redis = registry_client(settings, ttl / 6)
        self.reach = Reachability(log, max_wait=ttl)  # rounds back off while it is lost
        self.member_id = new_member_id(node)
        self.started = time.time()
        self.seats: dict[str, RingSeat] = {}
        #: Called (from the lease thread) whenever a ring is won, lost or moved.
        self.on_change: Callable[[], None] = lambda: None
        self.checks = Bounded()  # the lease thread's database calls, each bounded
        #: Whether the database can be reached, and Redis answers in time (a round's calls
        #: within a sixth of the TTL): no ring is taken while either is not so.
        where, bounded = redact_url(settings.engine.database_url), self.checks.run
        self.health = DatabaseHealth(
            lambda: bounded(self.service.store.ping, ttl / 3),
            ttl,
            where,
            first_probe=lambda: bounded(self.service.migrate, ttl / 3),
        )
        self.link = LinkHealth(ttl / 6, ttl)
        #: Set when the worker starts to leave; ``_stopped`` once every ring is let go.
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._wake = threading.Event()
        #: Held through each lease round: a stop waits for the one under way.
        self._in_round = threading.Lock()
        self._thread: threading.Thread | None = None
        # Pool top-ups of every ring; activations, handoffs and give-backs off the lease
        # thread (it never waits on a slow task or database), in order per ring but several
        # rings at once: a handoff does not queue behind hundreds of activations.
        self.refills = ThreadPoolExecutor(2, thread_name_prefix="ring-refill")
        self._transitions = OrderedTransitions(TRANSITION_THREADS)
        self.epochs = EpochCheck(self.service.store, self.checks, self.health,
            lambda seat: self._transitions.submit(seat.ring, self._activate, seat))  # fmt: skip
        self._listener = notices.NoticeListener(
            registry_client(settings, connect_timeout=ttl / 4),
            self.namespace,
            self._on_notice,
        )
        lease = MemberLease(self.redis, self.namespace, self.member_id, ttl)
        self.locks = RingLocks(lease, self.member_id, node,
                               won=self._won, lost=self._lost, leave=self.hand_off)  # fmt: skip
        self._keeper = LeaseKeeper(self.locks, lambda: list(self.seats.values()),
                                   member_key(self.namespace, self.member_id), ttl)  # fmt: skip
        self.reload = RingsReload(self, rings_file, seen)
        self.reload.sync()
        #: Ring metrics (coder_ring.metrics.worker), served on CODER_RING_METRICS_PORT if set.
        self.metrics = WorkerMetrics(
            node=node,
            member_id=self.member_id,
            port=settings.metrics_port,
            rings=self.seats.keys,
            pools=lambda: served_pools(self.seats),
            status=self.service.status,
            healthy=lambda: self.healthy,
        )
        # One estimate of Redis's clock (the lease's) for every lease-extending write.
        self.registry = RegistryView(self.redis, self.namespace, self.member_id, ttl,
            metrics=self.metrics, reach=self.reach, clock=lease.clock)  # fmt: skip
        self.membership, self.coordinator = self.registry.membership, self.registry.coordinator
        self.watch = LinkWatch(self.link, self.registry, self.locks, ttl / 3)

    # -- public -----------------------------------------------------------------------

    def seat(self, ring: str) -> RingSeat:
        """The seat of ``ring``; UnknownRing if this worker does not serve it."""
        seat = self.seats.get(ring)
        if seat is None:
            raise UnknownRing.naming(ring, self.seats)
        return seat

    def start(self) -> None:
        """Start the lease and notice threads (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ring-leases", daemon=True)
            self._thread.start()
            self._keeper.start()
            self._listener.start()
            self.metrics.start()

    def stop(self, give_back: bool = True) -> None:
        """Leave: deregister, then for every ring stop serving, give the pools back and
        release the lock (so a standby claims only once the codes are home). The lease
        thread renews the locks still held meanwhile, however many pools go back."""
        self._stopping.set()  # the lease thread only renews from now on
        self._wake.set()
        with self._in_round:  # a round under way ends first: no heartbeat after the leave
            pass
        self._listener.stop()
        with contextlib.suppress(redis.RedisError):
            self.membership.leave(self.member_id)
            self.coordinator.resign()
        seats = list(self.seats.values())
        for seat in seats:
            seat.closed = True
        self.on_change()
        self._transitions.shutdown(wait=True)
        with ThreadPoolExecutor(LET_GO_THREADS, thread_name_prefix="ring-let-go") as letting:
            list(letting.map(lambda seat: self._let_go(seat, give_back), seats))
        self._stopped.set()
        self._keeper.stop()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.lock_ttl)
        with contextlib.suppress(redis.RedisError):  # if so, it expires by itself
            self.locks.book.end()
        self.refills.shutdown(wait=True)
        self.checks.close()
        self._listener.join()
        self.redis.close()
        self.metrics.close()
        self.service.close()

    @property
    def healthy(self) -> bool:
        """False while the database cannot be reached or Redis answers too slowly for the
        lease rounds: no ring is taken then, and those held are let go."""
        return self.health.healthy and self.link.healthy

    def store_failed(self) -> None:
        """A request met an unreachable database (the lease thread may give rings up)."""
        if not self.health.failing():
            self.health.failed()
            self._wake.set()

    def store_ok(self) -> None:
        """A request reached the database."""
        self.health.ok()

    def info(self) -> MemberInfo:
        """What this worker publishes about itself."""
        return MemberInfo(
            id=self.member_id,
            node=self.node,
            pid=os.getpid(),
            started=self.started,
            rings=tuple(sorted(name for name, seat in self.seats.items() if not seat.closed)),
            healthy=self.healthy,
            database=redact_url(self.settings.engine.database_url),
            holding=tuple(sorted(name for name, seat in self.seats.items() if seat.has_lock())),
            redis_seconds=None if self.watch.seconds is None else round(self.watch.seconds, 3),
            redis_began=self.watch.began,
        )

    # -- the lease thread -------------------------------------------------------------

    def _run(self) -> None:
        period = self.settings.lock_ttl / 3
        while not self._stopped.is_set():
            began = self._keeper.round_began = time.monotonic()
            try:
                with self._in_round:
                    if self._stopping.is_set():
                        self.locks.keep(list(self.seats.values()))
                    else:
                        self._round()
            except Exception:  # a bug here must not stop renewals for good
                log.exception("lease round failed")
            # Locks are tended at most a period plus one round apart (under 0.9 TTL).
            tending = any(seat.has_lock() for seat in self.seats.values())
            self._wake.wait(self.reach.pace(began + period - time.monotonic(), tending))
            self._wake.clear()

    def _round(self) -> None:
        started = time.monotonic()
        if not self._stopping.is_set():  # stop() closes every seat: none may open again
            try:
                self.reload.round()
            except Exception:  # retried next round; renewals must go on meanwhile
                log.exception("rings file reload failed")
        self._check_health()
        answered = self.registry.round(self.info(), self.healthy)
        tended = self.locks.follow(
            list(self.seats.values()),
            self.registry.assignment,
            self.registry.live,
            healthy=self.healthy,
            stopping=self._stopping.is_set(),
        )
        if self.watch.round(started, answered or tended, self.healthy) == LOST:
            self._give_up("Redis answers too slowly")
        self.serving_log.round(self.seats.values(), self.registry.assignment)
        ttl = self.settings.lock_ttl
        budget = min(ttl / 3, started + 2 * ttl / 3 - time.monotonic())
        # Too little time left is no failure: next round. Run even after a slow round: a
        # reset by the Python API reaches the worker here alone (red team 6: skipped
        # while Redis was slow for everyone, the old pool was served after the reset).
        if budget >= ttl / 10:
            self.epochs.run(self.seats.values(), budget)

    def new_seat(self, ring: str) -> RingSeat:
        """A seat for ``ring`` (configured), not held."""
        lock = self.locks.book.lock(lock_key(self.namespace, ring))
        return RingSeat(ring, lock, RingServer(self.service, ring, executor=self.refills))

    def hand_off(self, seat: RingSeat, why: str) -> None:
        """Stop serving ``seat`` now; its pool goes back, then its lock (in the background)."""
        seat.handing_off = True
        try:
            self._transitions.submit(seat.ring, self._finish_hand_off, seat, why)
        except BaseException:
            # Nothing would ever end this handoff, and a seat handing off keeps renewing
            # its lock: serve on, and let the next round try again.
            seat.handing_off = False
            raise
        self.on_change()  # stop consuming the ring's queue now

    def _finish_hand_off(self, seat: RingSeat, why: str) -> None:
        try:
            returned = self._let_go(seat, give_back=True)
            log.info(
                "ring %s: handed off (%s); gave %d pooled codes back", seat.ring, why, returned
            )
        except Exception:  # an executor would keep it to itself
            log.exception("ring %s: handoff failed", seat.ring)
        self.reload.handed_off(seat)
        self.on_change()

    def _won(self, seat: RingSeat) -> None:
        self.metrics.won(seat.ring)
        self._transitions.submit(seat.ring, self._activate, seat)
        self.on_change()

    def _lost(self, seat: RingSeat) -> None:
        self._transitions.submit(seat.ring, seat.drop_claim, True)
        self.on_change()

    def _let_go(self, seat: RingSeat, give_back: bool) -> int:
        """Let ``seat`` go (see :meth:`RingSeat.let_go`) and tell the others."""
        returned, released = seat.let_go(give_back)
        if returned:
            log.info("ring %s: gave %d pooled codes back", seat.ring, returned)
        if released:
            notices.publish(self.redis, self.namespace, notices.RELEASED, seat.ring)
        return returned

    def _activate(self, seat: RingSeat) -> None:
        try:
            seat.ensure_active()
            self.store_ok()
        except CoderRingError as error:
            # Requests get this error (RingMismatch, StoreUnavailable...) until it is fixed.
            if isinstance(error, StoreUnavailable):
                self.store_failed()
            log.error("ring %s: cannot claim (%s)", seat.ring, error)

    # -- health, epochs, rings file ---------------------------------------------------

    def _check_health(self) -> None:
        if self.health.check() == LOST:
            self._give_up("database unreachable")

    def _give_up(self, why: str) -> None:
        """Say so in the membership while releasing every lock in one call (at once: on a
        slow link each is a round trip or a timeout), drop the pools, then tell the others
        in one trip (the coordinator, moving the rings on their notice, reads us unhealthy)."""
        saying = threading.Thread(target=self.registry.say, args=(self.info(),))
        saying.start()  # healthy no more: the coordinator gives this worker no ring
        released = self.redis.pipeline(transaction=False)
        for seat in self.locks.give_up(list(self.seats.values())):
            log.warning("ring %s: given up (%s); pool dropped", seat.ring, why)
            self._transitions.submit(seat.ring, seat.drop_claim, False)
            notices.publish(released, self.namespace, notices.RELEASED, seat.ring)
        saying.join()  # bounded: two calls at most, each within the client's timeout
        with contextlib.suppress(redis.RedisError):  # the others notice by themselves
            released.execute()
        self.on_change()

    def _on_notice(self, kind: str, ring: str) -> None:
        # Any notice (a ring changed, released or reassigned) is worth a round now.
        self.metrics.notice(kind, ring)  # first: a RELEASED one marks a handoff
        seat = self.seats.get(ring) if kind == notices.CHANGED else None
        if seat is not None and seat.can_serve() and seat.server.epoch is None:
            # Held, but its claim failed (RingMismatch until the rebuild that sent this).
            self._transitions.submit(seat.ring, self._activate, seat)
        self._wake.set()

    def reclaim(self, seat: RingSeat) -> Future[None]:
        """Give ``seat``'s pool back and claim its ring again (its settings changed)."""
        return self._transitions.submit(seat.ring, self._reclaim, seat)

    def _reclaim(self, seat: RingSeat) -> None:
        seat.drop_claim(give_back=True)
        self._activate(seat)
