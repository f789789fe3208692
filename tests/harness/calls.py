"""The caller side of a test: a caller app and its ring calls, the ``coder-ring``
command in a subprocess, polling until something holds, and the check that no code was
issued twice."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from coder_ring.celery.app import CoderRingApp, create_app
from coder_ring.settings import WorkerSettings
from tests.harness.config import CODER_RING, REPO, settings_from_env

T = TypeVar("T")


@contextlib.contextmanager
def caller_app(env: Mapping[str, str] | WorkerSettings) -> Iterator[CoderRingApp]:
    """The caller side: a coder_ring app for ``env``; its tasks are ``app.ring_tasks``
    (bound to it: any thread may call them). The rings file of the settings is what
    ``.delay()`` validates ring names against."""
    settings = env if isinstance(env, WorkerSettings) else settings_from_env(env)
    app = create_app(settings)
    try:
        yield app
    finally:
        app.close()


def ring_calls(
    ring: str, timeout: float
) -> tuple[Callable[..., str], Callable[[Any], dict[str, Any]]]:
    """``get(app, **kwargs)`` (one code of ``ring``) and ``status(app)`` through a caller
    app, each waiting at most ``timeout`` seconds for its result."""

    def get(app: Any, **kwargs: Any) -> str:
        code: str = app.ring_tasks.get_code.delay(ring, **kwargs).get(timeout=timeout)
        return code

    def status(app: Any) -> dict[str, Any]:
        report: dict[str, Any] = app.ring_tasks.status.delay(ring).get(timeout=timeout)
        return report

    return get, status


def run_cli(
    env: Mapping[str, str], *args: str, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``coder-ring ARGS`` in a subprocess with ``env`` (and no other ``CODER_RING_*``
    variable of this process), its output captured."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODER_RING_")}
    return subprocess.run(
        [*CODER_RING, *args],
        env={**base, **env},
        cwd=cwd or REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_distinct(codes: Sequence[str]) -> None:
    """No code appears twice in ``codes`` (the duplicates are named if one does)."""
    twice = sorted(code for code, times in Counter(codes).items() if times > 1)
    assert not twice, f"codes issued twice: {twice}"


def wait_until(
    predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)
