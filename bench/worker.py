"""The worker processes a run starts, each as a user would start it: coder_ring's with
the shipped command (``python -m coder_ring.celery.cli worker RING...``, as ``coder-ring worker``)
and defaults, configured only through ``CODER_RING_*`` variables; the anchor with
Celery's (``celery -A bench.anchor_app worker -P solo``); both ``--loglevel WARNING``.
Each has its own process group and log file; :class:`Workers` stops them all."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import redis

from bench.anchor_app import BACKEND_ENV, BROKER_ENV, QUEUE_ENV
from coder_ring.celery.demo.processes import Process
from coder_ring.registry.keys import lock_key
from coder_ring.registry.lease import as_text
from coder_ring.settings import WorkerSettings

#: Seconds a worker gets to start and take its rings.
READY_TIMEOUT = 90.0
#: Seconds between SIGTERM and SIGKILL.
STOP_GRACE = 30.0
REPO = Path(__file__).resolve().parent.parent


def anchor_env(settings: WorkerSettings, queue: str) -> dict[str, str]:
    """What a process of this repository (bench.anchor_app importable) needs to call or
    to be the anchor on the broker and result backend of ``settings``, on ``queue``."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {BROKER_ENV: settings.broker_url, BACKEND_ENV: settings.result_backend}
    return env | {QUEUE_ENV: queue, "PYTHONPATH": path}


def _node(name: str) -> list[str]:
    """A Celery worker's node name (``name@host``) and log level."""
    return ["--hostname", f"{name}@%h", "--loglevel", "WARNING"]


class WorkerFailed(RuntimeError):
    """A benchmark worker exited, or never became ready."""


class BenchWorker(Process):
    """A started worker process, coder_ring's or the anchor."""

    kind = "bench worker"

    def check_alive(self) -> None:
        """WorkerFailed (with the end of its log) if the process exited."""
        if not self.alive():
            raise WorkerFailed(f"worker {self.name} exited\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """CPU time used so far (user and system), from ``/proc/PID/stat``."""
        self.check_alive()
        stat = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii")
        fields = stat.rpartition(")")[2].split()  # after the command's name, which may hold spaces
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self, field: str = "VmRSS") -> float:
        """Resident memory in MiB, from ``/proc/PID/status`` (``VmHWM``: the peak)."""
        self.check_alive()
        for line in Path(f"/proc/{self.pid}/status").read_text(encoding="ascii").splitlines():
            name, _, value = line.partition(":")
            if name == field:
                return int(value.split()[0]) / 1024
        raise WorkerFailed(f"/proc/{self.pid}/status has no {field}")


class Workers:
    """The run's worker processes; a context manager that stops them all."""

    def __init__(self, workdir: Path, redis_url: str) -> None:
        self.workdir = workdir
        self.redis_url = redis_url
        self.started: list[BenchWorker] = []

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_all()

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> BenchWorker:
        """Start ``argv`` as process ``name``."""
        worker = BenchWorker(name, argv, env, self.workdir / f"{name}.log", cwd=self.workdir)
        self.started.append(worker)
        worker.start()
        return worker

    def coder_ring(self, name: str, rings: Sequence[str], settings: WorkerSettings) -> BenchWorker:
        """Start a coder_ring worker that may serve ``rings``, as shipped."""
        argv = [sys.executable, "-m", "coder_ring.celery.cli", "worker", *rings, *_node(name)]
        # No metrics port: several workers run on this machine.
        return self.start(name, argv, {**settings.to_env(), "CODER_RING_METRICS_PORT": ""})

    def anchor(self, name: str, settings: WorkerSettings, queue: str) -> BenchWorker:
        """Start the anchor with Celery's own command and defaults, on the broker and
        result backend of ``settings``, consuming ``queue``."""
        celery = str(Path(sys.executable).with_name("celery"))
        argv = [celery, "-A", "bench.anchor_app", "worker", "-P", "solo", *_node(name)]
        return self.start(name, argv, anchor_env(settings, queue))

    def wait_holding(self, worker: BenchWorker, namespace: str, ring: str) -> None:
        """Return once ``worker`` holds ``ring`` (WorkerFailed if it dies, or after
        :data:`READY_TIMEOUT`)."""
        client: redis.Redis = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while time.monotonic() < deadline:
                worker.check_alive()
                holder = client.get(lock_key(namespace, ring))  # "node|pid|random"
                if holder is not None and as_text(holder).split("|")[1] == str(worker.pid):
                    return
                time.sleep(0.05)
        finally:
            client.close()
        raise WorkerFailed(f"{ring} not held by {worker.name} in time\n{worker.log_tail()}")

    def stop_all(self) -> None:
        """Stop every worker started here: SIGTERM to all at once (a coder_ring worker
        gives its pools back), then wait for each; SIGKILL after :data:`STOP_GRACE`."""
        for worker in self.started:
            worker.kill(signal.SIGCONT)
            worker.kill(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for worker in self.started:
            try:
                worker.wait(max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                pass
            finally:
                worker.destroy()
