"""Concurrent callers: threads of one process, or caller processes, in a closed loop.

A load is a list of phases; in each, every caller calls its :class:`~bench.calls.Call`
for the phase's seconds, all callers starting together (a barrier). The figure of a
phase is the aggregate rate: every caller's calls over the slowest caller's time.

Caller processes are started with ``spawn`` (a fresh interpreter each, as separate
programs would be): each builds its own caller apps.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.calls import Call, Clients, Endpoints, Recorder, closed_loop, round_trips

#: Seconds a caller waits at a barrier for the others.
BARRIER_TIMEOUT = 180.0


@dataclass(frozen=True)
class Phase:
    """``call`` in a closed loop for ``seconds``, ``depth`` calls in flight per caller."""

    call: Call
    seconds: float
    depth: int = 1


@dataclass(frozen=True)
class Outcome:
    """A phase's result over all callers."""

    calls: int
    seconds: float

    @property
    def rate(self) -> float:
        """Calls per second, all callers together."""
        return self.calls / self.seconds


def _aggregate(phases: int, results: Sequence[Sequence[tuple[int, float]]]) -> list[Outcome]:
    return [
        Outcome(
            sum(result[index][0] for result in results),
            max(result[index][1] for result in results),
        )
        for index in range(phases)
    ]


def _run_phases(
    clients: Clients,
    phases: Sequence[Phase],
    barrier: Any,
    recorder: Recorder,
    warmup: int,
) -> list[tuple[int, float]]:
    """One caller: warm up each call, then each phase after the barrier."""
    for call in dict.fromkeys(phase.call for phase in phases):
        round_trips(clients.sender(call), warmup, clients.timeout, recorder)
    done = []
    for phase in phases:
        barrier.wait(BARRIER_TIMEOUT)
        send = clients.sender(phase.call)
        done.append(closed_loop(send, phase.seconds, clients.timeout, recorder, phase.depth))
    return done


def thread_load(
    clients: Clients, phases: Sequence[Phase], threads: int, warmup: int
) -> tuple[list[Outcome], list[Recorder]]:
    """``threads`` threads of this process share ``clients`` and run ``phases``."""
    barrier = threading.Barrier(threads + 1)
    recorders = [Recorder() for _ in range(threads)]
    results: list[list[tuple[int, float]]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def caller(index: int) -> None:
        try:
            results[index] = _run_phases(clients, phases, barrier, recorders[index], warmup)
        except Exception as error:  # noqa: BLE001 - the parent reports it
            errors.append(error)
            barrier.abort()

    workers = [
        threading.Thread(target=caller, args=(i,), name=f"bench-caller-{i}") for i in range(threads)
    ]
    for thread in workers:
        thread.start()
    try:
        for _ in phases:
            barrier.wait(BARRIER_TIMEOUT)
    except threading.BrokenBarrierError:
        pass
    finally:
        for thread in workers:
            thread.join()
    if errors:
        raise RuntimeError(f"a caller thread failed: {errors[0]!r}") from errors[0]
    return _aggregate(len(phases), results), recorders


def _caller_process(  # noqa: PLR0917 - a Process target takes positional args
    endpoints: Endpoints,
    phases: Sequence[Phase],
    barrier: Any,
    out: Any,
    warmup: int,
    timeout: float,
) -> None:
    """A caller process: its own apps; reports (phase results, codes by ring) on ``out``."""
    clients = Clients(endpoints, timeout)
    recorder = Recorder()
    try:
        done = _run_phases(clients, phases, barrier, recorder, warmup)
        out.put(("ok", done, recorder.codes))
    except BaseException as error:
        barrier.abort()
        out.put(("error", repr(error), {}))
        raise
    finally:
        try:
            clients.forget(recorder.task_ids)
        finally:
            clients.close()


def process_load(
    endpoints: Endpoints,
    plans: Sequence[Sequence[Phase]],
    warmup: int,
    timeout: float,
) -> tuple[list[Outcome], dict[str, list[str]]]:
    """One caller process per plan (each a list of phases; every plan has as many).
    Returns the outcome of each phase (all processes together) and every code the
    callers got, by ring."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(plans) + 1)
    out = context.Queue()
    processes = [
        context.Process(
            target=_caller_process,
            args=(endpoints, list(plan), barrier, out, warmup, timeout),
            name=f"bench-caller-{index}",
            daemon=True,
        )
        for index, plan in enumerate(plans)
    ]
    for process in processes:
        process.start()
    reports: list[tuple[str, Any, dict[str, list[str]]]] = []
    try:
        for _ in plans[0]:
            barrier.wait(BARRIER_TIMEOUT)
        for _ in processes:
            reports.append(out.get(timeout=BARRIER_TIMEOUT + max(p.seconds for p in plans[0])))
    except (threading.BrokenBarrierError, queue.Empty) as error:
        failed = [report[1] for report in reports if report[0] == "error"]
        while not out.empty():
            report = out.get_nowait()
            if report[0] == "error":
                failed.append(report[1])
        raise RuntimeError(f"caller processes failed: {failed or error!r}") from None
    finally:
        barrier.abort()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
    failed = [report[1] for report in reports if report[0] == "error"]
    if failed:
        raise RuntimeError(f"caller processes failed: {failed}")
    codes = Recorder()
    for report in reports:
        codes.add_codes(report[2])
    return _aggregate(len(plans[0]), [report[1] for report in reports]), codes.codes
