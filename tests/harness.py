"""A harness for tests that run real coder_ring worker, beat and flower processes.

Typical use (see tests/system/test_workers.py)::

    rings = write_rings(tmp_path / "rings.toml", doodad={"base_length": 1, "pool_size": 8})
    env = worker_env(redis_url=redis_url, database_url=pg_url, rings_file=rings)
    with ProcessGroup(tmp_path) as group, caller_app(env) as app:
        first = group.worker("a", env, rings=["doodad"])
        first.wait_for_lock("doodad")
        code = app.ring_tasks.get_code.delay("doodad").get(timeout=10)
        first.kill(signal.SIGKILL)

Every process a :class:`ProcessGroup` started is gone when the ``with`` block ends,
whatever happened inside it (SIGCONT, then SIGKILL of its process group, then reaped).
Each process writes stdout and stderr to its own log file in the group's directory;
:meth:`ManagedProcess.log_text` reads it and a failing test's report shows the tail.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import redis

from coder_ring.config import RingConfig
from coder_ring.service import RingService
from coder_ring.settings import Settings
from coder_ring.sql.store import SqlStore
from workers.app import CoderRingApp, create_app
from workers.lease import as_text, holder_name
from workers.membership import MemberInfo, live_members
from workers.names import DEFAULT_NAMESPACE, lock_key, ring_queue
from workers.processes import Process
from workers.settings import WorkerSettings

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CELERY = str(BIN / "celery")
#: ``coder-ring`` as a module of this interpreter (the console script's ``main``).
CODER_RING = [sys.executable, "-m", "workers.cli"]
HOSTNAME = socket.gethostname()

#: Short but robust timings for tests where a takeover matters.
TEST_LOCK_TTL = 2.0
TEST_VISIBILITY_TIMEOUT = 4.0

T = TypeVar("T")
#: A worker's log line for a code (or codes) handed out: the result, as Python's repr.
SUCCEEDED = re.compile(r"Task coder_ring\.get_codes?\[[0-9a-f-]+\] succeeded in \S+: (.+)$", re.M)


# --------------------------------------------------------------------------------------
# Configuration


def write_rings(path: Path | str, **rings: Mapping[str, Any]) -> Path:
    """Write a rings file: ``write_rings(p, doodad={"base_length": 1, "pool_size": 8})``.

    A ring given as ``{}`` gets the defaults (base_length 4, pool_size 64).
    """
    path = Path(path)
    lines: list[str] = []
    for name, keys in rings.items():
        lines.append(f"[rings.{name}]")
        for key, value in keys.items():
            rendered = str(value).lower() if isinstance(value, bool) else repr(value)
            lines.append(f"{key} = {rendered}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def worker_env(
    *,
    redis_url: str,
    database_url: str,
    rings_file: Path | str,
    lock_ttl: float = TEST_LOCK_TTL,
    visibility_timeout: float = TEST_VISIBILITY_TIMEOUT,
    task_expires: float | None = None,
    refill_interval: float | None = None,
    broker_url: str | None = None,
    result_backend: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    **extra: str,
) -> dict[str, str]:
    """The ``CODER_RING_*`` variables of a worker (broker, results and locks share
    ``redis_url`` unless told otherwise). ``extra`` adds any other variable."""
    env = {
        "CODER_RING_NAMESPACE": namespace,
        "CODER_RING_BROKER_URL": broker_url or redis_url,
        "CODER_RING_RESULT_BACKEND": result_backend or broker_url or redis_url,
        "CODER_RING_REDIS_URL": redis_url,
        "CODER_RING_DATABASE_URL": database_url,
        "CODER_RING_CONFIG": str(rings_file),
        "CODER_RING_LOCK_TTL": str(lock_ttl),
        "CODER_RING_VISIBILITY_TIMEOUT": str(visibility_timeout),
    }
    if task_expires is not None:
        env["CODER_RING_TASK_EXPIRES"] = str(task_expires)
    if refill_interval is not None:
        env["CODER_RING_REFILL_INTERVAL"] = str(refill_interval)
    env.update(extra)
    return env


def settings_from_env(env: Mapping[str, str]) -> WorkerSettings:
    """The :class:`WorkerSettings` a process started with ``env`` reads."""
    return WorkerSettings.from_env(env)


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


def engine_settings(env: Mapping[str, str]) -> Settings:
    """The engine settings (database URL, rings file) of ``env``."""
    return Settings.from_env(env)


def service_for(
    env: Mapping[str, str], rings: Mapping[str, RingConfig] | None = None
) -> RingService:
    """A :class:`RingService` on ``env``'s database, serving ``rings`` (default: the rings
    file of ``env``); close it when done."""
    settings = engine_settings(env)
    if rings is None:
        return RingService.from_settings(settings)
    return RingService(SqlStore(settings.database_url), rings)


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


def members(env: Mapping[str, str]) -> list[MemberInfo]:
    """The live workers of ``env``'s namespace, as the registry has them."""
    settings = settings_from_env(env)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return live_members(client, settings.namespace)
    finally:
        client.close()


