"""A Redis outage in the logs of a real worker and a real beat: one line when Redis is
lost, one when it is back (with how long it was away), no traceback, and nothing in
between but the rings given up. Before, beat logged a ~150-line traceback for every
refill due (2,294 lines in 70 s) and the worker "registry unreachable" every round."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.harness import ProcessGroup, worker_env, write_rings
from tests.servers import private_redis

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

OUTAGE = 8.0
RINGS = ("one", "two")
LOST = r"WARNING/MainProcess\] Redis unreachable: .*Connection refused"
BACK = r"WARNING/MainProcess\] Redis reachable again after (\d+) s$"


def coder_ring_lines(log: str) -> list[str]:
    """Lines logged by coder_ring during the outage (Celery's own consumer lines, which
    back off by themselves and name the broker, left out)."""
    return [line for line in log.splitlines() if line.startswith("[") and "consumer:" not in line]


def span(log: str, first: str, last: str) -> str:
    """``log`` from the first line matching ``first`` to the one matching ``last``."""
    start, end = re.search(first, log, re.M), re.search(last, log, re.M)
    assert start is not None and end is not None, log
    return log[start.start() : end.start()]


def test_a_redis_outage_is_one_line_lost_and_one_back_in_worker_and_beat(
    tmp_path: Path, pg_url: str
) -> None:
    with private_redis() as server, ProcessGroup(tmp_path / "processes") as group:
        env = worker_env(
            redis_url=server.url,
            database_url=pg_url,
            rings_file=write_rings(tmp_path / "rings.toml", **{ring: {} for ring in RINGS}),
            refill_interval=1.0,  # beat sends a refill per ring every second
        )
        worker = group.worker("w", env, loglevel="WARNING", cli=True)
        worker.wait_for_log(r"serves 2 rings \(took 2 rings", 30)
        beat = group.beat(env)
        beat.wait_for_log(r"Sending due task coder_ring\.refill\.two", 30)
        worker_from, beat_from = len(worker.log_text()), len(beat.log_text())

        server.stop()
        lost_at = time.monotonic()
        time.sleep(OUTAGE)
        server.start()
        down = time.monotonic() - lost_at
        beat.wait_for_log(BACK, 20)
        worker.wait_for_log(BACK, 20)
        worker.wait_for_log(r"serves 2 rings \(took 2 rings", 30, count=2)
        time.sleep(2)  # a few more rounds and refills: nothing more about the outage

        for process, start in ((worker, worker_from), (beat, beat_from)):
            log = process.log_text()[start:]
            assert "Traceback" not in log, process.log_tail(80)
            assert "ERROR" not in "\n".join(coder_ring_lines(log)), process.log_tail(80)
            assert len(re.findall(LOST, log, re.M)) == 1, process.log_tail(80)
            [back] = re.findall(BACK, log, re.M)
            # From the first failed call to the first that worked: at most the outage plus
            # one retry's wait (a lock TTL for the worker, a refill interval for beat).
            assert down - 3 <= int(back) <= down + 4, (back, down, process.log_tail(80))
        worker_lines = coder_ring_lines(worker.log_text()[worker_from:])
        assert "registry unreachable" not in worker.log_text()
        # Lost, back, a "lock lost" per ring, and the rings given up then taken again.
        assert len(worker_lines) <= 2 + len(RINGS) + 2, "\n".join(worker_lines)
        between = span(beat.log_text()[beat_from:], LOST, BACK)
        # Beat tries one refill 1 s, then 1 s... (its refill interval) after a failure:
        # one "Sending" line per try, none for the refills skipped meanwhile.
        assert len(between.splitlines()) <= OUTAGE + 4, between
