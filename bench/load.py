"""Concurrent callers in a closed loop: threads of this process sharing its caller apps,
or caller processes (spawned: a fresh interpreter and apps each, as separate programs).
Each caller makes the same phases, a call each, all callers starting a phase together
(a barrier); a phase's rate is every caller's calls over the slowest caller's time."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from bench.calls import Call, Clients, Endpoints, Recorder, closed_loop, round_trips

#: Seconds a caller waits at a barrier for the others.
BARRIER_TIMEOUT = 180.0


def _caller(
    source: Clients | Endpoints, phases: list[Call], seconds: float, barrier: Any, warmup: int
) -> tuple[list[tuple[int, float]], Recorder]:
    """One caller: warm each call up, then each phase once every caller is ready; (calls,
    seconds) per phase, and the codes a caller process got (its results deleted)."""
    clients = source if isinstance(source, Clients) else Clients(source)
    try:
        for call in dict.fromkeys(phases):
            round_trips(clients, call, warmup)
        done = []
        for call in phases:
            barrier.wait(BARRIER_TIMEOUT)
            done.append(closed_loop(clients, call, seconds))
        return done, Recorder(codes=clients.recorder.codes) if clients is not source else Recorder()
    except BaseException:
        barrier.abort()  # the others stop waiting; the parent gets this error
        raise
    finally:
        if clients is not source:
            clients.close()


def run_load(
    source: Clients | Endpoints, callers: int, phases: Sequence[Call], seconds: float, warmup: int
) -> tuple[list[float], Recorder]:
    """``callers`` in a closed loop for ``seconds`` per phase: threads sharing ``source``
    if it is this process's :class:`Clients`, else spawned processes; each phase's rate,
    and the codes the processes got."""
    with ExitStack() as stack:
        pool: Executor
        if isinstance(source, Clients):
            pool = stack.enter_context(ThreadPoolExecutor(callers))
            barrier: Any = threading.Barrier(callers + 1)
        else:
            spawn = multiprocessing.get_context("spawn")
            # A manager's barrier, since a plain one cannot be sent to a pool's process.
            barrier = stack.enter_context(spawn.Manager()).Barrier(callers + 1)
            pool = stack.enter_context(ProcessPoolExecutor(callers, mp_context=spawn))
        args = (source, list(phases), seconds, barrier, warmup)
        futures = [pool.submit(_caller, *args) for _ in range(callers)]
        try:
            for _ in phases:  # every phase starts when this process too is ready
                barrier.wait(BARRIER_TIMEOUT)
        except threading.BrokenBarrierError:
            pass  # a caller failed: its result raises why
        errors = [error for future in futures if (error := future.exception()) is not None]
        if errors:  # the callers stopped at the barrier say so: report the first cause
            cause = min(errors, key=lambda error: isinstance(error, threading.BrokenBarrierError))
            raise RuntimeError(f"a caller failed: {cause!r}") from cause
        results = [future.result() for future in futures]
    codes = Recorder()
    for _, recorded in results:
        codes.merge(recorded)
    rates = [
        sum(done[index][0] for done, _ in results) / max(done[index][1] for done, _ in results)
        for index in range(len(phases))
    ]
    return rates, codes
