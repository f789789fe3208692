"""Several OS processes on one ring, and fills killed midway.

Every process here is started with ``spawn``: a fresh interpreter with its own
connections, as separate workers or CLI runs would be.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections import Counter
from typing import Any

import pytest

from coder_ring import ALPHABET, RingConfig, RingNotReady, RingService, SqlStore
from coder_ring.alphabet import encode_base
from coder_ring.profanity import kept_values
from tests.conftest import ServiceFactory
from tests.test_engine_contract import assert_permutation

SPAWN = multiprocessing.get_context("spawn")
WAIT = 120  # seconds; only reached when something hangs


def _service(url: str, ring: RingConfig) -> RingService:
    return RingService(SqlStore(url), {ring.name: ring})


def _draw_worker(url: str, ring: RingConfig, rounds: int, barrier: Any, results: Any) -> None:
    service = _service(url, ring)
    try:
        codes: list[str] = []
        barrier.wait(timeout=WAIT)
        for index in range(rounds):
            codes.append(service.get_code(ring.name))
            codes += service.get_codes(ring.name, 1 + index % 7)
        results.put(codes)
    finally:
        service.close()


def _populate_worker(url: str, ring: RingConfig, barrier: Any, results: Any) -> None:
    service = _service(url, ring)
    try:
        barrier.wait(timeout=WAIT)
        service.migrate()
        results.put(service.populate())
    finally:
        service.close()


def _populate_and_die(url: str, ring: RingConfig) -> None:
    service = _service(url, ring)

    def progress_for(_ring: RingConfig) -> Any:
        def progress(done: int, total: int) -> None:
            # After the first chunk is written, inside the fill's transaction.
            assert done < total
            os.kill(os.getpid(), signal.SIGKILL)

        return progress

    service.populate(progress=progress_for)


def _run(processes: list[Any], results: Any) -> list[Any]:
    """Start ``processes``; their results, failing fast when one of them dies."""
    for process in processes:
        process.start()
    try:
        collected: list[Any] = []
        deadline = time.monotonic() + WAIT
        # Read before joining: a child blocks on exit until its queued data is read.
        while len(collected) < len(processes):
            try:
                collected.append(results.get(timeout=0.2))
            except queue.Empty:
                failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                assert not failed, f"a child process failed (exit codes {failed})"
                assert time.monotonic() < deadline, "the child processes hang"
        for process in processes:
            process.join(WAIT)
            assert process.exitcode == 0
        return collected
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()


@pytest.mark.postgres
def test_four_processes_drawing_from_one_postgresql_ring_never_repeat(pg_url: str) -> None:
    ring = RingConfig("shared", base_length=2)  # 1,024 codes a cycle
    service = _service(pg_url, ring)
    try:
        service.migrate()
        service.populate()
        rounds = 120  # per process: 120 single draws and 120 batches of 1 to 7
        per_process = rounds + sum(1 + index % 7 for index in range(rounds))
        barrier = SPAWN.Barrier(4)
        results = SPAWN.Queue()
        processes = [
            SPAWN.Process(target=_draw_worker, args=(pg_url, ring, rounds, barrier, results))
            for _ in range(4)
        ]
        drawn = _run(processes, results)
        assert [len(codes) for codes in drawn] == [per_process] * 4
        # The processes really ran at the same time: several drew in the first cycle.
        assert sum(any(len(code) == 2 for code in batch) for batch in drawn) >= 2
        codes = [code for batch in drawn for code in batch]
        total = 4 * per_process
        assert total > 2 * 1024  # two whole cycles and part of a third
        duplicates = [code for code, seen in Counter(codes).items() if seen > 1]
        assert not duplicates
        bases = {encode_base(value, 2) for value in range(1024)}
        first = {code for code in codes if len(code) == 2}
        second = {code[1:] for code in codes if len(code) == 3 and code[0] == "X"}
        third = {code[1:] for code in codes if len(code) == 3 and code[0] == "W"}
        assert first == bases
        assert second == bases
        assert len(third) == total - 2048
        assert len(first) + len(second) + len(third) == total
        status = service.status("shared")
        assert (status.cycle, status.remaining_in_cycle) == (2, 1024 - len(third))
        assert_permutation(service, "shared")
    finally:
        service.close()


def test_a_fill_killed_midway_is_never_served_and_populate_completes_it(
    make_service: ServiceFactory, database_url: str
) -> None:
    ring = RingConfig("big", base_length=4)
    service = make_service(ring, populate=False)
    child = SPAWN.Process(target=_populate_and_die, args=(database_url, ring))
    child.start()
    child.join(WAIT)
    assert child.exitcode == -signal.SIGKILL

    status = service.status("big")
    assert (status.filled, status.total_codes, status.remaining_in_cycle) == (False, 0, 0)
    with pytest.raises(RingNotReady, match="interrupted"):
        service.get_code("big")
    with pytest.raises(RingNotReady):
        service.draw("big", 5, within_cycle=True)
    with service.store.engine.connect() as conn:  # type: ignore[attr-defined]
        assert conn.exec_driver_sql("SELECT count(*) FROM coder_ring_codes").scalar() == 0

    assert service.populate() == {"big": 32**4}
    status = service.status("big")
    assert (status.filled, status.total_codes, status.remaining_in_cycle) == (
        True,
        1_048_576,
        1_048_576,
    )
    assert_permutation(service, "big")
    codes = service.get_codes("big", 100)
    assert len(set(codes)) == 100
    assert all(len(code) == 4 and set(code) <= set(ALPHABET) for code in codes)


def test_two_processes_populating_one_ring_fill_it_once(database_url: str) -> None:
    ring = RingConfig("twice", base_length=4, profanity_filter=True)
    expected = len(kept_values(4, True))
    barrier = SPAWN.Barrier(2)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_populate_worker, args=(database_url, ring, barrier, results))
        for _ in range(2)
    ]
    written = _run(processes, results)
    assert sorted(result["twice"] for result in written) == [0, expected]
    service = _service(database_url, ring)
    try:
        status = service.status("twice")
        assert (status.filled, status.total_codes, status.remaining_in_cycle) == (
            True,
            expected,
            expected,
        )
        assert_permutation(service, "twice")
    finally:
        service.close()
