"""Whether a process reaches a server (Redis), said in one log line per change, with
the pace of its retries while it does not.

A process that logged every failed call filled its log during an outage (beat: 2,294
lines, 107 tracebacks in 70 s; a worker: one line every 1.7 s). With this, it logs
``Redis unreachable: <error>`` once when the server is lost and ``Redis reachable again
after N s`` once when it answers again, and in between it tries again after 1, 2, 4...
seconds, at most ``max_wait`` apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

#: Seconds before the first retry after a failure (each next wait doubles).
FIRST_WAIT = 1.0


class Reachability:
    """The state of one server as one process sees it (call :meth:`failed` and
    :meth:`reached` after each attempt; :meth:`due` says whether to try now)."""

    def __init__(
        self,
        log: logging.Logger,
        max_wait: float,
        server: str = "Redis",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.server = server
        self.max_wait = max_wait
        self._clock = clock
        #: When the server was lost (None while it answers).
        self.lost_at: float | None = None
        self._wait = 0.0
        self._next_try = 0.0

    @property
    def down(self) -> bool:
        """True from a failure until the next success."""
        return self.lost_at is not None

    def due(self) -> bool:
        """True when an attempt should be made now (always, while the server answers)."""
        return self.lost_at is None or self._clock() >= self._next_try

    def wait(self) -> float:
        """Seconds until the next attempt is due (0 while the server answers)."""
        return 0.0 if self.lost_at is None else max(0.0, self._next_try - self._clock())

    def pace(self, left: float, tending: bool) -> float:
        """Seconds a loop waits before its next attempt: ``left`` of its period while the
        server answers or while it ``tending`` something that cannot wait (a lock that
        is still ours until its time runs out), else until the next retry is due."""
        return max(0.0, left if tending else max(left, self.wait()))

    def failed(self, error: BaseException) -> None:
        """An attempt failed with ``error``: logged if the server was answering."""
        now = self._clock()
        if self.lost_at is None:
            self.lost_at = now
            self._wait = min(FIRST_WAIT, self.max_wait)
            self.log.warning("%s unreachable: %s", self.server, error)
        else:
            self._wait = min(2 * self._wait, self.max_wait)
        self._next_try = now + self._wait

    def reached(self) -> None:
        """An attempt succeeded: logged if the server was lost."""
        if self.lost_at is not None:
            lost_for = self._clock() - self.lost_at
            self.lost_at = None
            self.log.warning("%s reachable again after %.0f s", self.server, lost_for)
