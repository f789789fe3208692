"""Whether a worker can reach its database, with a back-off while it cannot.

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

    def __init__(self, probe: Callable[[], None], grace: float, where: str) -> None:
        self.probe = probe
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
                self.probe()
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
            self.probe()
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
