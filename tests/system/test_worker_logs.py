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
