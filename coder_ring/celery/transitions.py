"""Seat transitions (activate, deactivate, hand off, reclaim) on a few threads, in order
per ring.

Why not one thread: a cold start or a join activates hundreds of rings, each a database
claim, and a handoff queued behind them waited seconds (issue 19). Why not a plain pool:
one ring's transitions must never overlap or reorder (a handoff that overtook the
activation it follows would give back a pool that is then filled again), so each ring
has a queue of its own, drained by one thread at a time; different rings run side by
side.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class OrderedTransitions:
    """An executor whose tasks run in submission order per key, up to ``threads`` keys
    at once."""

    def __init__(self, threads: int, thread_name_prefix: str = "ring-seat") -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=thread_name_prefix)
        self._mutex = threading.Lock()
        #: key -> tasks not started yet; a key is present while a thread drains it.
        self._queues: dict[str, deque[tuple[Future[Any], Callable[[], Any]]]] = {}
        self._shutdown = False

    def submit(self, key: str, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` after every task submitted earlier for ``key``.
        RuntimeError after :meth:`shutdown` (like ThreadPoolExecutor)."""
        future: Future[T] = Future()
        with self._mutex:
            if self._shutdown:
                raise RuntimeError("cannot schedule new transitions after shutdown")
            queue = self._queues.get(key)
            if queue is not None:  # a thread drains this key: it runs this in turn
                queue.append((future, lambda: fn(*args)))
                return future
            self._queues[key] = deque([(future, lambda: fn(*args))])
        self._pool.submit(self._drain, key)
        return future

    def shutdown(self, wait: bool = True) -> None:
        """Take no more tasks; with ``wait``, return once every task submitted ran."""
        with self._mutex:
            self._shutdown = True
        self._pool.shutdown(wait=wait)

    def _drain(self, key: str) -> None:
        while True:
            with self._mutex:
                queue = self._queues[key]
                if not queue:
                    del self._queues[key]
                    return
                future, call = queue.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = call()
            except BaseException as error:  # noqa: BLE001 - kept in the future, as an executor does
                future.set_exception(error)
            else:
                future.set_result(result)
