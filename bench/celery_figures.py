"""Round trips and bursts of several kinds of call, measured side by side.

Sequential round trips and bursts alternate between the kinds in rounds, so that drift
(another program waking up on the machine) affects every kind alike: latency
percentiles pool every round's calls; a burst ratio is the median over the rounds of
the two kinds' ratio in each round. For each kind the CPU time its worker and this
(caller) process spent per call is kept too: that is where a round trip's time goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bench.calls import Call, Clients, Recorder, burst, paired_median, percentile, round_trips

#: A probe returns the CPU seconds a process used so far.
Probe = Callable[[], float]


@dataclass(frozen=True)
class CeleryParams:
    """How many calls the Celery part makes."""

    #: Sequential round trips per kind (after the warm-up), over ``rounds`` rounds.
    calls: int
    rounds: int
    #: Bursts per kind, each firing ``burst_size`` calls before waiting for them.
    bursts: int
    burst_size: int
    #: Sequential ``get_codes(ring, 1000)`` calls.
    batch_calls: int
    #: Untimed round trips per kind first (connections, imports, the ring's pool).
    warmup: int
    #: Seconds of each closed-loop phase (threads, processes, spreading).
    load_seconds: float
    #: Rounds of closed-loop phases (anchor, no-op, get_code) for threads and processes.
    load_rounds: int
    #: Sequential round trips per kind with task events on (the flower row).
    events_calls: int
    #: Callers: threads of one process, caller processes.
    threads: int = 16
    processes: int = 4
    #: Requests queued per ring before the spreading workers start.
    drain_per_ring: int = 1500
    #: Calls in flight per caller process when measuring the payoff of spreading.
    spread_depth: int = 4
    #: Seconds to wait for any one result.
    timeout: float = 30.0

    @classmethod
    def full(cls) -> CeleryParams:
        """The real benchmark."""
        return cls(
            calls=2000,
            rounds=20,
            bursts=10,
            burst_size=200,
            batch_calls=50,
            warmup=50,
            load_seconds=1.5,
            load_rounds=8,
            events_calls=1000,
        )

    @classmethod
    def quick(cls) -> CeleryParams:
        """Checks that everything works."""
        return cls(
            calls=30,
            rounds=2,
            bursts=1,
            burst_size=20,
            batch_calls=2,
            warmup=3,
            load_seconds=0.3,
            load_rounds=1,
            events_calls=20,
            drain_per_ring=15,
        )


@dataclass(frozen=True)
class Compared:
    """Figures (``<kind>.<figure>``), latency samples (ms) and each round's burst rate of
    kinds measured together."""

    figures: dict[str, float]
    samples: dict[str, list[float]]
    bursts: dict[str, list[float]]


def compare(
    clients: Clients,
    calls: Mapping[str, Call],
    probes: Mapping[str, Probe],
    *,
    params: CeleryParams,
    recorder: Recorder,
    sequential: int,
) -> Compared:
    """Round trips (``sequential`` per kind, in rounds) and bursts of each named call.

    Figures per name: ``p50_ms``, ``p99_ms``, ``burst_per_s``, ``worker_cpu_ms`` (its
    worker's CPU per call, from ``probes[name]``) and ``caller_cpu_ms`` (this process's).
    """
    sends = {name: clients.sender(call) for name, call in calls.items()}
    for send in sends.values():
        round_trips(send, params.warmup, params.timeout, recorder)
    samples: dict[str, list[float]] = {name: [] for name in sends}
    worker_cpu = dict.fromkeys(sends, 0.0)
    caller_cpu = dict.fromkeys(sends, 0.0)
    per_round = max(1, sequential // params.rounds)
    for _ in range(params.rounds):
        for name, send in sends.items():
            worker_before, caller_before = probes[name](), time.process_time()
            samples[name] += round_trips(send, per_round, params.timeout, recorder)
            worker_cpu[name] += probes[name]() - worker_before
            caller_cpu[name] += time.process_time() - caller_before
    bursts: dict[str, list[float]] = {name: [] for name in sends}
    for _ in range(params.bursts):
        for name, send in sends.items():
            seconds = burst(send, params.burst_size, params.timeout, recorder)
            bursts[name].append(params.burst_size / seconds)
    figures: dict[str, float] = {}
    for name, latencies in samples.items():
        figures[f"{name}.p50_ms"] = percentile(latencies, 50)
        figures[f"{name}.p99_ms"] = percentile(latencies, 99)
        figures[f"{name}.burst_per_s"] = len(bursts[name]) / sum(1 / rate for rate in bursts[name])
        # CPU clocks tick in 10 ms: a floor keeps a tiny quick-mode figure above zero.
        figures[f"{name}.worker_cpu_ms"] = max(worker_cpu[name], 1e-3) * 1000 / len(latencies)
        figures[f"{name}.caller_cpu_ms"] = max(caller_cpu[name], 1e-3) * 1000 / len(latencies)
    return Compared(figures, samples, bursts)


def ratios(compared: Compared, name: str, base: str) -> dict[str, float]:
    """``name`` against ``base``: latency ratios (lower is better) and the burst ratio
    (higher is better; the median of the rounds' ratios), keyed ``<name>.<x>_vs_<base>``."""
    figures = compared.figures
    return {
        f"{name}.p50_vs_{base}": figures[f"{name}.p50_ms"] / figures[f"{base}.p50_ms"],
        f"{name}.p99_vs_{base}": figures[f"{name}.p99_ms"] / figures[f"{base}.p99_ms"],
        f"{name}.burst_vs_{base}": paired_median(compared.bursts[name], compared.bursts[base]),
    }


def batch_rate(
    clients: Clients, call: Call, calls: int, timeout: float, recorder: Recorder
) -> float:
    """Codes/s of ``calls`` sequential ``call`` s (a get_codes)."""
    send = clients.sender(call)
    round_trips(send, 1, timeout, recorder)  # warm-up
    started = time.perf_counter()
    round_trips(send, calls, timeout, recorder)
    return calls * call.codes / (time.perf_counter() - started)
