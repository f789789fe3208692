"""A bad edit of the rings file under running callers (issue 17).

A long-running caller (a web process) keeps calling ``get_code.delay()`` from a thread
while the rings file gets a bad edit. The worker serves on ("not reloaded; serving the
rings as before"), and so must the callers: they keep the last good rings, warn once
per bad content (file, ring, key), and pick the fixed file up. A process that starts
with only a bad file fails with the clear error, as before.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from coder_ring import NoWorker, UnknownRing
from tests.harness import (
    REPO,
    ProcessGroup,
    assert_distinct,
    caller_app,
    wait_until,
    worker_env,
    write_rings,
)

GOOD: dict[str, dict[str, Any]] = {
    "widget": {"base_length": 3, "pool_size": 16},
    "doodad": {"base_length": 2, "pool_size": 8},
}
TIMEOUT = 10.0
#: A typo in a key of a new ring, and the issue's own edit: a ring name with capitals.
TYPO = "\n[rings.gadget]\nbase_lenght = 2\n"
BAD_NAME = "\n[rings.Bad-Name]\n"


class Caller(threading.Thread):
    """Calls ``get_code.delay(ring).get()`` for the good rings in turn until stopped."""

    def __init__(self, app: Any) -> None:
        super().__init__(name="caller", daemon=True)
        self.app = app
        self.codes: list[str] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            for ring in GOOD:
                try:
                    code = self.app.ring_tasks.get_code.delay(ring).get(timeout=TIMEOUT)
                    self.codes.append(code)
                except Exception as error:  # noqa: BLE001 - every failure is reported
                    self.errors.append(f"{type(error).__name__}: {error}")

    def calls(self) -> int:
        return len(self.codes) + len(self.errors)

    def wait_calls(self, more: int) -> None:
        """Until ``more`` further calls were made (each one reads the rings file's stamp)."""
        target = self.calls() + more
        wait_until(lambda: self.calls() >= target, 30, 0.02, f"{more} more calls")


def save(path: Path, body: str) -> None:
    """Replace the file at once, as editors and config volumes do: a caller never reads
    it half written (a half-written file may be a valid one with fewer rings)."""
    draft = path.with_suffix(".draft")
    draft.write_text(body, encoding="utf-8")
    draft.replace(path)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "coder_ring.config" and record.levelno == logging.WARNING
    ]


def first_code(app: Any, ring: str) -> str:
    """A code of ``ring`` as soon as a worker serves it (it reloads the file by itself)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            code: str = app.ring_tasks.get_code.delay(ring).get(timeout=TIMEOUT)
            return code
        except NoWorker:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.redis
def test_callers_keep_the_last_good_rings_through_a_bad_edit(
    tmp_path: Path,
    redis_url: str,
    sqlite_url: str,
    group: ProcessGroup,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="coder_ring.config")
    rings = write_rings(tmp_path / "rings.toml", **GOOD)
    good = rings.read_text(encoding="utf-8")
    env = worker_env(redis_url=redis_url, database_url=sqlite_url, rings_file=rings)
    worker = group.worker("all", env, cli=True)
    for ring in GOOD:
        worker.wait_for_lock(ring, timeout=30)
    with caller_app(env) as app:
        caller = Caller(app)
        caller.start()
        try:
            caller.wait_calls(10)
            save(rings, good + TYPO)
            caller.wait_calls(40)
            assert caller.errors == []  # the calls go on being accepted, and served
            worker.wait_for_log("rings file not reloaded")  # the worker serves on, too
            (warned,) = warnings(caplog)
            assert str(rings) in warned and "'gadget'" in warned and "'base_lenght'" in warned
            assert "widget" in warned and "doodad" in warned  # the rings callers go on with
            with pytest.raises(UnknownRing, match="'gadget'"):  # not in the last good rings
                app.ring_tasks.get_code.delay("gadget")
            # Another bad content: one more warning, naming its own ring.
            save(rings, good + BAD_NAME)
            caller.wait_calls(40)
            assert len(warnings(caplog)) == 2 and "'Bad-Name'" in warnings(caplog)[1]
            # Fixed: the callers take the new ring up (and the worker serves it).
            save(rings, good + TYPO.replace("base_lenght", "base_length"))
            assert len(first_code(app, "gadget")) == 2
            caller.wait_calls(20)
        finally:
            caller.stopping.set()
            caller.join(TIMEOUT * 2)
    assert caller.errors == []
    assert len(caller.codes) >= 110
    assert_distinct(caller.codes)
    assert len(warnings(caplog)) == 2


def test_a_process_with_only_a_bad_rings_file_fails_clearly(tmp_path: Path) -> None:
    rings = tmp_path / "rings.toml"
    rings.write_text("[rings.widget]\n" + TYPO, encoding="utf-8")
    # Nothing listens there: the call fails on the rings file before it connects.
    env = worker_env(redis_url="redis://127.0.0.1:9/0", database_url="sqlite://", rings_file=rings)
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODER_RING_")}
    script = "from coder_ring.celery import get_code\nget_code.delay('widget')\n"
    caller = subprocess.run(
        [sys.executable, "-c", script],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert caller.returncode == 1
    last = caller.stderr.strip().splitlines()[-1]
    assert last.startswith("coder_ring.errors.ConfigError: ")
    assert str(rings) in last and "'gadget'" in last and "'base_lenght'" in last
