"""Redis clients of the registry, the metrics and the CLI: one place that says how long a
call may wait, so no site blocks for ever on a Redis that stopped answering."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def redis_client(
    url: str, timeout: float | None = None, *, connect_timeout: float | None = None
) -> redis.Redis:
    """A client on ``url``: each reply awaited at most ``timeout`` seconds (None: as long
    as it takes, for a pub/sub listener), a connection at most ``connect_timeout``
    (default: ``timeout``). Connects on first use, not here.

    No call is retried (redis-py's default for ``Redis()`` is ten retries with a back-off,
    which would stretch one call well past a lease round): a caller that wants another
    try makes it, within its own time."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout if connect_timeout is None else connect_timeout,
        retry=Retry(NoBackoff(), 0),
    )
