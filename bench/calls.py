"""Calls as users make them: through a caller app, ``task.delay(...).get(...)``.

coder_ring's calls go through an app built the way a caller builds one
(:func:`coder_ring.celery.app.create_app`) and its task objects (``app.ring_tasks``), so the
client-side costs (argument checks, the registry's fail-fast check, routing) are
measured too. The anchor's go through a plain Celery app (:mod:`bench.anchor_app`).

Every result is read, every task id and code recorded: the ids so the results can be
deleted from Redis afterwards, the codes so a code issued twice fails the run.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from bench.anchor_app import NOOP, make_app
from coder_ring.celery.app import CoderRingApp, create_app
from coder_ring.settings import WorkerSettings

#: What a call does: the anchor's no-op, coder_ring's no-op, get_code, get_codes.
KINDS = ("anchor", "noop", "get_code", "get_codes")


@dataclass(frozen=True)
class Sender:
    """Sends one call (``send()`` returns its AsyncResult); codes come from ``ring``."""

    send: Callable[[], Any]
    ring: str


@dataclass(frozen=True)
class Endpoints:
    """Where a caller sends: coder_ring's settings for each group of workers (each group
    its own namespace, so each its own no-op queue) and the anchor's queue, all on the
    same broker."""

    groups: dict[str, WorkerSettings]
    anchor_queue: str

    @property
    def any(self) -> WorkerSettings:
        """Settings of some group (broker and result backend are the same for all)."""
        return next(iter(self.groups.values()))


@dataclass(frozen=True)
class Call:
    """One kind of call: ``kind`` (see :data:`KINDS`), to the workers of ``group``, on
    ``ring``, of ``count`` codes."""

    kind: str
    group: str = ""
    ring: str = ""
    count: int = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown call kind {self.kind!r}; expected one of {KINDS}")

    @property
    def codes(self) -> int:
        """Codes one call returns (0 for a no-op)."""
        return {"get_code": 1, "get_codes": self.count}.get(self.kind, 0)


@dataclass
class Recorder:
    """Task ids and codes (by ring) of the calls made (one recorder per thread)."""

    task_ids: list[str] = field(default_factory=list)
    codes: dict[str, list[str]] = field(default_factory=dict)

    def record(self, result: Any, value: Any, ring: str) -> None:
        """Keep the call's task id, and its code(s)."""
        self.task_ids.append(result.id)
        if isinstance(value, str):
            self.codes.setdefault(ring, []).append(value)
        elif isinstance(value, list):
            self.codes.setdefault(ring, []).extend(value)

    def add_codes(self, codes: dict[str, list[str]]) -> None:
        """Take in codes recorded elsewhere (another thread or process)."""
        for ring, more in codes.items():
            self.codes.setdefault(ring, []).extend(more)


class Clients:
    """The caller apps of one process: coder_ring's and the anchor's."""

    def __init__(self, endpoints: Endpoints, timeout: float = 30.0) -> None:
        self.endpoints = endpoints
        self.timeout = timeout
        settings = endpoints.any
        self.anchor = make_app(settings.broker_url, settings.result_backend, endpoints.anchor_queue)
        self.apps: dict[str, CoderRingApp] = {}

    def app(self, group: str) -> CoderRingApp:
        """The caller app of ``group`` (built on first use, as a caller builds one)."""
        if group not in self.apps:
            self.apps[group] = create_app(self.endpoints.groups[group])
        return self.apps[group]

    def sender(self, call: Call) -> Sender:
        """What sends one ``call``."""
        if call.kind == "anchor":
            return Sender(self.anchor.tasks[NOOP].delay, "")
        tasks = self.app(call.group).ring_tasks
        if call.kind == "noop":
            return Sender(tasks.noop.delay, "")
        if call.kind == "get_code":
            return Sender(lambda: tasks.get_code.delay(call.ring), call.ring)
        return Sender(lambda: tasks.get_codes.delay(call.ring, call.count), call.ring)

    def forget(self, task_ids: Sequence[str]) -> None:
        """Delete the results of ``task_ids`` from the result backend."""
        backend = self.anchor.backend  # the same key scheme as every app's
        client: redis.Redis = redis.Redis.from_url(self.endpoints.any.result_backend)
        try:
            for start in range(0, len(task_ids), 1000):
                keys = [backend.get_key_for_task(tid) for tid in task_ids[start : start + 1000]]
                client.delete(*keys)
        finally:
            client.close()

    def close(self) -> None:
        """Close every app's connections."""
        for app in self.apps.values():
            app.close()
        self.anchor.close()


def round_trips(sender: Sender, count: int, timeout: float, recorder: Recorder) -> list[float]:
    """``count`` sequential calls; each one's round trip in milliseconds."""
    send, ring = sender.send, sender.ring
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        result = send()
        value = result.get(timeout=timeout)
        latencies.append((time.perf_counter() - started) * 1000)
        recorder.record(result, value, ring)
    return latencies


def burst(sender: Sender, count: int, timeout: float, recorder: Recorder) -> float:
    """Seconds to send ``count`` calls, then get every result."""
    started = time.perf_counter()
    results = [sender.send() for _ in range(count)]
    values = [result.get(timeout=timeout) for result in results]
    elapsed = time.perf_counter() - started
    for result, value in zip(results, values, strict=True):
        recorder.record(result, value, sender.ring)
    return elapsed


def closed_loop(
    sender: Sender, seconds: float, timeout: float, recorder: Recorder, depth: int = 1
) -> tuple[int, float]:
    """Call for ``seconds``, ``depth`` calls in flight at a time (send ``depth``, then wait
    for them); (calls made, seconds taken, the last call's wait included)."""
    send, ring = sender.send, sender.ring
    calls = 0
    started = time.perf_counter()
    stop_at = started + seconds
    while time.perf_counter() < stop_at:
        results = [send() for _ in range(depth)]
        for result in results:
            recorder.record(result, result.get(timeout=timeout), ring)
        calls += depth
    return calls, time.perf_counter() - started


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolated between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def paired_median(values: Sequence[float], bases: Sequence[float]) -> float:
    """The median of ``values[i] / bases[i]``: a ratio of two kinds measured round by
    round, which a noisy round (another program busy meanwhile) moves little."""
    if not values or len(values) != len(bases):
        raise ValueError(f"paired values needed, got {len(values)} and {len(bases)}")
    return statistics.median(value / base for value, base in zip(values, bases, strict=True))


class DuplicateCode(RuntimeError):
    """A ring issued a code twice: the run is wrong, whatever its figures."""


def check_unique(codes: dict[str, list[str]]) -> int:
    """:class:`DuplicateCode` if a ring's codes hold a code twice; the codes checked."""
    for ring, issued in codes.items():
        seen: set[str] = set()
        for code in issued:
            if code in seen:
                raise DuplicateCode(
                    f"ring {ring!r} issued code {code!r} twice among {len(issued)} codes"
                )
            seen.add(code)
    return sum(len(issued) for issued in codes.values())
