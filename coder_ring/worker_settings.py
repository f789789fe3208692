"""Settings of the Celery layer, read explicitly from the environment and passed in."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from coder_ring.errors import ConfigError
from coder_ring.registry.keys import DEFAULT_NAMESPACE, check_namespace
from coder_ring.settings import CONFIG_PATH_ENV, DATABASE_URL_ENV, Settings

DEFAULT_BROKER_URL = "redis://localhost:6379/0"
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a number of seconds > 0")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in _TRUE | _FALSE:
        raise ConfigError(f"{name}={env[name]!r} is invalid: expected true or false")
    return raw in _TRUE


def _port(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a TCP port from 1 to 65535")
    return int(raw)


@dataclass(frozen=True)
class WorkerSettings:
    """Broker, result backend, locks and registry settings, plus the engine's."""

    engine: Settings = field(default_factory=Settings)
    broker_url: str = DEFAULT_BROKER_URL
    result_backend: str = DEFAULT_BROKER_URL
    #: The Redis of the ring locks and the registry of workers.
    redis_url: str = DEFAULT_BROKER_URL
    #: Prefix of every queue and Redis key: deployments sharing a Redis stay apart.
    namespace: str = DEFAULT_NAMESPACE
    #: Seconds a ring lock (and a worker's membership) lives without renewal.
    lock_ttl: float = 5.0
    #: Default expiry of ring requests: a request not started by then is never served.
    task_expires: float = 60.0
    #: Seconds after which the broker hands an unacknowledged request to another worker.
    visibility_timeout: float = 10.0
    #: How often beat tops up every ring's pool.
    refill_interval: float = 10.0
    #: Send Celery task events (flower needs them; they cost throughput).
    task_events: bool = False
    #: Port of a worker's Prometheus metrics (None: not served).
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """Settings from the ``CODER_RING_*`` environment variables (see the README)."""
        env = os.environ if environ is None else environ
        broker = env.get("CODER_RING_BROKER_URL") or DEFAULT_BROKER_URL
        return cls(
            engine=Settings.from_env(env),
            broker_url=broker,
            result_backend=env.get("CODER_RING_RESULT_BACKEND") or broker,
            redis_url=env.get("CODER_RING_REDIS_URL") or broker,
            namespace=check_namespace(env.get("CODER_RING_NAMESPACE") or DEFAULT_NAMESPACE),
            lock_ttl=_positive_float(env, "CODER_RING_LOCK_TTL", 5.0),
            task_expires=_positive_float(env, "CODER_RING_TASK_EXPIRES", 60.0),
            visibility_timeout=_positive_float(env, "CODER_RING_VISIBILITY_TIMEOUT", 10.0),
            refill_interval=_positive_float(env, "CODER_RING_REFILL_INTERVAL", 10.0),
            task_events=_flag(env, "CODER_RING_TASK_EVENTS"),
            metrics_port=_port(env, "CODER_RING_METRICS_PORT"),
        )

    def to_env(self) -> dict[str, str]:
        """The ``CODER_RING_*`` variables that make :meth:`from_env` return these settings
        (for a worker, beat or caller process started with them)."""
        env = {
            DATABASE_URL_ENV: self.engine.database_url,
            CONFIG_PATH_ENV: str(self.engine.config_path),
            "CODER_RING_BROKER_URL": self.broker_url,
            "CODER_RING_RESULT_BACKEND": self.result_backend,
            "CODER_RING_REDIS_URL": self.redis_url,
            "CODER_RING_NAMESPACE": self.namespace,
            "CODER_RING_LOCK_TTL": repr(self.lock_ttl),
            "CODER_RING_TASK_EXPIRES": repr(self.task_expires),
            "CODER_RING_VISIBILITY_TIMEOUT": repr(self.visibility_timeout),
            "CODER_RING_REFILL_INTERVAL": repr(self.refill_interval),
            "CODER_RING_TASK_EVENTS": "true" if self.task_events else "false",
        }
        if self.metrics_port is not None:
            env["CODER_RING_METRICS_PORT"] = str(self.metrics_port)
        return env
