"""Worker, beat and flower processes of a test, and the :class:`ProcessGroup` that
guarantees they are all gone at the end of its ``with`` block."""

from __future__ import annotations

import ast
import re
import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import redis

from coder_ring.celery.demo.processes import Process
from coder_ring.registry.keys import lock_key
from coder_ring.registry.lease import as_text, holder_name
from coder_ring.settings import DEFAULT_NAMESPACE
from tests.harness.calls import wait_until
from tests.harness.config import CELERY, CODER_RING, HOSTNAME, REPO, free_port, locks_redis

#: A worker's log line for a code (or codes) handed out: the result, as Python's repr.
SUCCEEDED = re.compile(r"Task coder_ring\.get_codes?\[[0-9a-f-]+\] succeeded in \S+: (.+)$", re.M)


class ManagedProcess(Process):
    """A :class:`coder_ring.celery.demo.processes.Process` (own process group, own log
    file) that tests can also wait on: :meth:`wait_for_log`."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path = REPO,
    ) -> None:
        super().__init__(name, argv, env, log_path, cwd)

    def stop(self, timeout: float = 20.0) -> int:  # type: ignore[override]
        """SIGTERM (a graceful stop), then wait; returns the exit code."""
        self.kill(signal.SIGTERM)
        return self.wait(timeout)

    def wait_for_log(self, pattern: str, timeout: float = 15.0, count: int = 1) -> re.Match[str]:
        """Wait until the log has ``count`` matches of regex ``pattern``; the last one."""

        def found() -> re.Match[str] | None:
            matches = list(re.finditer(pattern, self.log_text()))
            if len(matches) >= count:
                return matches[count - 1]
            if not self.alive():
                raise RuntimeError(
                    f"{self.kind} {self.name} exited ({self.popen and self.popen.returncode}) "
                    f"before logging {pattern!r}:\n{self.log_tail()}"
                )
            return None

        try:
            return wait_until(found, timeout, 0.05, f"{pattern!r} in {self.name}'s log")
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.log_tail()}") from None


class WorkerProcess(ManagedProcess):
    """``celery -A workers.app worker --pool solo --concurrency 1 -n NAME@host
    --rings ...`` with ``env`` (see :func:`worker_env`); with ``cli=True`` the way users
    start it: ``coder-ring worker RING... | --all --hostname NAME@%h``."""

    kind = "worker"

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log_path: Path,
        rings: Iterable[str] = (),
        *,
        loglevel: str = "INFO",
        extra_args: Iterable[str] = (),
        cli: bool = False,
    ) -> None:
        self.rings = list(rings)
        self.hostname = f"{name}@{HOSTNAME}"
        if cli:
            argv = [*CODER_RING, "worker", *(self.rings or ["--all"])]
            argv += ["--hostname", f"{name}@%h", "--loglevel", loglevel]
        else:
            argv = [
                CELERY,
                "-A",
                "workers.app",
                "worker",
                "--pool",
                "solo",
                "--concurrency",
                "1",
                "-n",
                f"{name}@%h",
                "--loglevel",
                loglevel,
                "--without-gossip",
                "--without-mingle",
            ]
            if self.rings:
                argv += ["--rings", ",".join(self.rings)]
        argv += list(extra_args)
        super().__init__(name, argv, env, log_path)
        self._redis: redis.Redis | None = None

    @property
    def redis(self) -> redis.Redis:
        """A client on the locks' Redis (behind Sentinel too)."""
        if self._redis is None:
            self._redis = locks_redis(self.env)
        return self._redis

    def start(self) -> WorkerProcess:
        super().start()
        return self

    @property
    def namespace(self) -> str:
        """The worker's namespace."""
        return self.env.get("CODER_RING_NAMESPACE") or DEFAULT_NAMESPACE

    def lock_token(self, ring: str) -> str | None:
        """The current value of ``ring``'s lock key (``hostname|pid|random``), if any."""
        value = self.redis.get(lock_key(self.namespace, ring))
        return as_text(value) if value is not None else None

    def holds(self, ring: str) -> bool:
        """True if ``ring``'s lock key names this very process (host name and pid)."""
        token = self.lock_token(ring)
        if token is None or self.popen is None:
            return False
        parts = token.split("|")
        return holder_name(token) == self.hostname and len(parts) == 3 and parts[1] == str(self.pid)

    def wait_for_lock(self, ring: str, timeout: float = 15.0) -> float:
        """Wait until this worker holds ``ring``'s lock *and* consumes its queue (the log
        says "ring X: lock won by NAME@host"); returns the seconds waited."""
        started = time.monotonic()

        def won() -> bool:
            if not self.alive():
                raise RuntimeError(f"worker {self.name} exited:\n{self.log_tail()}")
            return self.holds(ring)

        try:
            wait_until(won, timeout, 0.02, f"{self.name} to hold ring {ring!r}")
        except TimeoutError as error:
            raise TimeoutError(f"{error}\n{self.log_tail()}") from None
        remaining = max(0.5, timeout - (time.monotonic() - started))
        self.wait_for_log(
            rf"ring {re.escape(ring)}: lock won by {re.escape(self.hostname)}", remaining
        )
        return time.monotonic() - started

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait for Celery's "ready." line."""
        self.wait_for_log(rf"{re.escape(self.hostname)} ready\.", timeout)

    def tasks_received(self, task_name: str = "coder_ring.get_code", whole: bool = True) -> int:
        """How many ``task_name`` requests this worker's log says it received (in every
        run, or with ``whole=False`` in the current one)."""
        pattern = rf"Task {re.escape(task_name)}\[[^\]]+\] received"
        return len(re.findall(pattern, self.log_text(whole)))

    def codes_served(self) -> list[str]:
        """Every code this worker's log says it handed out (get_code and get_codes, in
        every run), in order."""
        codes: list[str] = []
        for value in SUCCEEDED.findall(self.log_text(whole=True)):
            parsed = ast.literal_eval(value)
            codes.extend(parsed if isinstance(parsed, list) else [parsed])
        return codes

    def gave_back(self, ring: str) -> int:
        """Codes the log says this worker gave back to ``ring`` (summed)."""
        return sum(
            int(n)
            for n in re.findall(
                rf"ring {re.escape(ring)}: gave (\d+) pooled codes back",
                self.log_text(whole=True),
            )
        )

    def destroy(self) -> None:
        super().destroy()
        if self._redis is not None:
            self._redis.close()
            self._redis = None


