"""The worker processes the benchmark starts, each as a user would start it.

* a coder_ring worker: ``python -m coder_ring.celery.cli worker RING... --loglevel WARNING``, the
  shipped command with the shipped defaults (``coder-ring worker`` is the same entry
  point), configured only through ``CODER_RING_*`` variables;
* the anchor: a default Celery worker on a plain app with a no-op task,
  ``celery -A bench.anchor_app worker -P solo --loglevel WARNING``.

Both are :class:`coder_ring.celery.demo.processes.Process` (own process group, own log file); a
:class:`Workers` group stops every one it started, whatever happens.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import redis

from bench.anchor_app import BACKEND_ENV, BROKER_ENV, QUEUE_ENV
from coder_ring.celery.demo.processes import Process
from coder_ring.registry.keys import lock_key
from coder_ring.registry.lease import as_text

#: Seconds a worker gets to start and take its rings.
READY_TIMEOUT = 90.0
#: Seconds between SIGTERM and SIGKILL.
STOP_GRACE = 30.0
REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


class WorkerFailed(RuntimeError):
    """A benchmark worker exited, or never became ready."""


def coder_ring_command(rings: Sequence[str], name: str) -> list[str]:
    """The shipped worker command for ``rings`` (as ``coder-ring worker`` runs it)."""
    return [
        sys.executable,
        "-m",
        "coder_ring.celery.cli",
        "worker",
        *rings,
        "--hostname",
        f"{name}@%h",
        "--loglevel",
        "WARNING",
    ]


def anchor_command(name: str) -> list[str]:
    """A default Celery worker on the anchor app, started with Celery's own command."""
    celery = str(Path(sys.executable).with_name("celery"))
    return [
        celery,
        "-A",
        "bench.anchor_app",
        "worker",
        "-P",
        "solo",
        "--hostname",
        f"{name}@%h",
        "--loglevel",
        "WARNING",
    ]


def anchor_env(broker_url: str, result_backend: str, queue: str) -> dict[str, str]:
    """The anchor worker's environment (bench importable, its broker and queue)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {
        BROKER_ENV: broker_url,
        BACKEND_ENV: result_backend,
        QUEUE_ENV: queue,
        "PYTHONPATH": path,
    }


def proc_status(pid: int, field: str) -> int:
    """A memory figure of process ``pid`` from ``/proc/PID/status``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise WorkerFailed(f"/proc/{pid}/status has no {field}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class BenchWorker:
    """One started worker process (coder_ring's or the anchor)."""

    def __init__(self, process: Process) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def name(self) -> str:
        """The worker's name (its node name is ``name@host``)."""
        return self.process.name

    def check_alive(self) -> None:
        """WorkerFailed (with the end of its log) if the process exited."""
        if not self.process.alive():
            raise WorkerFailed(f"worker {self.name} exited\n{self.process.log_tail()}")

    def rss_mb(self, field: str = "VmRSS") -> float:
        """Resident memory (``VmRSS``; ``VmHWM`` for the peak), in MiB."""
        self.check_alive()
        return proc_status(self.pid, field) / 1024

    def cpu(self) -> float:
        """CPU seconds used so far."""
        self.check_alive()
        return cpu_seconds(self.pid)


class Workers:
    """The benchmark's worker processes; a context manager that stops them all."""

    def __init__(self, workdir: Path, redis_url: str) -> None:
        self.workdir = workdir
        self.redis_url = redis_url
        self.started: list[BenchWorker] = []

    def __enter__(self) -> Workers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

    def _start(self, name: str, argv: list[str], env: Mapping[str, str]) -> BenchWorker:
        process = Process(name, argv, env, self.workdir / f"{name}.log", cwd=self.workdir)
        worker = BenchWorker(process)
        self.started.append(worker)
        process.start()
        return worker

    def coder_ring(self, name: str, rings: Sequence[str], env: Mapping[str, str]) -> BenchWorker:
        """Start a coder_ring worker ``name`` that may serve ``rings``."""
        return self._start(name, coder_ring_command(rings, name), env)

    def anchor(self, name: str, env: Mapping[str, str]) -> BenchWorker:
        """Start the anchor worker."""
        return self._start(name, anchor_command(name), env)

    def holders(self, namespace: str, rings: Sequence[str]) -> dict[str, int | None]:
        """ring -> pid of the worker holding its lock in ``namespace`` (None: nobody)."""
        client: redis.Redis = redis.Redis.from_url(self.redis_url)
        try:
            values = client.mget([lock_key(namespace, ring) for ring in rings])
        finally:
            client.close()
        pids: dict[str, int | None] = {}
        for ring, value in zip(rings, values, strict=True):
            # A member id is "node|pid|random".
            pids[ring] = None if value is None else int(as_text(value).split("|")[1])
        return pids

    def wait_holding(
        self, namespace: str, wanted: Mapping[str, BenchWorker], timeout: float = READY_TIMEOUT
    ) -> None:
        """Return once each ring of ``wanted`` is held by its worker (WorkerFailed if a
        worker dies or the rings are not placed so in time)."""
        rings = list(wanted)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker in set(wanted.values()):
                worker.check_alive()
            holders = self.holders(namespace, rings)
            if all(holders[ring] == wanted[ring].pid for ring in rings):
                return
            time.sleep(0.05)
        tails = "\n".join(w.process.log_tail() for w in set(wanted.values()))
        raise WorkerFailed(f"rings not held as wanted after {timeout:.0f} s: {wanted}\n{tails}")

    def stop(self, worker: BenchWorker) -> int | None:
        """Stop ``worker`` gracefully (SIGTERM: a coder_ring worker gives its pools back)."""
        return worker.process.stop(STOP_GRACE)

    def stop_all(self) -> None:
        """Stop every worker started here: SIGTERM to all at once, then wait for each
        (SIGKILL of its process group after :data:`STOP_GRACE`)."""
        for worker in self.started:
            worker.process.kill(signal.SIGCONT)
            worker.process.kill(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for worker in self.started:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                pass
            finally:
                worker.process.destroy()
