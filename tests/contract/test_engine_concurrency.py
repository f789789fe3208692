"""Several OS processes on one database, on SQLite and PostgreSQL (``database_url``).

Every process here is started with ``spawn``: a fresh interpreter with its own
connections, as separate workers or CLI runs would be.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections import Counter
from typing import Any

import pytest

from coder_ring import ExtraConflict, RingConfig, RingService, SqlStore
from coder_ring.alphabet import encode_base

SPAWN = multiprocessing.get_context("spawn")
WAIT = 120  # seconds; only reached when something hangs
RING = RingConfig("shared", base_length=2)  # 1,024 codes a cycle
#: The extras each process draws with, in turn: two share "", one has "hi", one mixes.
EXTRAS_BY_PROCESS = [("",), ("",), ("hi",), ("", "hi", "26-")]
CLASH_ROUNDS = 12


def _service(url: str, rings: list[RingConfig]) -> RingService:
    return RingService(SqlStore(url), {ring.name: ring for ring in rings})


def _draw_worker(
    url: str, extras: tuple[str, ...], rounds: int, barrier: Any, results: Any
) -> None:
    service = _service(url, [RING])
    try:
        codes: list[str] = []
        barrier.wait(timeout=WAIT)
        for index in range(rounds):
            extra = extras[index % len(extras)]
            codes.append(service.get_code(RING.name, extra=extra))
            codes += service.get_codes(RING.name, 1 + index % 7, extra=extra)
        results.put(codes)
    finally:
        service.close()


def _clash_worker(url: str, extra: str, barrier: Any, results: Any) -> None:
    rings = [RingConfig(f"clash{index}", base_length=1) for index in range(CLASH_ROUNDS)]
    service = _service(url, rings)
    try:
        outcomes: list[str] = []
        for ring in rings:
            barrier.wait(timeout=WAIT)  # both first-use the new ring at once
            try:
                outcomes.append(service.get_code(ring.name, extra=extra))
            except ExtraConflict as error:
                outcomes.append(f"refused: {error}")
        results.put((extra, outcomes))
    finally:
        service.close()


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


def _extra_of(code: str) -> str:
    return next((extra for extra in ("hi", "26-") if code.startswith(extra)), "")


@pytest.mark.slow  # four drawing processes: `make test` runs it
def test_four_processes_drawing_from_one_ring_never_repeat(database_url: str) -> None:
    service = _service(database_url, [RING])
    try:
        service.migrate()
        rounds = 120  # per process: 120 single draws and 120 batches of 1 to 7
        per_process = rounds + sum(1 + index % 7 for index in range(rounds))
        barrier = SPAWN.Barrier(len(EXTRAS_BY_PROCESS))
        results = SPAWN.Queue()
        processes = [
            SPAWN.Process(
                target=_draw_worker, args=(database_url, extras, rounds, barrier, results)
            )
            for extras in EXTRAS_BY_PROCESS
        ]
        drawn = _run(processes, results)
        assert [len(codes) for codes in drawn] == [per_process] * len(processes)
        codes = [code for batch in drawn for code in batch]
        duplicates = [code for code, seen in Counter(codes).items() if seen > 1]
        assert not duplicates
        # The processes really ran at the same time: several drew from the first cycle.
        assert sum(any(len(code) == 2 for code in batch) for batch in drawn) >= 2
        bases = {encode_base(value, 2) for value in range(1024)}
        by_extra: dict[str, list[str]] = {"": [], "hi": [], "26-": []}
        for code in codes:
            by_extra[_extra_of(code)].append(code)
        assert len(by_extra[""]) > 1024  # "" went through a whole cycle and into the next
        status = {extra.extra: extra for extra in service.status(RING.name).extras}
        for extra, issued in by_extra.items():
            first = {code[len(extra) :] for code in issued if len(code) == len(extra) + 2}
            second = {code[len(extra) + 1 :] for code in issued if len(code) == len(extra) + 3}
            assert len(first) + len(second) == len(issued) < 2048
            assert first == bases or len(second) == 0
            assert all(code[len(extra)] == "X" for code in issued if len(code) == len(extra) + 3)
            cycle, used = divmod(len(issued), 1024)
            assert (status[extra].cycle, status[extra].remaining_in_cycle) == (cycle, 1024 - used)
    finally:
        service.close()


def test_two_processes_first_using_clashing_extras_one_wins(database_url: str) -> None:
    service = _service(database_url, [])
    service.migrate()
    service.close()
    barrier = SPAWN.Barrier(2)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_clash_worker, args=(database_url, extra, barrier, results))
        for extra in ("ab-", "ab-X")
    ]
    outcomes = dict(_run(processes, results))
    winners = Counter()
    for index in range(CLASH_ROUNDS):
        short, long = outcomes["ab-"][index], outcomes["ab-X"][index]
        refused = [text for text in (short, long) if text.startswith("refused: ")]
        assert len(refused) == 1, (short, long)  # exactly one wins, the other is refused
        if short in refused:
            assert "extra 'ab-' is refused" in short and "extra 'ab-X'" in short
            assert long.startswith("ab-X") and len(long) == 5
            winners["ab-X"] += 1
        else:
            assert "extra 'ab-X' is refused" in long and "extra 'ab-'" in long
            assert short.startswith("ab-") and len(short) == 4
            winners["ab-"] += 1
    rings = [RingConfig(f"clash{index}", base_length=1) for index in range(CLASH_ROUNDS)]
    checker = _service(database_url, rings)
    try:
        for index, ring in enumerate(rings):
            used = [extra.extra for extra in checker.status(ring.name).extras]
            winner = "ab-X" if outcomes["ab-"][index].startswith("refused") else "ab-"
            assert used == [winner]
    finally:
        checker.close()
    assert sum(winners.values()) == CLASH_ROUNDS
