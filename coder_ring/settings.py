"""The settings of every coder_ring process, read explicitly from the environment and
passed in. Nothing here connects to anything: building settings only reads values.

Each ``CODER_RING_*`` variable is one row of :data:`ENGINE_VARIABLES` or
:data:`WORKER_VARIABLES`: the field it sets and how its text is read and written back.
``from_env`` and ``to_env`` walk those rows, so a new setting is a field plus a row.
An unset or blank variable leaves the field's default (or, with ``fallback``, the value
another variable gave).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coder_ring.config import RingConfig, load_rings
from coder_ring.errors import ConfigError
from coder_ring.redis_urls import is_sentinel, parse_sentinel_url
from coder_ring.urls import redact_url

DATABASE_URL_ENV = "CODER_RING_DATABASE_URL"
CONFIG_PATH_ENV = "CODER_RING_CONFIG"
DEFAULT_DATABASE_URL = "sqlite:///coder_ring.db"
DEFAULT_CONFIG_PATH = "config/rings.toml"
DEFAULT_BROKER_URL = "redis://localhost:6379/0"
DEFAULT_NAMESPACE = "default"
NAMESPACE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
SENTINEL_MASTER_ENV = "CODER_RING_SENTINEL_MASTER"
#: Sentinel's name of a primary (``sentinel monitor NAME ...``): one word, no spaces.
MASTER_NAME_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:  # also refuses nan
        raise ConfigError(f"{name}={raw!r} is invalid: expected a number of seconds > 0")
    return value


def _flag(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word not in _TRUE | _FALSE:
        raise ConfigError(f"{name}={raw!r} is invalid: expected true or false")
    return word in _TRUE


def _port(name: str, raw: str) -> int:
    text = raw.strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"{name}={raw!r} is invalid: expected a TCP port from 1 to 65535")
    return int(text)


def _namespace(name: str, raw: str) -> str:
    if not NAMESPACE_PATTERN.fullmatch(raw):
        raise ConfigError(
            f"{name}={raw!r} is invalid: use 1 to 32 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return raw


@dataclass(frozen=True)
class Kind:
    """How a variable's text becomes a field's value (ConfigError naming the variable
    when it cannot) and back."""

    parse: Callable[[str, str], object]
    show: Callable[[Any], str] = str


TEXT = Kind(lambda name, raw: raw)
PATH = Kind(lambda name, raw: Path(raw))
SECONDS = Kind(_seconds, repr)
FLAG = Kind(_flag, lambda value: "true" if value else "false")
PORT = Kind(_port)
NAMESPACE = Kind(_namespace)


@dataclass(frozen=True)
class Variable:
    """One ``CODER_RING_*`` variable: the field it sets and its kind."""

    name: str
    field: str
    kind: Kind = TEXT
    #: A field set before this one whose value this one takes when unset.
    fallback: str | None = None


ENGINE_VARIABLES = (
    Variable(DATABASE_URL_ENV, "database_url"),
    Variable(CONFIG_PATH_ENV, "config_path", PATH),
)
WORKER_VARIABLES = (
    Variable("CODER_RING_BROKER_URL", "broker_url"),
    Variable("CODER_RING_RESULT_BACKEND", "result_backend", fallback="broker_url"),
    Variable("CODER_RING_REDIS_URL", "redis_url", fallback="broker_url"),
    Variable(SENTINEL_MASTER_ENV, "sentinel_master"),
    Variable("CODER_RING_NAMESPACE", "namespace", NAMESPACE),
    Variable("CODER_RING_LOCK_TTL", "lock_ttl", SECONDS),
    Variable("CODER_RING_TASK_EXPIRES", "task_expires", SECONDS),
    Variable("CODER_RING_VISIBILITY_TIMEOUT", "visibility_timeout", SECONDS),
    Variable("CODER_RING_REFILL_INTERVAL", "refill_interval", SECONDS),
    Variable("CODER_RING_TASK_EVENTS", "task_events", FLAG),
    Variable("CODER_RING_METRICS_PORT", "metrics_port", PORT),
    Variable("CODER_RING_LOG_INTERVAL", "log_interval", SECONDS),
)


def read_variables(
    variables: tuple[Variable, ...], environ: Mapping[str, str] | None
) -> dict[str, Any]:
    """Field -> value for every variable of ``variables`` set in ``environ`` (default:
    the process's environment)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for variable in variables:
        raw = env.get(variable.name, "")
        if raw.strip():
            values[variable.field] = variable.kind.parse(variable.name, raw)
        elif variable.fallback in values:
            values[variable.field] = values[variable.fallback]
    return values


def write_variables(settings: object, variables: tuple[Variable, ...]) -> dict[str, str]:
    """The variables that give ``settings`` back (a field that is None is left unset)."""
    env = {}
    for variable in variables:
        value = getattr(settings, variable.field)
        if value is not None:
            env[variable.name] = variable.kind.show(value)
    return env


@dataclass(frozen=True)
class Settings:
    """Where the rings live (``database_url``) and where they are defined (``config_path``)."""

    database_url: str = DEFAULT_DATABASE_URL
    config_path: Path = Path(DEFAULT_CONFIG_PATH)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``CODER_RING_DATABASE_URL`` and ``CODER_RING_CONFIG``."""
        return cls(**read_variables(ENGINE_VARIABLES, environ))

    def to_env(self) -> dict[str, str]:
        """The variables that make :meth:`from_env` return these settings."""
        return write_variables(self, ENGINE_VARIABLES)

    def load_rings(self) -> dict[str, RingConfig]:
        """The ring definitions of :attr:`config_path`."""
        return load_rings(self.config_path)


@dataclass(frozen=True)
class WorkerSettings:
    """Broker, result backend, locks and registry settings, plus the engine's: what a
    worker, beat and a Celery caller read."""

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
    #: A worker logs a caller's refused request once per ring and kind per this many seconds.
    log_interval: float = 60.0
    #: Sentinel's name of the primary, for every URL of the form ``sentinel://`` (one
    #: Redis service behind one set of sentinels).
    sentinel_master: str | None = None

    def __post_init__(self) -> None:
        check_redis_urls(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        """Settings from the ``CODER_RING_*`` environment variables (see the README)."""
        engine = Settings.from_env(environ)
        return cls(engine=engine, **read_variables(WORKER_VARIABLES, environ))

    def to_env(self) -> dict[str, str]:
        """The ``CODER_RING_*`` variables that make :meth:`from_env` return these settings
        (for a worker, beat or caller process started with them)."""
        return {**self.engine.to_env(), **write_variables(self, WORKER_VARIABLES)}


#: The settings that hold a Redis URL, by the variable that sets each.
REDIS_URL_VARIABLES = tuple(
    variable
    for variable in WORKER_VARIABLES
    if variable.field in {"broker_url", "result_backend", "redis_url"}
)


def check_redis_urls(settings: WorkerSettings) -> None:
    """Every ``sentinel://`` URL of ``settings`` well formed, with a primary's name to ask
    its sentinels for, and no primary's name without such a URL (ConfigError naming the
    variable, its value without the password, and the form allowed)."""
    master = settings.sentinel_master
    if master is not None and not MASTER_NAME_PATTERN.fullmatch(master):
        raise ConfigError(
            f"{SENTINEL_MASTER_ENV}={master!r} is invalid: expected the primary's name as "
            "the sentinels know it (sentinel monitor NAME ...): 1 to 64 letters, digits, "
            "'.', '_', ':' or '-'"
        )
    sentinel_urls = []
    for variable in REDIS_URL_VARIABLES:
        url: str = getattr(settings, variable.field)
        if not is_sentinel(url):
            continue
        sentinel_urls.append(variable.name)
        try:
            parse_sentinel_url(url)
        except ValueError as error:
            raise ConfigError(f"{variable.name}={redact_url(url)!r} is invalid: {error}") from None
    if sentinel_urls and master is None:
        raise ConfigError(
            f"{', '.join(sentinel_urls)} name sentinels (sentinel://) but "
            f"{SENTINEL_MASTER_ENV} is not set: set it to the primary's name the sentinels "
            "monitor (sentinel monitor NAME ...)"
        )
    if master is not None and not sentinel_urls:
        raise ConfigError(
            f"{SENTINEL_MASTER_ENV}={master!r} is set but no Redis URL names sentinels: use "
            "sentinel://HOST:PORT;sentinel://HOST2:PORT URLs for CODER_RING_BROKER_URL, "
            f"CODER_RING_RESULT_BACKEND or CODER_RING_REDIS_URL, or unset {SENTINEL_MASTER_ENV}"
        )
