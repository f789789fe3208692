"""A clock that runs only while the calling thread waits on something outside its
process: what a lease round's Redis calls cost the link, and not the worker's own work.

Link health (:class:`~coder_ring.celery.health.LinkHealth`) times a round's Redis calls.
Timed by the wall clock, they include parsing the replies (the members' records name
every ring: at 10,000 rings, hundreds of kilobytes a round) and the time the thread sat
ready for a CPU. On a busy host (a fifth worker joining 10,000 rings on 2 cores) such
rounds passed twice the limit while another member's were quick: workers gave every
ring up, the others took them and grew busy in turn, and the join never settled. This
clock leaves out the thread's time on a CPU and in the run queue (Linux's
``/proc/thread-self/schedstat``; elsewhere its CPU time only), so a slow link, where the
thread sleeps on the socket, still counts whole.
"""

from __future__ import annotations

import time

SCHEDSTAT = "/proc/thread-self/schedstat"


def waiting_seconds() -> float:
    """Seconds on a clock that advances only while the calling thread waits (blocked,
    not running nor runnable); only differences between two readings of the same thread
    mean anything."""
    now = time.monotonic()
    try:
        with open(SCHEDSTAT, "rb") as stat:
            running, runnable = stat.read().split()[:2]
        return now - (int(running) + int(runnable)) / 1e9
    except (OSError, ValueError):
        return now - time.thread_time()
