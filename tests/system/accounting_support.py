"""Helpers of ``test_graceful_accounting.py``: every request recorded (codes or error),
the database's ``issued`` per (ring, extra) set against the codes callers received,
rings files written atomically, and the timing of a worker's graceful stop.

The accounting rests on one identity: once every worker stopped gracefully (every pool
given back), the database's ``issued`` of each (ring, extra) counts exactly the codes
some caller received. A code drawn but never received is a loss; a code received twice
is a duplicate.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from coder_ring.config import RingConfig
from coder_ring.registry.keys import member_key
from coder_ring.settings import Settings
from tests.harness import WorkerProcess, lock_holders, members, service_for, write_rings

#: Errors a caller may get from ``.delay()`` itself: the request was never sent, so it
#: cannot have drawn a code (a ring removed from the rings file; a ring no live worker
#: may serve yet, right after it was added).
NOT_SENT = frozenset({"UnknownRing", "NoWorker"})
#: Celery's log line time stamp (``[2026-12-04 19:09:58,123: INFO/MainProcess] ...``).
LOG_STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): ", re.M)


@dataclass
class Request:
    """One call of ``get_code`` (count 1) or ``get_codes``, and how it ended."""

    ring: str
    extra: str
    count: int
    codes: list[str] = field(default_factory=list)
    error: str | None = None  # the exception's type name
    detail: str = ""  # and its message
    sent: bool = False  # .delay() returned: a worker may have drawn for it
    task_id: str | None = None


@dataclass
class Ledger:
    """Every request of a test, from any thread."""

    requests: list[Request] = field(default_factory=list)
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    def ask(self, app: Any, ring: str, extra: str, count: int, timeout: float) -> Request:
        """One request through ``app``, recorded whatever happens; never raises."""
        request = Request(ring, extra, count)
        result = None
        try:
            if count == 1:
                result = app.ring_tasks.get_code.delay(ring, extra=extra)
            else:
                result = app.ring_tasks.get_codes.delay(ring, count, extra=extra)
            request.sent, request.task_id = True, result.id
            got = result.get(timeout=timeout)
            request.codes = [got] if count == 1 else list(got)
        except Exception as error:  # noqa: BLE001 - recorded, judged by the test
            request.error, request.detail = type(error).__name__, str(error)[:300]
            if result is not None:
                with contextlib.suppress(Exception):  # stop waiting for it
                    result.backend.remove_pending_result(result)
        with self._mutex:
            self.requests.append(request)
        return request

    def received(self) -> Counter[tuple[str, str]]:
        """(ring, extra) -> codes received."""
        with self._mutex:
            counts: Counter[tuple[str, str]] = Counter()
            for request in self.requests:
                counts[request.ring, request.extra] += len(request.codes)
            return counts

    def codes(self) -> list[str]:
        with self._mutex:
            return [code for request in self.requests for code in request.codes]

    def duplicates(self) -> dict[str, list[str]]:
        """ring -> codes received more than once (across all its extras and cycles)."""
        with self._mutex:
            by_ring: dict[str, Counter[str]] = {}
            for request in self.requests:
                by_ring.setdefault(request.ring, Counter()).update(request.codes)
        twice = {
            ring: sorted(c for c, n in counts.items() if n > 1) for ring, counts in by_ring.items()
        }
        return {ring: codes for ring, codes in twice.items() if codes}

    def errors(self) -> Counter[tuple[str, bool]]:
        """(error type, whether the request was sent) -> requests."""
        with self._mutex:
            return Counter((r.error, r.sent) for r in self.requests if r.error is not None)


@contextlib.contextmanager
def printed(title: str, figures: dict[str, Any]) -> Iterator[None]:
    """Print ``figures`` under ``title`` at the end, whatever happened (a failure's report
    shows them)."""
    try:
        yield
    finally:
        print(f"\n{title}:")
        for name, figure in figures.items():
            print(f"  {name}: {figure}")


def migrate(env: Mapping[str, str]) -> None:
    """Create the schema once, before the workers start (each would otherwise, at once)."""
    service = service_for(env)
    try:
        service.migrate()
    finally:
        service.close()


def configured(env: Mapping[str, str]) -> dict[str, RingConfig]:
    """The rings of ``env``'s rings file now."""
    return Settings.from_env(env).load_rings()