class BeatProcess(ManagedProcess):
    """``celery -A workers.app beat`` with its schedule file in ``schedule_dir``."""

    kind = "beat"

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path, schedule: Path):
        argv = [
            CELERY,
            "-A",
            "workers.app",
            "beat",
            "--schedule",
            str(schedule),
            "--loglevel",
            "INFO",
            "--pidfile=",
        ]
        super().__init__(name, argv, env, log_path)


class FlowerProcess(ManagedProcess):
    """``celery -A workers.app flower`` on 127.0.0.1:``port`` with the API unlocked."""

    kind = "flower"

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path, port: int):
        self.port = port
        argv = [
            CELERY,
            "-A",
            "workers.app",
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
            "--persistent=False",
        ]
        super().__init__(name, argv, {**env, "FLOWER_UNAUTHENTICATED_API": "true"}, log_path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class ProcessGroup:
    """Starts processes and guarantees they are all gone at the end of the ``with``.

    ``directory`` holds each process's log (``<name>.log``). On exit every process's
    group is sent SIGCONT (so that a SIGSTOPped process is not left stopped if SIGKILL
    is refused), then SIGKILL, and the process is reaped. When the block raised, the
    tail of every log is printed (pytest shows it with the failure).
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.processes: list[ManagedProcess] = []

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        if error is not None:
            for process in self.processes:
                print(process.log_tail(60))  # pytest shows it with the failure
        self.close()

    def close(self) -> None:
        """SIGCONT + SIGKILL + reap every process started here."""
        for process in self.processes:
            process.destroy()

    def _log(self, name: str) -> Path:
        return self.directory / f"{name}.log"

    def add(self, process: ManagedProcess, start: bool = True) -> ManagedProcess:
        """Track ``process`` (and start it unless told not to)."""
        self.processes.append(process)
        if start:
            process.start()
        return process

    def worker(
        self,
        name: str,
        env: Mapping[str, str],
        rings: Iterable[str] = (),
        start: bool = True,
        **kwargs: Any,
    ) -> WorkerProcess:
        """A :class:`WorkerProcess` named ``name`` (hostname ``name@host``)."""
        process = WorkerProcess(name, env, self._log(name), rings, **kwargs)
        self.add(process, start)
        return process

    def beat(self, env: Mapping[str, str], name: str = "beat") -> BeatProcess:
        """A started :class:`BeatProcess` (schedule file in the group's directory)."""
        process = BeatProcess(name, env, self._log(name), self.directory / f"{name}-schedule")
        self.add(process)
        return process

    def flower(
        self, env: Mapping[str, str], port: int | None = None, name: str = "flower"
    ) -> FlowerProcess:
        """A started :class:`FlowerProcess` on ``port`` (a free one by default)."""
        process = FlowerProcess(name, env, self._log(name), port or free_port())
        self.add(process)
        return process
