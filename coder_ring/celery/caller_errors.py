"""A caller's bad request, told once: one WARNING line per ring and kind per interval.

A request the engine refuses because of what the caller sent (:class:`InvalidInput`,
:class:`ExtraConflict`, :class:`UnknownRing`, :class:`RingMismatch`) is the caller's
mistake, not the worker's: the caller gets the error, the metrics count it (per task,
ring and kind), and the worker's log says it once per ``interval`` per ring and kind,
in one line with how many more were refused since, instead of Celery's ERROR
"raised unexpected" with a traceback on every call. The ring tasks declare these kinds
in ``Task.throws``, so Celery itself logs them at INFO without a traceback.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from coder_ring.errors import InvalidInput, RingMismatch

logger = logging.getLogger("coder_ring.celery.caller_errors")

#: What a caller's request can be refused with (UnknownRing, ExtraConflict: InvalidInput).
CALLER_ERRORS: tuple[type[Exception], ...] = (InvalidInput, RingMismatch)
#: Keys kept at most (a flood of unknown ring names sent by name stays bounded).
MAX_KEYS = 1024


class CallerErrorLog:
    """Logs a caller's error at WARNING at most once per ring and kind per ``interval``."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._mutex = threading.Lock()
        #: (ring, kind) -> when it was last logged, and how many were not logged since.
        self._last: dict[tuple[str, str], float] = {}
        self._quiet: dict[tuple[str, str], int] = {}

    def report(self, task: str, ring: str, error: BaseException) -> bool:
        """Log ``error`` of ``task`` on ``ring`` unless one of its kind was logged for that
        ring less than ``interval`` ago; True if it was logged."""
        key = (ring if isinstance(ring, str) else repr(ring), type(error).__name__)
        now = self._clock()
        with self._mutex:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._quiet[key] = self._quiet.get(key, 0) + 1
                return False
            if len(self._last) >= MAX_KEYS:
                self._forget(now)
            self._last[key] = now
            quiet = self._quiet.pop(key, 0)
        since = f" (and {quiet} more since the last such line)" if quiet else ""
        logger.warning(
            "ring %s: refused a caller's %s request: %s: %s%s "
            "(the caller got the error; logged at most once per %g s per ring and kind)",
            key[0],
            task,
            key[1],
            _one_line(error),
            since,
            self.interval,
        )
        return True

    def _forget(self, now: float) -> None:
        """Drop the keys whose interval is over (all of them if none is)."""
        stale = [key for key, last in self._last.items() if now - last >= self.interval]
        for key in stale or list(self._last):
            self._last.pop(key, None)
            self._quiet.pop(key, None)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
