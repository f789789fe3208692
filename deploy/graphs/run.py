"""One run: a private Redis, an SQLite rings database, two workers as shipped
(``coder-ring worker --all``, each serving metrics), ``coder-ring metrics`` and Debian's
``prometheus`` scraping them; callers at a steady rate per ring while one worker leaves
and comes back (its rings move) and then the holder of ``ticket`` is SIGKILLed (a
failover); then a screenshot of each panel. Every process started is stopped and the
run's directory removed at the end, whatever happens."""

from __future__ import annotations

import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from coder_ring.celery.app import create_app
from coder_ring.celery.demo.local_redis import LocalRedis, free_port
from coder_ring.celery.demo.processes import Process
from coder_ring.registry.client import redis_client
from coder_ring.registry.lease import current_holder
from coder_ring.service import RingService
from coder_ring.settings import Settings, WorkerSettings
from deploy.graphs.panels import PANELS, chromium, graph_url, prometheus_config, screenshot

#: The rings: one small enough to fill visibly in a few minutes (1,024 codes a cycle).
RINGS = """\
[rings.voucher]
base_length = 2
pool_size = 16

[rings.ticket]
base_length = 3
pool_size = 64

[rings.badge]
"""
#: get_code calls per second on each ring.
RATES = {"voucher": 3.0, "ticket": 20.0, "badge": 10.0}
#: The ring whose holder is SIGKILLed.
FAILOVER_RING = "ticket"
#: When, as a share of the load's time, a worker leaves, comes back, and a holder dies.
LEAVE, JOIN, KILL = 0.3, 0.5, 0.75
WORKERS = ("worker-a", "worker-b")
READY_TIMEOUT = 60.0
Log = Callable[[str], None]


@dataclass
class Calls:
    """What the callers got: codes by ring, and failures by kind."""

    codes: dict[str, list[str]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)

    def repeated(self) -> int:
        """Codes a ring handed out more than once (0 unless something is wrong)."""
        return sum(n - 1 for codes in self.codes.values() for n in Counter(codes).values())


@dataclass(frozen=True)
class Plan:
    """How long the load runs (rounded up to the end of a minute: the graph page's end
    is a whole minute), how often Prometheus scrapes, and the run's TCP ports on
    127.0.0.1: consecutive from ``first_port``, else free ones."""

    seconds: float = 240.0
    interval: float = 2.0
    first_port: int | None = None

    def port(self, offset: int) -> int:
        return free_port() if self.first_port is None else self.first_port + offset


