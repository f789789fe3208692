"""The benchmark's own ring worker: a real ``celery worker`` subprocess, as in production.

Started with the production pool (``--pool threads --concurrency 1``) for one ring;
ready once it holds the ring's Redis lock. :meth:`BenchWorker.stop` always ends it:
SIGTERM (warm shutdown: pooled codes go back to the ring), then SIGKILL after a grace
period.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import redis

from workers.names import lock_key

#: Seconds a worker gets to win its lock (it migrates and fills its ring first).
READY_TIMEOUT = 90.0
#: Seconds between SIGTERM and SIGKILL.
STOP_GRACE = 20.0


class WorkerFailed(RuntimeError):
    """The benchmark's worker exited or never took its ring."""


def worker_command(ring: str) -> list[str]:
    """The production worker command line, for one ring."""
    return [
        sys.executable,
        "-m",
        "workers.cli",
        "worker",
        ring,
        "--hostname",
        f"{ring}@%h",
        "--loglevel",
        "WARNING",
    ]


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of process ``pid`` from ``/proc/PID/status``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise WorkerFailed(f"/proc/{pid}/status has no {field}")


class BenchWorker:
    """One ``celery worker`` subprocess serving ``ring``; a context manager."""

    def __init__(self, ring: str, env: Mapping[str, str], workdir: Path, redis_url: str) -> None:
        self.ring = ring
        self.env = dict(env)
        self.workdir = workdir
        self.log_path = workdir / f"worker-{ring}.log"
        self.redis_url = redis_url
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BenchWorker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        """The worker's process id."""
        if self.process is None:
            raise WorkerFailed("the worker is not started")
        return self.process.pid

    def start(self) -> None:
        """Start the subprocess (its own session: a Ctrl-C reaches the bench, which stops it)."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                worker_command(self.ring),
                env=self.env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_holding(self, timeout: float = READY_TIMEOUT) -> None:
        """Return once the worker holds the ring's lock; WorkerFailed if it dies or times out."""
        client: redis.Redis = redis.Redis.from_url(self.redis_url)
        key = lock_key(self.ring)
        marker = f"|{self.pid}|".encode()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._check_alive()
                token = client.get(key)
                if token is not None and marker in token:
                    return
                time.sleep(0.05)
        finally:
            client.close()
        raise WorkerFailed(
            f"worker did not take ring {self.ring!r} in {timeout:.0f} s" + self.tail()
        )

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise WorkerFailed(f"worker exited with status {self.process.returncode}" + self.tail())

    def rss_mb(self, field: str = "VmRSS") -> float:
        """The worker's resident memory (``VmRSS``; ``VmHWM`` for the peak), in MiB."""
        self._check_alive()
        return rss_kib(self.pid, field) / 1024

    def tail(self, lines: int = 30) -> str:
        """The end of the worker's log, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n--- worker log (end) ---\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds. Returns the exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()  # SIGKILL
                process.wait()
        return process.returncode
