"""Whether a worker can reach its database (with a back-off while it cannot), and
whether its Redis answers in time for its lease rounds (:class:`LinkHealth`).

A worker that keeps a ring while its database is unreachable fails every request for
it, and keeps a healthy standby from serving. So: a request that meets an unreachable
database marks the start of a failure; once it has lasted a lock TTL the worker
declares itself unhealthy (it gives its rings up and the coordinator gives it none),
and it probes the database again after a back-off that doubles up to
:data:`MAX_BACKOFF`.

The lease thread's own calls to the database (the probe, the epoch check) run on
:class:`Bounded`'s thread: the lease thread waits for them at most a share of the TTL,
whatever the driver does (a connect through a dead link, a ping on a dead pooled
connection), and a call that did not answer in time counts as a failure.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from coder_ring.errors import CoderRingError, StoreUnavailable

T = TypeVar("T")

log = logging.getLogger("coder_ring.worker")

#: Longest wait between two attempts to reach a failing database.
MAX_BACKOFF = 60.0
#: What :meth:`DatabaseHealth.check` reports.
LOST, BACK = "lost", "back"


class DatabaseHealth:
    """The health of one worker's database; :meth:`check` runs once per lease round."""

    def __init__(
        self,
        probe: Callable[[], None],
        grace: float,
        where: str,
        first_probe: Callable[[], None] | None = None,
    ) -> None:
        self.probe = probe
        #: Until it succeeds once, the probe (a worker migrates when it starts). Never
        #: after: a migration waits on an advisory lock while another process migrates,
        #: and as a probe it would make a healthy worker give its rings up.
        self._first_probe = first_probe
        self.grace = grace
        self.where = where
        #: False until the first probe succeeds, and while the database is unreachable.
        self.healthy = False
        self._failing_since: float | None = None
        self._backoff = grace
        self._retry_at = 0.0

    def failed(self, since: float | None = None) -> None:
        """A request met an unreachable database (``since``: when it started, monotonic)."""
        if self._failing_since is None:
            self._failing_since = time.monotonic() if since is None else since

    def ok(self) -> None:
        """A request reached the database."""
        self._failing_since = None

    def failing(self) -> bool:
        """True while a failure is being timed (before it makes the worker unhealthy)."""
        return self._failing_since is not None

    def _probe(self) -> None:
        if self._first_probe is None:
            self.probe()
            return
        self._first_probe()
        self._first_probe = None

    def check(self) -> str | None:
        """:data:`LOST` when the worker just became unhealthy (give the rings up),
        :data:`BACK` when it just became healthy again, else None."""
        now = time.monotonic()
        if self.healthy:
            failing = self._failing_since
            if failing is None or now - failing < self.grace:
                return None
            # One failed request proves little (a transaction aborted while this process
            # was frozen, say): ask the database once more before giving rings up. When
            # it is really gone this waits at most the connect timeout, and the locks
            # lapse meanwhile, which is what giving the rings up means anyway.
            try:
                self._probe()
            except CoderRingError:
                pass
            else:
                self._failing_since = None
                return None
            self.healthy = False
            self._retry_at = now + self._backoff
            log.error(
                "database %s unreachable for %.1f s: giving every ring up; next try in %.0f s",
                self.where,
                now - failing,
                self._backoff,
            )
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            return LOST
        if now < self._retry_at:
            return None
        try:
            self._probe()
        except CoderRingError as error:
            self._retry_at = now + self._backoff
            log.error("database not usable (%s); next try in %.0f s", error, self._backoff)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            return None
        if self._failing_since is not None or self._retry_at:
            log.info("database reachable again: serving rings")
        self.healthy, self._failing_since, self._backoff = True, None, self.grace
        return BACK