class GraphsRun:
    """Start everything in ``workdir``, run the load as ``plan`` says, take the
    screenshots into ``output``."""

    def __init__(self, workdir: Path, output: Path, plan: Plan, log: Log) -> None:
        self.workdir, self.output, self.log = workdir, output, log
        self.seconds, self.interval = plan.seconds, plan.interval
        self.ports = {
            name: plan.port(i) for i, name in enumerate(["prometheus", "metrics", *WORKERS])
        }
        self.redis = LocalRedis(port=plan.port(len(self.ports)))
        self.workers: dict[str, Process] = {}
        self.calls = Calls()
        self.events: list[tuple[datetime, str]] = []
        self.stack = ExitStack()

    def run(self) -> list[Path]:
        """The whole run; the screenshots' paths."""
        browser = chromium()  # missing tools fail now, not after minutes of load
        prometheus_binary = shutil.which("prometheus")
        if prometheus_binary is None:
            raise FileNotFoundError("no prometheus on PATH: apt-get install prometheus")
        with self.stack:
            self.stack.callback(self.redis.close)
            self.redis.start()
            settings = self._settings()
            self._start(prometheus_binary, settings)
            end = self._load(settings)
            time.sleep(2 * self.interval)  # the last scrape of every target is in
            minutes = int((end - self.events[0][0]).total_seconds() // 60) + 1
            base = f"http://127.0.0.1:{self.ports['prometheus']}"
            self.output.mkdir(parents=True, exist_ok=True)
            paths = []
            for panel in PANELS:
                path = self.output / f"graph-{panel.name}.png"
                screenshot(graph_url(base, panel, end, minutes), path, browser)
                paths.append(path)
                self.log(f"wrote {path}")
        return paths

    def _settings(self) -> WorkerSettings:
        rings = self.workdir / "rings.toml"
        rings.write_text(RINGS, encoding="utf-8")
        engine = Settings(f"sqlite:///{self.workdir / 'rings.db'}", rings)
        service = RingService.from_settings(engine)
        try:  # as compose's migrate service does
            service.migrate()
            service.populate()
        finally:
            service.close()
        url = self.redis.url
        return WorkerSettings(engine, url, url, url, namespace="graphs")

    def _process(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        process = Process(name, argv, env, self.workdir / f"{name}.log", self.workdir)
        self.stack.callback(process.stop)
        return process.start()

    def _worker(self, name: str, settings: WorkerSettings) -> Process:
        argv = [sys.executable, "-m", "coder_ring.celery.cli", "worker", "--all"]
        env = {**settings.to_env(), "CODER_RING_METRICS_PORT": str(self.ports[name])}
        self.workers[name] = worker = self._process(name, [*argv, "--hostname", f"{name}@%h"], env)
        return worker

    def _start(self, prometheus: str, settings: WorkerSettings) -> None:
        for name in WORKERS:
            self._worker(name, settings)
        cli = [sys.executable, "-m", "coder_ring.celery.cli", "metrics"]
        cli += ["--host", "127.0.0.1", "--port", str(self.ports["metrics"])]
        self._process("metrics", cli, settings.to_env())
        config = self.workdir / "prometheus.yml"
        targets = [f"127.0.0.1:{self.ports[name]}" for name in WORKERS]
        config.write_text(
            prometheus_config(self.interval, f"127.0.0.1:{self.ports['metrics']}", targets)
        )
        self._process("prometheus", [
            prometheus, f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
        ], {})  # fmt: skip
        self._until(lambda: self._answers(f"http://127.0.0.1:{self.ports['prometheus']}/-/ready"))
        client, namespace = redis_client(settings.redis_url, 2.0), settings.namespace
        try:
            self._until(lambda: all(current_holder(client, namespace, r) for r in RATES))
        finally:
            client.close()
        self.log(f"Prometheus on 127.0.0.1:{self.ports['prometheus']}; every ring held")

    def _until(self, ready: Callable[[], object]) -> None:
        """Wait at start-up for ``ready()`` (RuntimeError if a worker exits meanwhile)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready():
            for process in self.workers.values():
                if not process.alive():
                    raise RuntimeError(f"{process.name} exited\n{process.log_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready in {READY_TIMEOUT:g} s")
            time.sleep(0.1)

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _event(self, what: str) -> None:
        self.events.append((datetime.now(UTC), what))
        self.log(what)

    def _load(self, settings: WorkerSettings) -> datetime:
        """Callers on every ring, a leave, a join and a SIGKILL; the (UTC) minute it ended."""
        stop = threading.Event()
        app = create_app(settings)
        timeout = settings.visibility_timeout + 3  # as the web examples wait (README)
        self._event("load starts")
        started, start_clock = time.monotonic(), self.events[0][0]
        end = (start_clock + timedelta(seconds=self.seconds + 59)).replace(second=0, microsecond=0)
        length = (end - start_clock).total_seconds()

        def call(ring: str) -> None:
            try:
                code = app.ring_tasks.get_code.delay(ring).get(timeout=timeout)
                self.calls.codes.setdefault(ring, []).append(code)
            except Exception as error:  # noqa: BLE001 - counted and reported by kind
                self.calls.errors[f"{type(error).__name__} ({ring})"] += 1

        def pace(ring: str, rate: float) -> None:
            due = time.monotonic()
            while not stop.is_set():
                pool.submit(call, ring)
                due += 1 / rate
                stop.wait(max(0.0, due - time.monotonic()))

        with ThreadPoolExecutor(64) as pool:
            pacers = [threading.Thread(target=pace, args=item) for item in RATES.items()]
            for pacer in pacers:
                pacer.start()
            try:
                self._moves(settings, started, length)
                time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
            finally:
                stop.set()
                for pacer in pacers:
                    pacer.join()
        # The app stays open: a timed-out call's result still waits in it, and cleans up
        # through the app's connections when the process ends.
        self._event("load ends")
        return end

    def _moves(self, settings: WorkerSettings, started: float, length: float) -> None:
        def at(share: float) -> None:
            time.sleep(max(0.0, started + share * length - time.monotonic()))

        at(LEAVE)
        self._event(f"{WORKERS[1]} leaves (SIGTERM: its rings handed off)")
        self.workers[WORKERS[1]].stop(timeout=30)
        at(JOIN)
        self._event(f"{WORKERS[1]} joins again")
        self._worker(WORKERS[1], settings)
        at(KILL)
        client = redis_client(settings.redis_url, 2.0)
        try:
            holder = current_holder(client, settings.namespace, FAILOVER_RING)
        finally:
            client.close()
        victim = next(name for name in WORKERS if holder and holder.startswith(f"{name}@"))
        self._event(f"{victim} killed (SIGKILL, it held {FAILOVER_RING})")
        self.workers[victim].kill(signal.SIGKILL)


def run_graphs(output: Path, plan: Plan, log: Log) -> tuple[list[Path], GraphsRun]:
    """One run in a temporary directory; the screenshots and the run (events, calls)."""
    with TemporaryDirectory(prefix="coder-ring-graphs-") as tmp:
        run = GraphsRun(Path(tmp), output, plan, log)
        return run.run(), run
