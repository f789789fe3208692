"""The Celery part of the benchmark: no-op vs ``get_code`` round trips, bursts, batches.

Calls go through a client app built like a real caller's (:func:`workers.app.create_app`)
and the task objects callers use, so client-side costs (argument checks, routing,
the task-sent event) are measured too. Sequential and burst measurements alternate
between the no-op and ``get_code`` in rounds, so drift affects both alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from workers.app import create_app
from workers.names import TASK_GET_CODE, TASK_GET_CODES, TASK_NOOP
from workers.settings import WorkerSettings

#: Codes per ``get_codes`` call in the batch measurement.
BATCH = 1000

Send = Callable[[], Any]  # returns a celery AsyncResult


@dataclass(frozen=True)
class CeleryParams:
    """How many calls the Celery part makes."""

    #: Sequential round trips per task kind (after the warm-up), over ``rounds`` rounds.
    calls: int
    rounds: int
    #: Bursts per task kind, each firing ``burst_size`` calls before waiting for them.
    bursts: int
    burst_size: int
    #: Sequential ``get_codes(ring, 1000)`` calls.
    batch_calls: int
    #: Untimed round trips per task kind first (connections, imports, the ring's pool).
    warmup: int
    #: Seconds to wait for any one result.
    timeout: float = 30.0

    @classmethod
    def full(cls) -> CeleryParams:
        """The real benchmark."""
        return cls(calls=2000, rounds=10, bursts=10, burst_size=200, batch_calls=50, warmup=50)

    @classmethod
    def quick(cls) -> CeleryParams:
        """Checks that everything works."""
        return cls(calls=40, rounds=2, bursts=1, burst_size=40, batch_calls=3, warmup=5)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolated between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class Calls:
    """Sends tasks and waits for results, keeping every task id and returned value."""

    def __init__(self, timeout: float, task_ids: list[str]) -> None:
        self.timeout = timeout
        self.task_ids = task_ids
        self.values: list[Any] = []

    def round_trips(self, send: Send, count: int) -> list[float]:
        """``count`` sequential calls; each one's round trip in milliseconds."""
        latencies = []
        for _ in range(count):
            started = time.perf_counter()
            result = send()
            value = result.get(timeout=self.timeout)
            latencies.append((time.perf_counter() - started) * 1000)
            self.task_ids.append(result.id)
            self.values.append(value)
        return latencies

    def burst(self, send: Send, count: int) -> float:
        """Seconds to send ``count`` calls, then get every result."""
        started = time.perf_counter()
        results = [send() for _ in range(count)]
        values = [result.get(timeout=self.timeout) for result in results]
        elapsed = time.perf_counter() - started
        self.task_ids.extend(result.id for result in results)
        self.values.extend(values)
        return elapsed


def _codes(values: Sequence[Any]) -> list[str]:
    codes: list[str] = []
    for value in values:
        if isinstance(value, str):
            codes.append(value)
        elif isinstance(value, list):
            codes.extend(value)
    return codes


def measure_celery(
    settings: WorkerSettings,
    ring: str,
    params: CeleryParams,
    task_ids: list[str],
    log: Callable[[str], None],
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Figures (``celery.*``) and round-trip samples (ms) of ``noop`` and ``get_code``.

    A worker must be holding ``ring`` on ``settings``' broker. Every task id is appended
    to ``task_ids`` (for cleaning up their results). Raises RuntimeError if any code
    came back twice.
    """
    import workers.tasks  # noqa: F401  (registers the tasks with every app)

    app = create_app(settings, set_as_current=False)
    calls = Calls(params.timeout, task_ids)
    try:
        noop, get_code, get_codes = (
            app.tasks[name] for name in (TASK_NOOP, TASK_GET_CODE, TASK_GET_CODES)
        )
        sends: dict[str, Send] = {"noop": noop.delay, "get_code": lambda: get_code.delay(ring)}
        for send in sends.values():
            calls.round_trips(send, params.warmup)

        samples: dict[str, list[float]] = {name: [] for name in sends}
        per_round = max(1, params.calls // params.rounds)
        for _ in range(params.rounds):
            for name, send in sends.items():
                samples[name] += calls.round_trips(send, per_round)
        log("celery: sequential round trips done")

        burst_seconds = dict.fromkeys(sends, 0.0)
        for _ in range(params.bursts):
            for name, send in sends.items():
                burst_seconds[name] += calls.burst(send, params.burst_size)
        log("celery: bursts done")

        started = time.perf_counter()
        calls.round_trips(lambda: get_codes.delay(ring, BATCH), params.batch_calls)
        batch_rate = params.batch_calls * BATCH / (time.perf_counter() - started)
        log(f"celery: get_codes({BATCH}) done: {batch_rate:,.0f} codes/s")
    finally:
        app.close()

    codes = _codes(calls.values)
    if len(set(codes)) != len(codes):
        raise RuntimeError(f"ring {ring!r} issued a code twice among {len(codes)} codes")

    figures: dict[str, float] = {}
    for name, latencies in samples.items():
        figures[f"celery.{name}.p50_ms"] = percentile(latencies, 50)
        figures[f"celery.{name}.p99_ms"] = percentile(latencies, 99)
        figures[f"celery.{name}.burst_per_s"] = (
            params.bursts * params.burst_size / burst_seconds[name]
        )
    for stat in ("p50", "p99"):
        figures[f"celery.get_code.{stat}_ratio"] = (
            figures[f"celery.get_code.{stat}_ms"] / figures[f"celery.noop.{stat}_ms"]
        )
    figures["celery.get_code.burst_ratio"] = (
        figures["celery.get_code.burst_per_s"] / figures["celery.noop.burst_per_s"]
    )
    figures["celery.get_codes_1000.codes_per_s"] = batch_rate
    return figures, samples
