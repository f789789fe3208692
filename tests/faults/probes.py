"""Requests the test process sends itself: bursts for a holder to work on when a fault
hits it, and probes that time how soon each ring serves again after a fault.

They are polled (``result.state``), never waited on, so the test goes on dealing
faults meanwhile; their records have the callers' format (:mod:`tests.faults.caller`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.faults.settings import (
    BATCH,
    BURST_BATCHES,
    BURST_SINGLES,
    EXTRAS,
    PROBE_INTERVAL,
    RANDOM,
    RECOVERY_LIMIT,
    REQUEST_TIMEOUT,
)

Pending = tuple[str, str, Any, float, int]  # ring, extra, AsyncResult, sent, size


def record(
    ring: str,
    extra: str,
    size: int,
    sent: float,
    task_id: str | None,
    *,
    codes: list[str] | None = None,
    error: BaseException | None = None,
    stage: str = "result",
) -> dict[str, Any]:
    """A probe's record, in the callers' format."""
    return {
        "caller": "probe",
        "ring": ring,
        "extra": extra,
        "task": "get_code" if size == 1 else "get_codes",
        "size": size,
        "sent": sent,
        "ended": time.monotonic(),
        "codes": codes or [],
        "error": None if error is None else type(error).__name__,
        "message": "" if error is None else str(error)[:300],
        "stage": stage,
        "id": task_id,
    }


def _timeout() -> Exception:
    from celery.exceptions import TimeoutError as CeleryTimeoutError

    return CeleryTimeoutError("The operation timed out.")


@dataclass
class Prober:
    """``get_code``/``get_codes`` requests sent from the test process (``app``: a caller
    app of the run's settings)."""

    app: Any
    records: list[dict[str, Any]] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)

    def send(self, ring: str, size: int = 1, extra: str | None = None) -> None:
        extra = RANDOM.choice(EXTRAS) if extra is None else extra
        sent = time.monotonic()
        tasks = self.app.ring_tasks
        try:
            if size == 1:
                result = tasks.get_code.delay(ring, extra=extra)
            else:
                result = tasks.get_codes.delay(ring, size, extra=extra)
        except Exception as error:  # noqa: BLE001 - recorded like a caller's
            self.records.append(record(ring, extra, size, sent, None, error=error, stage="send"))
            return
        self.pending.append((ring, extra, result, sent, size))

    def burst(self, rings: list[str]) -> list[str]:
        """Requests for the holder to work on when the fault hits it; the batches' ids."""
        first = len(self.pending)
        for ring in rings:
            for _ in range(BURST_SINGLES):
                self.send(ring)
            for _ in range(BURST_BATCHES):
                self.send(ring, RANDOM.randint(*BATCH))
        return [result.id for _, _, result, _, size in self.pending[first:] if size > 1]

    def poll(self) -> list[dict[str, Any]]:
        """Records of the requests that ended (or timed out) since the last poll."""
        ended: list[dict[str, Any]] = []
        waiting: list[Pending] = []
        for ring, extra, result, sent, size in self.pending:
            try:
                state = result.state
            except Exception:  # noqa: BLE001 - the result backend is down: ask again later
                state = None
            if state == "SUCCESS":
                value = result.result
                codes = [value] if size == 1 else list(value)
                ended.append(record(ring, extra, size, sent, result.id, codes=codes))
            elif state in {"FAILURE", "REVOKED"}:
                error = result.result
                if not isinstance(error, BaseException):
                    error = RuntimeError(f"{state}: {error!r}")
                ended.append(record(ring, extra, size, sent, result.id, error=error))
            elif time.monotonic() > sent + REQUEST_TIMEOUT:
                ended.append(record(ring, extra, size, sent, result.id, error=_timeout()))
                # Nobody will ask for it again: stop listening for its result.
                with contextlib.suppress(Exception):
                    result.backend.remove_pending_result(result)
            else:
                waiting.append((ring, extra, result, sent, size))
        self.pending = waiting
        self.records += ended
        return ended

    def idle(self, seconds: float, check: Callable[[], None] = lambda: None) -> None:
        """Wait ``seconds`` while polling (``check`` runs now and then: it may raise)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
            check()
            time.sleep(0.05)

    def measure(
        self,
        since: float,
        rings: list[str],
        actions: list[tuple[float, Callable[[], None]]] | None = None,
    ) -> dict[str, float | None]:
        """Probe ``rings`` until each served a probe sent after ``since``: the seconds
        from ``since`` to that code (None: not within RECOVERY_LIMIT). ``actions`` run
        at their times meanwhile (all of them, even if the rings recovered earlier)."""
        todo = sorted(actions or [], key=lambda action: action[0])
        first: dict[str, float] = {}
        next_send = 0.0
        while True:
            while todo and todo[0][0] <= time.monotonic():
                todo.pop(0)[1]()
            if len(first) == len(rings) and not todo:
                break
            if time.monotonic() > since + RECOVERY_LIMIT:
                for _, action in todo:
                    action()
                break
            if time.monotonic() >= next_send:
                for ring in rings:
                    if ring not in first:
                        self.send(ring)
                next_send = time.monotonic() + PROBE_INTERVAL
            for done in self.poll():
                ring = done["ring"]
                served = done["error"] is None and done["size"] == 1
                if served and done["sent"] >= since and ring not in first:
                    first[ring] = done["ended"] - since
            time.sleep(0.03)
        return {ring: first.get(ring) for ring in rings}

    def finish(self) -> None:
        """Poll until every request ended or timed out."""
        while self.pending:
            self.poll()
            time.sleep(0.05)
