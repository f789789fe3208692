"""What a real worker's log says at the default level (INFO): a caller's refused request
in one WARNING line per ring and kind per ``CODER_RING_LOG_INTERVAL`` (no traceback, no
ERROR), still counted in the metrics."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from coder_ring import ExtraConflict, InvalidInput
from coder_ring.celery.names import TASK_GET_CODE, ring_queue
from tests.harness import ProcessGroup, caller_app, free_port, worker_env, write_rings
from tests.system.metrics_scrape import scrape, value

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

RINGS = ("one", "two")
INTERVAL = 3.0
CALLS = 6
TIMEOUT = 15


def refused_lines(log: str) -> list[str]:
    return re.findall(r"^.*refused a caller's .*$", log, re.M)


def test_a_callers_bad_request_is_one_warning_line_per_ring_and_kind_per_interval(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    port = free_port()
    env = worker_env(
        redis_url=redis_url,
        database_url=pg_url,
        rings_file=write_rings(
            tmp_path / "rings.toml", **{ring: {"base_length": 1} for ring in RINGS}
        ),
        CODER_RING_LOG_INTERVAL=str(INTERVAL),
        CODER_RING_METRICS_PORT=str(port),
    )
    with ProcessGroup(tmp_path / "processes") as group, caller_app(env) as app:
        worker = group.worker("logs", env, RINGS)
        for ring in RINGS:
            worker.wait_for_lock(ring, timeout=30)

        def bad_calls() -> None:
            started = time.monotonic()
            for ring in RINGS:
                queue = ring_queue(app.settings.namespace, ring)
                for _ in range(CALLS):
                    # Passes the caller's checks; the engine refuses it (base_length 1:
                    # extra "X" would issue the default extra's codes).
                    with pytest.raises(ExtraConflict):
                        app.ring_tasks.get_code.delay(ring, extra="X").get(timeout=TIMEOUT)
                    # Sent by name (no caller check): the worker refuses the bad extra.
                    sent = app.send_task(
                        TASK_GET_CODE, args=[ring], kwargs={"extra": "no way!"}, queue=queue
                    )
                    with pytest.raises(InvalidInput):
                        sent.get(timeout=TIMEOUT)
            assert time.monotonic() - started < INTERVAL, "too slow to test the interval"

        bad_calls()
        app.ring_tasks.get_code.delay("one").get(timeout=TIMEOUT)  # the log is flushed
        log = worker.log_text()
        first = refused_lines(log)
        assert "raised unexpected" not in log
        assert "Traceback" not in log
        assert " ERROR" not in log and "ERROR/" not in log
        assert len(first) == 4, "\n".join(first)
        assert all("WARNING" in line for line in first), first
        assert {line.split("ring ")[1].split(":")[0] for line in first} == set(RINGS)
        assert sum("ExtraConflict" in line for line in first) == 2, first
        assert sum("InvalidInput" in line for line in first) == 2, first

        time.sleep(INTERVAL)  # the next interval: one more line each, with the count since
        bad_calls()
        app.ring_tasks.get_code.delay("one").get(timeout=TIMEOUT)
        second = refused_lines(worker.log_text())[len(first) :]
        assert len(second) == 4, "\n".join(second)
        assert all(f"and {CALLS - 1} more since" in line for line in second), second

        families = scrape(f"http://127.0.0.1:{port}/metrics", worker)
        for ring in RINGS:
            for kind in ("ExtraConflict", "InvalidInput"):
                counted = value(families, "coder_ring_draw_errors_total", ring=ring, kind=kind)
                assert counted == 2 * CALLS, (ring, kind, counted)


def serving_lines(log: str) -> list[str]:
    return re.findall(r"^.* serves \d+ rings? \(.*$", log, re.M)


def test_the_rings_served_are_one_line_at_start_and_one_per_change_at_the_default_level(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    rings = [f"r{n:02d}" for n in range(12)]
    env = worker_env(
        redis_url=redis_url,
        database_url=pg_url,
        rings_file=write_rings(tmp_path / "rings.toml", **{ring: {} for ring in rings}),
    )
    with ProcessGroup(tmp_path / "processes") as group:
        # `coder-ring worker`'s default level, WARNING: no per-ring "lock won" lines.
        first = group.worker("first", env, loglevel="WARNING")
        line = first.wait_for_log(r"serves 12 rings \(took 12 rings: .*\)$", 30)[0]
        assert "r00, r01, r02, r03, r04 and 7 more" in line, line
        assert len(serving_lines(first.log_text())) == 1
        second = group.worker("second", env, loglevel="WARNING")
        # The coordinator splits the rings: the first says what it gave and to whom.
        gave = first.wait_for_log(r"serves 6 rings \(gave up 6: .*\)$", 30)[0]
        assert f"6 to {second.hostname}" in gave, gave
        # One line per change (a rebalance over several rounds included), never per ring.
        second.wait_for_log(r"serves 6 rings \(took 6 rings: .*\)$", 30)
        assert len(serving_lines(first.log_text())) == 2, serving_lines(first.log_text())
        assert len(serving_lines(second.log_text())) == 1, serving_lines(second.log_text())
        assert "lock won" not in first.log_text()


def test_a_prefork_pool_or_a_concurrency_is_named_once_and_other_pools_refused(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    env = worker_env(
        redis_url=redis_url,
        database_url=pg_url,
        rings_file=write_rings(tmp_path / "rings.toml", one={"base_length": 1}),
    )
    asked = ["--pool", "prefork", "--concurrency", "4"]
    with ProcessGroup(tmp_path / "processes") as group, caller_app(env) as app:
        worker = group.worker("prefork", env, ["one"], loglevel="WARNING", extra_args=asked)
        worker.wait_for_log(r"serves 1 ring \(took 1 ring: one\)", 30)
        warned = re.findall(r"^.*runs in the solo pool.*$", worker.log_text(), re.M)
        assert len(warned) == 1, warned
        assert "not --pool prefork with --concurrency 4" in warned[0], warned
        assert "WARNING" in warned[0]
        app.ring_tasks.get_code.delay("one").get(timeout=TIMEOUT)  # it serves, in solo
        threads = group.worker("threads", env, ["one"], extra_args=["--pool", "threads"])
        assert threads.wait(30) != 0
        assert "error: a ring worker runs in the solo pool, not 'thread'" in threads.log_text()
