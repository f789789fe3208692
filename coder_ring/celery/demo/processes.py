"""One helper to start and stop a subprocess: the demo, the benchmarks and the tests use
it for workers, beat, flower and private servers.

The process runs in its own session (its own process group) with stdout and stderr
appended to a log file. :meth:`Process.stop` is graceful (SIGTERM, then SIGKILL after
a grace period); :meth:`Process.destroy` makes sure the process and anything it
spawned are gone (a SIGSTOPped process included).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class Process:
    """A subprocess with its own log file, started in its own process group."""

    kind = "process"

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        #: Variables added to this process's environment.
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        #: Where this run's output starts in the log (a restart appends to the same log).
        self.log_offset = 0

    @property
    def pid(self) -> int:
        """The process id (the process must have been started)."""
        assert self.popen is not None, f"{self.name} was not started"
        return self.popen.pid

    def start(self) -> Process:
        """Spawn the process (its stdout and stderr go to the log file, appended)."""
        assert self.popen is None or self.popen.poll() is not None, f"{self.name} is running"
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.log_offset = log.tell()
            log.write(f"==== {self.kind} {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        return self

    def alive(self) -> bool:
        """True while the process has not exited (a stopped process is alive)."""
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (SIGKILL, SIGTERM, SIGSTOP, SIGCONT...) to the process."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit; TimeoutError (it keeps running) if it does not."""
        assert self.popen is not None, f"{self.name} was not started"
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.kind} {self.name} still running after {timeout} s") from None

    def stop(self, timeout: float = 20.0) -> int | None:
        """A graceful stop: SIGTERM, then SIGKILL if it is still running after ``timeout``.
        Returns the exit code (None if it was never started)."""
        if self.popen is None:
            return None
        self.kill(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        self.kill(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except TimeoutError:
            self.destroy()
            return self.popen.returncode

    def destroy(self) -> None:
        """Make sure the process and anything it spawned are gone (SIGCONT, SIGKILL)."""
        if self.popen is None:
            return
        for sig in (signal.SIGCONT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                # Its own session: the process group id is the process id.
                os.killpg(self.popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)

    def log_text(self, whole: bool = False) -> str:
        """What the current run wrote so far (``whole``: every run's output)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(0 if whole else self.log_offset)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, headed by the process's name."""
        tail = "\n".join(self.log_text(whole=True).splitlines()[-lines:])
        return f"---- {self.kind} {self.name} ({self.log_path}) ----\n{tail}"
