"""Settings of the Celery layer, read explicitly from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from coder_ring.errors import ConfigError
from coder_ring.settings import Settings

DEFAULT_BROKER_URL = "redis://localhost:6379/0"


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a number of seconds > 0")
    return value


@dataclass(frozen=True)
class WorkerSettings:
    """Broker, result backend and lock settings, plus the engine's :class:`Settings`."""

    engine: Settings = field(default_factory=Settings)
    broker_url: str = DEFAULT_BROKER_URL
    result_backend: str = DEFAULT_BROKER_URL
    redis_url: str = DEFAULT_BROKER_URL
    #: Seconds a ring lock lives without renewal; a dead holder is replaced within 2x this.
    lock_ttl: float = 5.0
    #: Default expiry of ring requests: a request not started by then is never served.
    task_expires: float = 60.0
    #: Seconds after which the broker hands an unacknowledged request to another worker.
    visibility_timeout: float = 10.0
    #: How often beat tops up every ring's pool.
    refill_interval: float = 10.0

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
            lock_ttl=_positive_float(env, "CODER_RING_LOCK_TTL", 5.0),
            task_expires=_positive_float(env, "CODER_RING_TASK_EXPIRES", 60.0),
            visibility_timeout=_positive_float(env, "CODER_RING_VISIBILITY_TIMEOUT", 10.0),
            refill_interval=_positive_float(env, "CODER_RING_REFILL_INTERVAL", 10.0),
        )
