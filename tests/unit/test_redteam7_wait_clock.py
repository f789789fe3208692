"""Red team 7: the wait clock mixed two clocks when a reading could not open its file.

Fixed: :class:`~coder_ring.celery.wait_clock.WaitClock` keeps the last good reading's
busy time instead of falling back to the thread's CPU time alone.

A reading is ``monotonic - (running + runnable)`` from ``/proc/thread-self/schedstat``,
or, when that file cannot be opened, ``monotonic - thread_time``. The two differ by the
thread's whole lifetime time in the run queue (``runnable``), yet a round's link time is
the difference of two readings that may come from different branches: the file fails
to open for one of them (EMFILE: a worker of thousands of rings at its descriptor limit;
ENFILE; a transient ENOMEM). A lease thread of a busy worker (the very host the clock was
made for) has sat seconds in the run queue over its life, so that round's link time is
off by those seconds: a slow round reads as quick or negative (a slow link undetected)
or a quick one as slow (the worker gives every ring up).

Reproduced: this thread gathers run-queue time by sharing one CPU with a busy child
process, then waits 0.3 s (a slow round's Redis wait), the end of that wait read while
the process is at its descriptor limit.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import threading
import time

import pytest

from coder_ring.celery.wait_clock import SCHEDSTAT, WaitClock

#: Busy child processes pinned to a CPU, seconds each: `make test` runs these.
pytestmark = pytest.mark.slow

WAIT = 0.3


def _runnable_ns() -> int:
    with open(SCHEDSTAT, "rb") as stat:
        return int(stat.read().split()[1])


def _at_descriptor_limit():  # type: ignore[no-untyped-def]
    """A context where no new file opens (soft RLIMIT_NOFILE at the lowest free fd)."""

    class Limit:
        def __enter__(self) -> None:
            free = os.open(os.devnull, os.O_RDONLY)
            os.close(free)
            self.old = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (free, self.old[1]))

        def __exit__(self, *exc: object) -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, self.old)

    return Limit()


def _gather_run_queue_time(seconds: float) -> None:
    """Share this thread's CPU with a busy child for ``seconds`` (both burn CPU)."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})  # this thread only (Linux: pid 0 is the caller)
    child = subprocess.Popen(
        [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"]
    )
    try:
        time.sleep(0.2)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
    finally:
        child.kill()
        child.wait()
        os.sched_setaffinity(0, before)


def timed_wait(fail_at_start: bool) -> dict[str, float]:
    """On a thread of its own with run-queue time gathered: a WAIT s wait timed by a
    WaitClock, one end of it read at the descriptor limit (the start or the end)."""
    result: dict[str, float] = {}

    def lease_thread() -> None:
        _gather_run_queue_time(1.5)
        result["runnable"] = _runnable_ns() / 1e9
        clock = WaitClock()
        clock.now()  # the lease thread's earlier rounds read it well
        with _at_descriptor_limit() if fail_at_start else contextlib.nullcontext():
            began = clock.now()
        time.sleep(WAIT)  # the round's Redis calls, waiting on a slow link
        with contextlib.nullcontext() if fail_at_start else _at_descriptor_limit():
            ended = clock.now()
        result["call_seconds"] = ended - began

    thread = threading.Thread(target=lease_thread)
    thread.start()
    thread.join()
    return result


def test_a_slow_round_read_across_a_failed_open_is_timed_as_its_wait() -> None:
    result = timed_wait(fail_at_start=False)
    assert result["runnable"] > 0.2, "the thread gathered no run-queue time: cannot show it"
    assert abs(result["call_seconds"] - WAIT) < 0.1, (
        f"a {WAIT} s wait on the link was timed {result['call_seconds']:.2f} s (the thread's "
        f"lifetime run-queue time, {result['runnable']:.2f} s, leaks in when one reading "
        "falls back to thread_time)"
    )


def test_a_slow_round_begun_across_a_failed_open_is_not_read_as_quick() -> None:
    result = timed_wait(fail_at_start=True)
    assert result["runnable"] > 0.2, "the thread gathered no run-queue time: cannot show it"
    assert result["call_seconds"] > WAIT - 0.1, (
        f"a {WAIT} s wait on a slow link was timed {result['call_seconds']:.2f} s: undetected "
        f"(the thread's run-queue time, {result['runnable']:.2f} s, subtracted)"
    )
