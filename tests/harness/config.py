"""Where things are and how a test configures workers: paths, commands, test timings, the
rings file, the ``CODER_RING_*`` environment and the settings and services read from it."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import redis

from coder_ring.config import RingConfig
from coder_ring.redis_urls import is_sentinel
from coder_ring.registry.client import registry_client
from coder_ring.service import RingService
from coder_ring.settings import DEFAULT_NAMESPACE, Settings, WorkerSettings
from coder_ring.sql.store import SqlStore

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CELERY = str(BIN / "celery")
#: ``coder-ring`` as a module of this interpreter (the console script's ``main``).
CODER_RING = [sys.executable, "-m", "coder_ring.celery.cli"]
HOSTNAME = socket.gethostname()

#: Short but robust timings for tests where a takeover matters.
TEST_LOCK_TTL = 2.0
TEST_VISIBILITY_TIMEOUT = 4.0


def write_rings(path: Path | str, **rings: Mapping[str, Any]) -> Path:
    """Write a rings file: ``write_rings(p, doodad={"base_length": 1, "pool_size": 8})``.

    A ring given as ``{}`` gets the defaults (base_length 4, pool_size 256).
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
    sentinel_master: str | None = None,
    **extra: str,
) -> dict[str, str]:
    """The ``CODER_RING_*`` variables of a worker (broker, results and locks share
    ``redis_url`` unless told otherwise), made by :meth:`WorkerSettings.to_env` (the one
    place settings become an environment). ``extra`` adds any other variable."""
    defaults = WorkerSettings()
    settings = WorkerSettings(
        engine=Settings(database_url=database_url, config_path=Path(rings_file)),
        broker_url=broker_url or redis_url,
        result_backend=result_backend or broker_url or redis_url,
        redis_url=redis_url,
        namespace=namespace,
        lock_ttl=lock_ttl,
        task_expires=defaults.task_expires if task_expires is None else task_expires,
        visibility_timeout=visibility_timeout,
        refill_interval=defaults.refill_interval if refill_interval is None else refill_interval,
        sentinel_master=sentinel_master,
    )
    return {**settings.to_env(), **extra}


def settings_from_env(env: Mapping[str, str]) -> WorkerSettings:
    """The :class:`WorkerSettings` a process started with ``env`` reads."""
    return WorkerSettings.from_env(env)


def locks_redis(env: Mapping[str, str]) -> redis.Redis:
    """A client of the tests on ``env``'s Redis of the locks and the registry: redis-py's
    defaults (its retries ride out a restart the test makes), or behind Sentinel the
    primary the sentinels name."""
    settings = settings_from_env(env)
    if is_sentinel(settings.redis_url):
        return registry_client(settings)
    return redis.Redis.from_url(settings.redis_url)


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


def private_port() -> int:
    """A free port for a private server: in ``CODER_RING_TEST_PORTS`` (``26500-26599``)
    when set (a machine shared by several suites), else any free one."""
    span = os.environ.get("CODER_RING_TEST_PORTS", "")
    if not span:
        return free_port()
    low, high = (int(part) for part in span.split("-"))
    for port in range(low, high + 1):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in CODER_RING_TEST_PORTS={span}")


def free_port() -> int:
    """A TCP port nobody listens on right now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
