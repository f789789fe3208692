"""Calls as users make them, ``task.delay(...).get(...)``, timed, and their statistics.

coder_ring's go through a caller app built as callers build one (``create_app``), so the
client side (argument checks, routing) is measured too; the anchor's through a plain
Celery app. Every task id is kept (the results are deleted afterwards) and every code:
one issued twice by a ring fails the run."""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.anchor_app import NOOP, make_app
from bench.resources import delete_keys
from coder_ring.celery.app import CoderRingApp, create_app
from coder_ring.settings import WorkerSettings


@dataclass(frozen=True)
class Call:
    """A kind of call to the workers of ``group``, on ``ring``, for ``count`` codes."""

    kind: Literal["anchor", "noop", "get_code", "get_codes"]
    group: str = ""
    ring: str = ""
    count: int = 1


@dataclass(frozen=True)
class Endpoints:
    """Where callers send: coder_ring's worker groups and the anchor's queue (one broker)."""

    groups: dict[str, WorkerSettings]
    anchor_queue: str
    timeout: float = 30.0


@dataclass
class Recorder:
    """The task ids and the codes (by ring) of calls made."""

    task_ids: list[str] = field(default_factory=list)
    codes: dict[str, list[str]] = field(default_factory=dict)

    def record(self, result: Any, value: Any, ring: str) -> None:
        """Keep the call's task id and its code(s)."""
        self.task_ids.append(result.id)
        if isinstance(value, str | list):
            self.codes.setdefault(ring, []).extend([value] if isinstance(value, str) else value)

    def merge(self, other: Recorder) -> None:
        """Take in the codes another caller got (its results are its own to delete)."""
        for ring, codes in other.codes.items():
            self.codes.setdefault(ring, []).extend(codes)


class Clients:
    """The caller apps of one process, coder_ring's (one per group) and the anchor's, and
    what their calls recorded (threads share them: list appends are atomic)."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self.recorder = Recorder()
        self.settings = next(iter(endpoints.groups.values()))  # one broker and backend
        broker, backend = self.settings.broker_url, self.settings.result_backend
        self.anchor = make_app(broker, backend, endpoints.anchor_queue)
        self.apps: dict[str, CoderRingApp] = {}

    def app(self, group: str) -> CoderRingApp:  # built on first use
        if group not in self.apps:
            self.apps[group] = create_app(self.endpoints.groups[group])
        return self.apps[group]

    def sender(self, call: Call) -> Callable[[], Any]:
        """What sends one ``call`` (and returns its AsyncResult)."""
        if call.kind == "anchor":
            return self.anchor.tasks[NOOP].delay  # type: ignore[no-any-return]
        tasks = self.app(call.group).ring_tasks
        if call.kind == "noop":
            return tasks.noop.delay  # type: ignore[no-any-return]
        if call.kind == "get_code":
            return lambda: tasks.get_code.delay(call.ring)
        return lambda: tasks.get_codes.delay(call.ring, call.count)

    def close(self) -> None:
        """Delete the results of every call made here; close every app."""
        backend = self.anchor.backend  # every app's backend names its keys alike
        keys = (backend.get_key_for_task(task_id) for task_id in self.recorder.task_ids)
        delete_keys(self.settings.result_backend, keys)
        self.recorder.task_ids.clear()
        for app in [*self.apps.values(), self.anchor]:
            app.close()


def round_trips(clients: Clients, call: Call, count: int) -> list[float]:
    """``count`` sequential calls; each one's round trip in milliseconds."""
    send, timeout, latencies = clients.sender(call), clients.endpoints.timeout, []
    for _ in range(count):
        started = time.perf_counter()
        result = send()
        value = result.get(timeout=timeout)
        latencies.append((time.perf_counter() - started) * 1000)
        clients.recorder.record(result, value, call.ring)
    return latencies


def closed_loop(clients: Clients, call: Call, seconds: float, depth: int = 1) -> tuple[int, float]:
    """``depth`` calls sent at once, then every result read, again until ``seconds``
    are over (once if ``seconds`` is 0: a burst); the calls made and the seconds taken."""
    send, timeout, calls = clients.sender(call), clients.endpoints.timeout, 0
    started = time.perf_counter()
    while not calls or time.perf_counter() - started < seconds:
        results = [send() for _ in range(depth)]
        for result in results:
            clients.recorder.record(result, result.get(timeout=timeout), call.ring)
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
        if twice := [code for code, times in Counter(issued).items() if times > 1]:
            raise DuplicateCode(f"ring {ring!r} issued code {twice[0]!r} twice")
    return sum(len(issued) for issued in codes.values())
