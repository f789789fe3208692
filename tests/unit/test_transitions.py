"""The seats' transition executor (:class:`coder_ring.celery.transitions.OrderedTransitions`):
in submission order per ring, several rings at once, nothing taken after a shutdown."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future

import pytest

from coder_ring.celery.transitions import OrderedTransitions


def test_one_rings_transitions_run_in_order_and_never_overlap() -> None:
    executor = OrderedTransitions(4)
    running: set[str] = set()
    order: dict[str, list[int]] = {"a": [], "b": []}
    overlaps: list[str] = []
    mutex = threading.Lock()

    def step(ring: str, index: int) -> int:
        with mutex:
            if ring in running:
                overlaps.append(ring)
            running.add(ring)
        time.sleep(0.001)
        with mutex:
            running.discard(ring)
            order[ring].append(index)
        return index

    futures = [executor.submit(ring, step, ring, i) for i in range(50) for ring in "ab"]
    assert [future.result(timeout=10) for future in futures[:4]] == [0, 0, 1, 1]
    executor.shutdown(wait=True)
    assert all(future.done() for future in futures)
    assert order == {"a": list(range(50)), "b": list(range(50))} and not overlaps


def test_rings_run_side_by_side_and_errors_stay_in_their_future() -> None:
    executor = OrderedTransitions(2)
    both = threading.Barrier(2, timeout=5)  # only met if two rings run at once
    first, second = executor.submit("a", both.wait), executor.submit("b", both.wait)
    assert {first.result(5), second.result(5)} == {0, 1}

    def fail() -> None:
        raise ValueError("claim failed")

    failed = executor.submit("a", fail)
    after = executor.submit("a", lambda: "next")
    assert isinstance(failed.exception(5), ValueError) and after.result(5) == "next"
    executor.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        executor.submit("a", lambda: None)


def test_a_submit_racing_shutdown_either_runs_or_is_refused() -> None:
    # A notice (or a lost lock) during a worker's stop submits while the executor shuts
    # down: the task must either be refused (RuntimeError) or run before shutdown(wait)
    # returns. Never accepted and then dropped: a dropped handoff renews its lock for ever.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the two threads as often as possible
    try:
        for _ in range(300):
            executor = OrderedTransitions(2)
            accepted: list[Future[str]] = []
            refused: list[RuntimeError] = []
            go = threading.Barrier(2, timeout=5)

            def submit_many(
                executor: OrderedTransitions = executor,
                accepted: list[Future[str]] = accepted,
                refused: list[RuntimeError] = refused,
                go: threading.Barrier = go,
            ) -> None:
                go.wait()
                for index in range(20):
                    try:
                        accepted.append(executor.submit(f"r{index}", lambda: "ran"))
                    except RuntimeError as error:
                        refused.append(error)

            submitter = threading.Thread(target=submit_many)
            submitter.start()
            go.wait()
            executor.shutdown(wait=True)
            submitter.join(5)
            assert len(accepted) + len(refused) == 20
            assert all(future.done() for future in accepted), "accepted, never run"
    finally:
        sys.setswitchinterval(switch)