def assert_distinct(codes: Sequence[str]) -> None:
    """No code appears twice in ``codes`` (the duplicates are named if one does)."""
    twice = sorted(code for code, times in Counter(codes).items() if times > 1)
    assert not twice, f"codes issued twice: {twice}"


def free_port() -> int:
    """A TCP port nobody listens on right now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


# --------------------------------------------------------------------------------------
# Processes


class ManagedProcess(Process):
    """A :class:`workers.processes.Process` (own process group, own log file) that tests
    can also wait on: :meth:`wait_for_log`."""

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
        """A client on the locks' Redis."""
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.env["CODER_RING_REDIS_URL"])
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


# --------------------------------------------------------------------------------------
# Broker inspection


def queue_length(redis_url: str, ring: str, namespace: str = DEFAULT_NAMESPACE) -> int:
    """Messages waiting in ``ring``'s queue (Redis transport: a list, plus the priority
    sub-lists kombu may use)."""
    client = redis.Redis.from_url(redis_url)
    queue = ring_queue(namespace, ring)
    try:
        names = [queue] + [
            as_text(key)
            for key in client.keys(f"{queue}\x06\x16*")  # kombu priority lists
        ]
        return sum(int(client.llen(name)) for name in names)
    finally:
        client.close()


def lock_holder(redis_url: str, ring: str, namespace: str = DEFAULT_NAMESPACE) -> str | None:
    """The node name of ``ring``'s lock holder, if any."""
    client = redis.Redis.from_url(redis_url)
    try:
        return holder_name(client.get(lock_key(namespace, ring)))
    finally:
        client.close()


# --------------------------------------------------------------------------------------
# Many rings over many workers (tests/system/test_registry.py)

import threading  # noqa: E402 - kept with the helpers that need it


def lock_holders(
    client: redis.Redis, rings: Sequence[str], namespace: str = DEFAULT_NAMESPACE
) -> dict[str, str | None]:
    """ring -> member id (``node|pid|random``) holding its lock, None when free; one MGET."""
    values = client.mget([lock_key(namespace, ring) for ring in rings])
    return {
        ring: None if value is None else as_text(value)
        for ring, value in zip(rings, values, strict=True)
    }


class HolderWatch:
    """A daemon thread reading the lock holders of ``rings`` every ``interval`` seconds, to
    count moves: a move is a ring whose holder (ignoring moments with none) changed.

    ``mark()`` then ``moves_since(mark)``; ``latest`` is the last reading (None while Redis
    does not answer). Use as a context manager (the thread stops at the end).
    """

    def __init__(
        self,
        redis_url: str,
        rings: Sequence[str],
        namespace: str = DEFAULT_NAMESPACE,
        interval: float = 0.05,
    ) -> None:
        self.rings = list(rings)
        self.namespace = namespace
        self.interval = interval
        self.client = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
        #: ring -> the distinct holders it had, in order.
        self.history: dict[str, list[str]] = {ring: [] for ring in self.rings}
        self.latest: dict[str, str | None] | None = None
        self._mutex = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="holder-watch", daemon=True)

    def __enter__(self) -> HolderWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(5)
        self.client.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                holders: dict[str, str | None] | None = lock_holders(
                    self.client, self.rings, self.namespace
                )
            except redis.RedisError:
                holders = None
            with self._mutex:
                self.latest = holders
                for ring, holder in (holders or {}).items():
                    seen = self.history[ring]
                    if holder is not None and (not seen or seen[-1] != holder):
                        seen.append(holder)
            self._stopping.wait(self.interval)

    def mark(self) -> dict[str, int]:
        """Where each ring's history stands now."""
        with self._mutex:
            return {ring: len(seen) for ring, seen in self.history.items()}

    def moves_since(self, mark: Mapping[str, int]) -> int:
        """Holder changes since ``mark`` (a ring's first holder ever is not a move)."""
        with self._mutex:
            return sum(
                len(seen) - max(1, mark[ring]) for ring, seen in self.history.items() if seen
            )

    def loads(self) -> Counter[str] | None:
        """Rings held per member id in the last reading (None: no reading)."""
        with self._mutex:
            latest = self.latest
        if latest is None:
            return None
        return Counter(holder for holder in latest.values() if holder is not None)