class Bounded:
    """Database calls of the lease thread, on a thread of their own, each waited for at
    most a given time. One at a time: while a call that timed out is still stuck, the
    next fails at once (the database is not answering)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ring-db-check")
        self._pending: Future[object] | None = None

    def run(self, call: Callable[[], T], budget: float) -> T:
        """``call()``'s result; :class:`StoreUnavailable` if it did not end within
        ``budget`` seconds (it goes on in the background) or one before it is still stuck."""
        if self._pending is not None and not self._pending.done():
            raise StoreUnavailable("the database did not answer an earlier check yet")
        future: Future[T] = self._executor.submit(call)
        self._pending = future  # type: ignore[assignment]
        try:
            return future.result(timeout=max(budget, 0.01))
        except FutureTimeout:
            raise StoreUnavailable(f"the database did not answer within {budget:.2f} s") from None

    def close(self) -> None:
        """Stop the thread (a call still stuck is not waited for)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class LinkHealth:
    """Whether this worker's Redis answers in time for its lease rounds.

    A slow link (every call answered, each one late: 200 ms a round trip, say) fails no
    call, yet a round of half a dozen calls then outlasts its period: the locks lapse
    between renewals, and the rings stop and start again on this worker, a pool lost
    each time. So when the Redis calls of a round answered but took more than ``limit``
    in all, twice in a row (or more than twice ``limit`` once: the round's whole period,
    the lease schedule is broken already), the worker becomes unhealthy: it gives its
    rings up at once (a handoff would give the pools back over the slow link, seconds
    while nobody serves; the pools are dropped, their codes never repeated), and takes
    none until its rounds have been quick for ``hold`` seconds. ``hold`` starts at
    ``grace`` and doubles (up to :data:`MAX_BACKOFF`) when the link degrades again within
    four holds of recovering. A round where Redis did not answer at all (a cut) counts
    neither way: the locks lapse by themselves, and a single lost reply is no reason to
    move every ring. Nor does a slow round count unless another member had a quick one
    since this worker's slow rounds began: when Redis itself is slow, every worker is,
    and giving the rings up would leave them to nobody.
    """

    #: Slow rounds in a row that make the link degraded.
    SLOW_ROUNDS = 2

    def __init__(self, limit: float, grace: float) -> None:
        self.limit = limit
        self.grace = grace
        self.healthy = True
        self._slow = 0
        self._quick_since: float | None = None
        self._hold = grace
        self._back_at = float("-inf")
        #: When the slow rounds in a row began (monotonic).
        self._slow_since = float("inf")
        #: Slow enough to degrade, waiting to know of another member's quick round.
        self._undecided = False

    def round(
        self, seconds: float, answered: bool, quick_peer_since: float | None = None
    ) -> str | None:
        """After a round whose Redis calls took ``seconds`` (``answered``: at least one
        of them got a reply; ``quick_peer_since``: when the latest quick round of another
        member began, None: none known): :data:`LOST` when the link just degraded,
        :data:`BACK` when it just became well again, else None."""
        if not answered:
            self._quick_since, self._undecided = None, False
            return None
        now = time.monotonic()
        if seconds <= self.limit:
            self._slow, self._slow_since, self._undecided = 0, float("inf"), False
            if self._quick_since is None:
                self._quick_since = now
            if not self.healthy and now - self._quick_since >= self._hold:
                self.healthy, self._back_at = True, now
                log.info("Redis answers in time again: serving rings")
                return BACK
            return None
        self._slow += 1
        self._slow_since = min(self._slow_since, now - seconds)
        self._quick_since = None
        very_slow = seconds > 2 * self.limit
        self._undecided = self.healthy and (self._slow >= self.SLOW_ROUNDS or very_slow)
        return self.confirm(quick_peer_since)

    @property
    def undecided(self) -> bool:
        """Slow enough to degrade, but no other member is known to have had a quick round
        since this worker's slow ones began: :meth:`confirm` with a fresher look."""
        return self._undecided

    def confirm(self, quick_peer_since: float | None) -> str | None:
        """:data:`LOST` when the last round was slow enough and another member's quick
        round began after this worker's slow ones (``quick_peer_since``), else None."""
        if not self._undecided:
            return None
        if quick_peer_since is None or quick_peer_since <= self._slow_since:
            return None  # slow for everyone, as far as this worker knows: Redis is
        self._undecided = False
        now = time.monotonic()
        recovered_for = now - self._back_at
        self._hold = (
            min(self._hold * 2, MAX_BACKOFF) if recovered_for < 4 * self._hold else self.grace
        )
        self.healthy = False
        log.error(
            "Redis calls of %d lease round(s) in a row were slow (limit %.2f s, twice that "
            "once) while another member's were quick: giving every ring up until they are "
            "quick for %.0f s",
            self._slow,
            self.limit,
            self._hold,
        )
        return LOST
