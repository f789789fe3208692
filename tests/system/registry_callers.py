"""Callers of ``test_registry_cluster.py``: threads of the test's process asking every
ring in turn for codes while workers come and go, every request recorded, and the checks
of what they got (no code twice, errors only of the kinds and at the times a fault
allows)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.harness import assert_distinct, wait_until

CALLERS = 4
REQUEST_TIMEOUT = 15.0
#: What a caller may get instead of a code, and only while a fault is going on.
CLEAR_ERRORS = {
    # celery: the request was lost with Redis, or with a killed worker (kombu's Redis
    # transport pops a message before it records it as unacknowledged)
    "TimeoutError",
    "BrokerUnreachable",  # Redis was down when the request was sent
    "ConnectionError",  # redis: the result backend went down while the caller waited
    "NoWorker",  # Redis came back empty: no worker had registered again yet
}


@dataclass
class Request:
    ring: str
    started: float
    ended: float
    code: str | None = None
    error: BaseException | None = None
    task_id: str | None = None


@dataclass
class Callers:
    """Threads of this process asking every ring in turn for codes (``app.ring_tasks``)
    until stopped; every request is recorded (code or error, start and end)."""

    app: Any
    rings: list[str]
    requests: list[Request] = field(default_factory=list)
    _go: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _busy: Counter[int] = field(default_factory=Counter)
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, count: int = CALLERS) -> None:
        self._go.set()
        for index in range(count):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def ask(self, ring: str, timeout: float = REQUEST_TIMEOUT) -> str | None:
        """One request, recorded; its code (None if it failed)."""
        started, result = time.monotonic(), None
        try:
            result = self.app.ring_tasks.get_code.delay(ring)
            code = result.get(timeout=timeout)
        except Exception as error:  # noqa: BLE001 - recorded and judged at the end
            error = error.with_traceback(None)
            task_id = None if result is None else result.id
            self._add(Request(ring, started, time.monotonic(), error=error, task_id=task_id))
            if result is not None:
                # Celery keeps waiting for it otherwise, and says goodbye when it is
                # collected: after the test, to a Redis long gone.
                with contextlib.suppress(Exception):
                    result.backend.remove_pending_result(result)
            return None
        self._add(Request(ring, started, time.monotonic(), code=code))
        return str(code)

    def _add(self, request: Request) -> None:
        with self._mutex:
            self.requests.append(request)

    def _run(self, index: int) -> None:
        turn = index
        while not self._stop.is_set():
            if not self._go.wait(0.1):
                continue
            with self._mutex:
                self._busy[index] = 1
            if self._go.is_set() and not self._stop.is_set():
                self.ask(self.rings[(turn * 37) % len(self.rings)])
                turn += CALLERS
            with self._mutex:
                self._busy[index] = 0

    def pause(self) -> None:
        """Stop asking and wait for the requests in flight to end."""
        self._go.clear()
        wait_until(
            lambda: not any(self._busy.values()), REQUEST_TIMEOUT + 5, what="callers to pause"
        )

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> None:
        self._stop.set()
        self._go.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)

    def handed_out(self) -> Counter[str]:
        with self._mutex:
            return Counter(request.ring for request in self.requests if request.code)

    def since(self, moment: float) -> list[Request]:
        with self._mutex:
            return [request for request in self.requests if request.started >= moment]


def ledger(app: Any, callers: Callers, rings: list[str]) -> dict[str, dict[str, Any]]:
    """Each ring's status through its holder, plus ``lost``: codes the database issued
    that no caller got and no pool holds (callers paused, so none is in flight)."""
    pending = {ring: app.ring_tasks.status.delay(ring) for ring in rings}
    statuses = {ring: result.get(timeout=REQUEST_TIMEOUT) for ring, result in pending.items()}
    handed_out = callers.handed_out()
    for ring, status in statuses.items():
        issued = sum(extra["issued"] for extra in status["extras"])
        status["lost"] = issued - handed_out[ring] - (status["pooled"] or 0)
    return statuses


def check_requests(requests: list[Request], faults: dict[str, tuple[float, float]]) -> None:
    by_ring: dict[str, list[str]] = {}
    for request in requests:
        if request.code:
            by_ring.setdefault(request.ring, []).append(request.code)
    for codes in by_ring.values():
        assert_distinct(codes)
    errors = Counter(type(r.error).__name__ for r in requests if r.error is not None)
    wrapped = sum(any(len(code) > 1 for code in codes) for codes in by_ring.values())
    print(
        f"  rings whose codes wrapped to a second cycle: {wrapped} of {len(by_ring)}\n"
        f"  requests: {len(requests)}, codes: {sum(map(len, by_ring.values()))}, "
        f"errors: {dict(errors) or 'none'}, "
        f"longest: {max(r.ended - r.started for r in requests):.2f} s"
    )
    for fault, (start, end) in faults.items():
        failed = Counter(
            type(r.error).__name__ for r in requests if r.error and start <= r.started <= end
        )
        print(f"  failed requests sent during the {fault}: {dict(failed) or 'none'}")
        for r in requests:
            if r.error and start <= r.started <= end:
                name = type(r.error).__name__
                print(f"    {r.ring} {r.task_id} {name} sent at +{r.started - start:.2f} s")
    assert all(r.ended - r.started <= REQUEST_TIMEOUT + 5 for r in requests)
    unclear = [r.error for r in requests if r.error and type(r.error).__name__ not in CLEAR_ERRORS]
    assert set(errors) <= CLEAR_ERRORS, (errors, [repr(error) for error in unclear[:5]])
    outside = [
        r
        for r in requests
        if r.error and not any(start <= r.started <= end for start, end in faults.values())
    ]
    assert not outside, outside
