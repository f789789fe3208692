"""What the cluster's Redis says: live members, queue lengths, lock holders, and
:class:`HolderWatch`, a thread counting how often rings change holder."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence

import redis

from coder_ring.celery.names import ring_queue
from coder_ring.registry.keys import lock_key
from coder_ring.registry.lease import as_text, holder_name
from coder_ring.registry.membership import MemberInfo, live_members
from coder_ring.settings import DEFAULT_NAMESPACE
from tests.harness.config import locks_redis, settings_from_env


def members(env: Mapping[str, str]) -> list[MemberInfo]:
    """The live workers of ``env``'s namespace, as the registry has them."""
    settings = settings_from_env(env)
    client = locks_redis(env)
    try:
        return live_members(client, settings.namespace)
    finally:
        client.close()


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