def issued(env: Mapping[str, str], rings: Mapping[str, RingConfig]) -> Counter[tuple[str, str]]:
    """(ring, extra) -> codes the database counts as issued, read directly (no worker)."""
    service = service_for(env, rings)
    try:
        counts: Counter[tuple[str, str]] = Counter()
        for ring in rings:
            for state in service.status(ring).extras:
                counts[ring, state.extra] = state.issued
        return counts
    finally:
        service.close()


def mismatches(
    issued_counts: Counter[tuple[str, str]], received: Counter[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int]]:
    """(ring, extra) -> (issued, received) wherever they differ: issued > received is a
    loss, issued < received a code handed out that the database does not count."""
    keys = set(issued_counts) | set(received)
    return {
        key: (issued_counts[key], received[key])
        for key in sorted(keys)
        if issued_counts[key] != received[key]
    }


def write_rings_atomically(path: Path, rings: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the rings file in one rename: a worker or a caller reading it meanwhile
    sees the old file or the new one, never half of one (a ConfigError otherwise)."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_rings(scratch, **rings)
    os.replace(scratch, path)


def member_id(env: Mapping[str, str], worker: WorkerProcess) -> str:
    """``worker``'s id in the registry (``node|pid|random``): the value of its locks."""
    found = [member.id for member in members(env) if member.pid == worker.pid]
    assert len(found) == 1, f"{worker.name} is not registered: {found}"
    return found[0]


def log_times(worker: WorkerProcess, pattern: str) -> list[float]:
    """Unix times of the worker's log lines (this run) matching ``pattern``."""
    stamps = []
    for line in worker.log_text().splitlines():
        stamp = LOG_STAMP.match(line)
        if stamp and re.search(pattern, line):
            parsed = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
            stamps.append(parsed.timestamp())
    return stamps


@dataclass
class StopTimes:
    """Seconds from the SIGTERM of a worker (``sent``, monotonic) to each step of its
    graceful stop: it left the registry, its first and last "gave N pooled codes back"
    log lines (None: none logged), its last lock released, its process exit; its exit
    code, and how many rings gave codes back."""

    sent: float
    left: float
    first_give_back: float | None
    last_give_back: float | None
    released: float
    exited: float
    exit_code: int | None
    give_backs: int

    def as_figures(self, who: str) -> dict[str, Any]:
        steps = ("left", "first_give_back", "last_give_back", "released", "exited")
        figures: dict[str, Any] = {
            f"{who}: SIGTERM -> {step} s": getattr(self, step) for step in steps
        }
        figures[f"{who}: exit code, rings that gave codes back"] = (self.exit_code, self.give_backs)
        return figures


def time_stop(
    worker: WorkerProcess,
    client: redis.Redis,
    *,
    namespace: str,
    rings: Iterable[str],
    member: str,
    timeout: float = 60.0,
) -> StopTimes:
    """SIGTERM ``worker`` (registered, and holding locks, as ``member``) and time its
    graceful stop, polling Redis and the process every 10 ms."""
    names = sorted(rings)
    steps: dict[str, float] = {}
    sent_at, started = time.time(), time.monotonic()
    worker.kill(signal.SIGTERM)  # Celery's warm shutdown
    while len(steps) < 3:
        now = time.monotonic() - started
        if now > timeout:
            raise AssertionError(
                f"{worker.name} not stopped {timeout:.0f} s after SIGTERM ({steps}):\n"
                f"{worker.log_tail(40)}"
            )
        if "exited" not in steps and not worker.alive():
            steps["exited"] = now
        if "left" not in steps and not client.exists(member_key(namespace, member)):
            steps["left"] = now
        if (
            "released" not in steps
            and member not in lock_holders(client, names, namespace).values()
        ):
            steps["released"] = now
        time.sleep(0.01)
    lines = [stamp - sent_at for stamp in log_times(worker, r"gave \d+ pooled codes back")]
    return StopTimes(
        sent=started,
        left=round(steps["left"], 3),
        first_give_back=round(min(lines), 3) if lines else None,
        last_give_back=round(max(lines), 3) if lines else None,
        released=round(steps["released"], 3),
        exited=round(steps["exited"], 3),
        exit_code=worker.popen.returncode if worker.popen else None,
        give_backs=len(lines),
    )
