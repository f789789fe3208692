"""A clock that runs only while the calling thread waits on something outside its
process: what a lease round's Redis calls cost the link, and not the worker's own work.

Link health (:class:`~coder_ring.celery.health.LinkHealth`) times a round's Redis calls.
Timed by the wall clock, they include parsing the replies (the members' records name
every ring: at 10,000 rings, hundreds of kilobytes a round) and the time the thread sat
ready for a CPU. On a busy host (a fifth worker joining 10,000 rings on 2 cores) such
rounds passed twice the limit while another member's were quick: workers gave every
ring up, the others took them and grew busy in turn, and the join never settled. This
clock leaves out the thread's time on a CPU and in the run queue (Linux's
``/proc/thread-self/schedstat``), so a slow link, where the thread sleeps on the
socket, still counts whole. Where the file cannot be read it is the wall clock.
"""

from __future__ import annotations

import time

SCHEDSTAT = "/proc/thread-self/schedstat"


class WaitClock:
    """The waiting time of the thread that reads it (always the same one)."""

    def __init__(self) -> None:
        #: The thread's seconds running or runnable at its last good reading.
        self._busy = 0.0

    def now(self) -> float:
        """Seconds on a clock that advances only while the thread waits (blocked, not
        running nor runnable); only differences mean anything. A reading that cannot
        open the file (out of file descriptors, say) takes the last good one's busy
        time: the stretch since then counts as waiting, never the thread's whole past
        (red team 7: mixing in its CPU time alone put seconds of run-queue time in one
        round)."""
        now = time.monotonic()
        try:
            with open(SCHEDSTAT, "rb") as stat:
                running, runnable = stat.read().split()[:2]
            self._busy = (int(running) + int(runnable)) / 1e9
        except (OSError, ValueError):
            pass
        return now - self._busy

    def since(self, began: tuple[float, float]) -> float:
        """Seconds waited since ``began`` (:meth:`mark`), within [0, the wall time since]."""
        wall, waited = began
        return min(max(self.now() - waited, 0.0), time.monotonic() - wall)

    def mark(self) -> tuple[float, float]:
        """A reading to time from with :meth:`since`."""
        return time.monotonic(), self.now()
