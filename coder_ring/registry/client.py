"""Redis clients of the registry, the metrics and the CLI: one place that says how long a
call may wait, so no site blocks for ever on a Redis that stopped answering, and how a
Redis behind Sentinel is followed through a failover."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from coder_ring.errors import ConfigError
from coder_ring.redis_urls import is_sentinel, parse_sentinel_url
from coder_ring.settings import SENTINEL_MASTER_ENV, WorkerSettings
from coder_ring.urls import redact_url


class SentinelRedis(redis.Redis):
    """A client of the primary its sentinels name (redis-py's ``master_for``): each new
    connection asks them where the primary is, so a failover needs no restart. Closing
    it also closes its connections to the sentinels."""

    sentinels: Sentinel

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.sentinels.close()


def redis_client(
    url: str,
    timeout: float | None = None,
    *,
    connect_timeout: float | None = None,
    master_name: str | None = None,
) -> redis.Redis:
    """A client on ``url``: each reply awaited at most ``timeout`` seconds (None: as long
    as it takes, for a pub/sub listener), a connection at most ``connect_timeout``
    (default: ``timeout``). Connects on first use, not here.

    A ``sentinel://`` URL (see :mod:`coder_ring.redis_urls`) gives a client of the
    primary named ``master_name``; a sentinel's reply is awaited as long as a connection.

    No call is retried (redis-py's default for ``Redis()`` is ten retries with a back-off,
    which would stretch one call well past a lease round): a caller that wants another
    try makes it, within its own time."""
    connect = timeout if connect_timeout is None else connect_timeout
    limits: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": connect,
        "retry": Retry(NoBackoff(), 0),
    }
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **limits)
    try:
        target = parse_sentinel_url(url)
    except ValueError as error:
        raise ConfigError(f"Redis URL {redact_url(url)!r} is invalid: {error}") from None
    if master_name is None:
        raise ConfigError(
            f"Redis URL {redact_url(url)!r} names sentinels but no primary's name was given "
            f"(set {SENTINEL_MASTER_ENV})"
        )
    asking = {**limits, "socket_timeout": connect if timeout is None else timeout}
    sentinel = Sentinel(target.sentinels, sentinel_kwargs=asking)
    client = sentinel.master_for(
        master_name,
        redis_class=SentinelRedis,
        db=target.db,
        username=target.username,
        password=target.password,
        **limits,
    )
    assert isinstance(client, SentinelRedis)  # redis_class
    client.sentinels = sentinel
    return client


def registry_client(
    settings: WorkerSettings, timeout: float | None = None, *, connect_timeout: float | None = None
) -> redis.Redis:
    """:func:`redis_client` on the Redis of the locks and the registry of ``settings``."""
    return redis_client(
        settings.redis_url,
        timeout,
        connect_timeout=connect_timeout,
        master_name=settings.sentinel_master,
    )
