"""The run's processes: a private Redis (broker, results, locks, registry) and a private
PostgreSQL (see :mod:`tests.servers`; the shared servers are never touched), the four
worker processes and the caller processes.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.faults.probes import Prober
from tests.faults.settings import (
    CALLERS,
    EXTRAS,
    NAMESPACE,
    RATE,
    RECOVERY_LIMIT,
    REQUEST_TIMEOUT,
    RINGS,
    SEED,
    SLACK,
    TASK_EXPIRES,
    WORKERS,
)
from tests.harness import ManagedProcess, ProcessGroup, WorkerProcess, wait_until, worker_env
from tests.harness.shared import require
from tests.servers import PrivatePostgres, PrivateRedis


@contextlib.contextmanager
def private_servers() -> Iterator[tuple[PrivateRedis, PrivatePostgres]]:
    """A private Redis and a private PostgreSQL (skip locally / fail in CI without them)."""
    with contextlib.ExitStack() as stack:
        try:
            redis_server = PrivateRedis()
            stack.callback(redis_server.close)
            redis_server.start()
            pg_server = PrivatePostgres()
            stack.callback(pg_server.close)
            pg_server.start()
        except Exception as error:  # noqa: BLE001 - no redis-server or PostgreSQL here
            require("a private Redis/PostgreSQL", error)
        yield redis_server, pg_server


def run_env(
    redis_server: PrivateRedis, pg_server: PrivatePostgres, rings_file: Path
) -> dict[str, str]:
    """The ``CODER_RING_*`` variables of every worker and caller of the run."""
    return worker_env(
        redis_url=redis_server.url,
        database_url=pg_server.url,
        rings_file=rings_file,
        task_expires=TASK_EXPIRES,
        namespace=NAMESPACE,
    )


class CallerCrashed(AssertionError):
    """A caller process ended by itself: the suite's own bug, not the product's."""


class Cluster:
    """Workers and callers of one run, and the servers they use."""

    def __init__(
        self,
        tmp_path: Path,
        env: dict[str, str],
        *,
        group: ProcessGroup,
        app: Any,
        redis_server: PrivateRedis,
        pg_server: PrivatePostgres,
    ) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.group = group
        self.app = app
        self.redis_server = redis_server
        self.pg_server = pg_server
        self.prober = Prober(app)
        self.workers: dict[str, WorkerProcess] = {}
        self.callers: list[ManagedProcess] = []
        self.outputs: list[Path] = []
        self.stop_file = tmp_path / "callers.stop"

    # -- workers ----------------------------------------------------------------------

    def start_workers(self) -> None:
        """Start every worker; wait until each ring has a holder."""
        for name, (rings, cli) in WORKERS.items():
            self.workers[name] = self.group.worker(name, self.env, rings=rings, cli=cli)
        for ring in RINGS:
            self.holder(ring)

    def holder(self, ring: str) -> WorkerProcess:
        """The worker holding ``ring``'s lock (waits for one, at most RECOVERY_LIMIT)."""

        def find() -> WorkerProcess | None:
            for worker in self.workers.values():
                with contextlib.suppress(Exception):  # Redis may be coming back
                    if worker.alive() and worker.holds(ring):
                        return worker
            return None

        return wait_until(find, RECOVERY_LIMIT, 0.05, f"a holder of ring {ring!r}")

    def held_by(self, worker: WorkerProcess) -> list[str]:
        """The rings whose lock names ``worker`` now (it may have died a moment ago)."""
        held = []
        for ring in RINGS:
            with contextlib.suppress(Exception):
                if worker.holds(ring):
                    held.append(ring)
        return held

    # -- callers ----------------------------------------------------------------------

    def start_callers(self) -> None:
        for index in range(CALLERS):
            name = f"caller{index + 1}"
            out = self.tmp_path / f"{name}.jsonl"
            argv = [
                sys.executable,
                "-m",
                "tests.faults.caller",
                f"--name={name}",
                f"--out={out}",
                f"--stop={self.stop_file}",
                f"--rings={','.join(RINGS)}",
                f"--extras={','.join(EXTRAS)}",
                f"--timeout={REQUEST_TIMEOUT}",
                f"--rate={RATE / CALLERS}",
                f"--seed={SEED + index}",
            ]
            caller = ManagedProcess(name, argv, self.env, self.group.directory / f"{name}.log")
            self.group.add(caller)
            self.callers.append(caller)
            self.outputs.append(out)

    def check_callers(self) -> None:
        """CallerCrashed, with its traceback, if a caller ended before it was asked to."""
        if self.stop_file.exists():
            return
        for caller in self.callers:
            if not caller.alive():
                raise CallerCrashed(
                    f"caller {caller.name} ended by itself (exit code "
                    f"{caller.popen and caller.popen.returncode}):\n{caller.log_tail(60)}"
                )

    def caller_records(self) -> list[dict[str, Any]]:
        records = []
        for path in self.outputs:
            with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8") as lines:
                for line in lines:
                    with contextlib.suppress(json.JSONDecodeError):  # a line being written
                        records.append(json.loads(line))
        return records

    def codes_received(self) -> int:
        return sum(len(r["codes"]) for r in self.caller_records() + self.prober.records)

    def stop_callers(self) -> dict[str, int | None]:
        """Ask the callers to stop; their exit codes (None: still running, a hang).
        CallerCrashed, with the traceback, for one that failed."""
        self.check_callers()
        self.stop_file.touch()
        exits: dict[str, int | None] = {}
        for caller in self.callers:
            try:
                exits[caller.name] = caller.wait(REQUEST_TIMEOUT + SLACK + 10)
            except TimeoutError:
                exits[caller.name] = None
        for caller in self.callers:
            if exits[caller.name] not in {0, None}:
                raise CallerCrashed(
                    f"caller {caller.name} exited with {exits[caller.name]}:\n{caller.log_tail(60)}"
                )
        return exits

    def statuses(self) -> dict[str, dict[str, Any]]:
        """Each ring's status as its holder reports it (``RingStatus.as_dict()``)."""
        pending = {ring: self.app.ring_tasks.status.delay(ring) for ring in RINGS}
        return {ring: result.get(timeout=REQUEST_TIMEOUT) for ring, result in pending.items()}

    def stop_workers(self) -> tuple[list[str], dict[str, int]]:
        """Workers that died by themselves, then the exit codes of a graceful stop of
        every worker (SIGTERM: each gives its pools back)."""
        died = [name for name, worker in self.workers.items() if not worker.alive()]
        exits = {name: worker.stop(timeout=30) for name, worker in self.workers.items()}
        return died, exits
