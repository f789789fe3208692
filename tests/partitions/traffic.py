"""Requests for every ring at a steady pace, sent from the root namespace (never cut off)
through Celery, and the figures of a fault read from what they got.

One thread sends ``get_code`` for each ring every ``interval`` seconds, with at most
``max_pending`` requests of a ring in flight, and polls their results (``result.state``:
no thread waits on any one result). So a request stuck with a cut-off worker does not
stop the ring's next ones: the time between two codes of a ring is the ring's own gap,
not a caller's timeout. A request ends with its code, its error, or -- after
``timeout`` -- Celery's TimeoutError.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: What a request may get instead of a code while a host is cut off, and why.
CLEAR_ERRORS = {
    "TimeoutError",  # its message died with the cut-off worker's connection
    "RequestExpired",  # nobody took it before its deadline (task_expires)
    "TaskRevokedError",
    "NoWorker",  # no live worker served the ring in the registry's view
    "StoreUnavailable",  # the serving worker lost its database
}
POLL = 0.02


@dataclass
class Outcome:
    ring: str
    sent: float  # time.monotonic()
    ended: float = 0.0
    codes: list[str] = field(default_factory=list)
    error: str | None = None
    message: str = ""
    task_id: str | None = None

    @property
    def code(self) -> str | None:
        """The request's first code (None: it failed)."""
        return self.codes[0] if self.codes else None


@dataclass
class Traffic:
    """A thread of requests for ``rings`` through ``app`` (a caller app of the run)."""

    app: Any
    rings: list[str]
    interval: float = 0.1
    timeout: float = 15.0
    max_pending: int = 6
    #: Codes per request: ``get_code`` for 1, else ``get_codes(ring, count)``.
    count: int = 1
    outcomes: list[Outcome] = field(default_factory=list, init=False)
    crashed: BaseException | None = field(default=None, init=False)
    _pending: list[tuple[Outcome, Any]] = field(default_factory=list, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _sending: threading.Event = field(default_factory=threading.Event, init=False)
    _mutex: threading.Lock = field(default_factory=threading.Lock, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def start(self) -> None:
        self._sending.set()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Send no more; wait for every request in flight to end (at most its timeout)."""
        self._sending.clear()
        deadline = time.monotonic() + self.timeout + 5
        while time.monotonic() < deadline and self.in_flight():
            time.sleep(0.05)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self.timeout)
        if self.crashed is not None:
            raise AssertionError("the traffic thread failed") from self.crashed

    def in_flight(self) -> int:
        with self._mutex:
            return len(self._pending)

    def served(self) -> list[Outcome]:
        with self._mutex:
            return [o for o in self.outcomes if o.code is not None]

    def _run(self) -> None:
        next_send = dict.fromkeys(self.rings, time.monotonic())
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                for ring in self.rings if self._sending.is_set() else []:
                    busy = sum(1 for o, _ in self._pending if o.ring == ring)
                    if now >= next_send[ring] and busy < self.max_pending:
                        next_send[ring] = max(next_send[ring] + self.interval, now)
                        self._send(ring)
                self._poll()
                time.sleep(POLL)
        except BaseException as error:
            self.crashed = error
            raise

    def _send(self, ring: str) -> None:
        outcome = Outcome(ring, time.monotonic())
        try:
            tasks = self.app.ring_tasks
            if self.count == 1:
                result = tasks.get_code.delay(ring)
            else:
                result = tasks.get_codes.delay(ring, self.count)
        except Exception as error:  # noqa: BLE001 - recorded as the request's end
            self._end(outcome, error=error)
            return
        outcome.task_id = result.id
        with self._mutex:
            self._pending.append((outcome, result))

    def _poll(self) -> None:
        for outcome, result in list(self._pending):
            try:
                state = result.state
            except Exception:  # noqa: BLE001 - the result backend: ask again next time
                state = None
            if state == "SUCCESS":
                got = result.result
                self._end(outcome, result, codes=[got] if isinstance(got, str) else list(got))
            elif state in {"FAILURE", "REVOKED"}:
                error = result.result
                if not isinstance(error, BaseException):
                    error = RuntimeError(f"{state}: {error!r}")
                self._end(outcome, result, error=error)
            elif time.monotonic() > outcome.sent + self.timeout:
                from celery.exceptions import TimeoutError as CeleryTimeout

                self._end(outcome, result, error=CeleryTimeout("no result in time"))

    def _end(
        self,
        outcome: Outcome,
        result: Any = None,
        *,
        codes: list[str] | None = None,
        error: BaseException | None = None,
    ) -> None:
        outcome.ended = time.monotonic()
        outcome.codes = codes or []
        if error is not None:
            outcome.error, outcome.message = type(error).__name__, str(error)[:200]
        with self._mutex:
            self.outcomes.append(outcome)
            if result is not None:
                self._pending.remove((outcome, result))
        if result is not None:
            # Else Celery keeps listening for it, and says goodbye to a Redis long gone.
            with contextlib.suppress(Exception):
                result.backend.remove_pending_result(result)


def gaps(times: list[float], since: float, until: float) -> tuple[float, float]:
    """The longest stretch of [since, until] without one of ``times``, and its start."""
    points = [since, *sorted(t for t in times if since <= t <= until), until]
    return max((b - a, a) for a, b in itertools.pairwise(points))


def first_code_after(outcomes: list[Outcome], ring: str, moment: float) -> float | None:
    """Seconds from ``moment`` to the first code of ``ring`` asked for after it."""
    ends = [o.ended for o in outcomes if o.ring == ring and o.code and o.sent >= moment]
    return None if not ends else min(ends) - moment


def ring_report(
    outcomes: list[Outcome], ring: str, *, since: float, until: float, fault: float, heal: float
) -> dict[str, Any]:
    """A ring's figures around one fault (seconds; times relative to the fault)."""
    served = [o.ended for o in outcomes if o.ring == ring and o.code]
    longest, start = gaps(served, since, until)
    after_fault = first_code_after(outcomes, ring, fault)
    after_heal = first_code_after(outcomes, ring, heal)
    return {
        "codes": len(served),
        "longest_gap_s": round(longest, 2),
        "gap_from_s": round(start - fault, 2),
        "served_after_fault_s": None if after_fault is None else round(after_fault, 2),
        "served_after_heal_s": None if after_heal is None else round(after_heal, 2),
    }


def problems(
    outcomes: list[Outcome], timeout: float, slack: float, clear: set[str] = CLEAR_ERRORS
) -> list[str]:
    """Codes issued twice in a ring, requests that ended late, and errors not in
    ``clear``."""
    found = []
    # A code is unique within its ring: two rings may well hand out the same string.
    codes = Counter((o.ring, code) for o in outcomes for code in o.codes)
    twice = sorted(code for code, n in codes.items() if n > 1)
    if twice:
        found.append(f"{len(twice)} codes issued twice (ring, code): {twice[:20]}")
    late = [o for o in outcomes if o.ended - o.sent > timeout + slack]
    if late:
        found.append(f"{len(late)} requests ended after {timeout + slack} s: {late[:5]}")
    unclear = [o for o in outcomes if o.error is not None and o.error not in clear]
    if unclear:
        found.append(f"{len(unclear)} requests failed unclearly: {unclear[:5]}")
    return found
