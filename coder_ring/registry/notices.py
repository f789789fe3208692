"""Change notices between coder_ring processes, on a Redis pub/sub channel.

A notice only makes a worker look sooner: every worker also checks on its own each
lease round, so a lost notice (Redis down, a worker not subscribed yet) delays an
effect by one round at most and changes nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import redis
from redis.client import PubSub

from coder_ring.registry.keys import notices_channel

log = logging.getLogger("coder_ring.worker")

#: A ring was reset or rebuilt from outside its holder: the holder checks its epoch now.
CHANGED = "changed"
#: A ring's lock was released: the member it is assigned to takes it now.
RELEASED = "released"
#: The coordinator wrote a new assignment: members follow it now.
ASSIGNED = "assigned"


def publish(client: redis.Redis, namespace: str, kind: str, ring: str = "") -> None:
    """Send a notice; a Redis error is ignored (the workers notice by themselves)."""
    with contextlib.suppress(redis.RedisError):
        client.publish(notices_channel(namespace), f"{kind} {ring}")


class NoticeListener:
    """A daemon thread calling ``on_notice(kind, ring)`` for every notice received."""

    def __init__(
        self, client: redis.Redis, namespace: str, on_notice: Callable[[str, str], None]
    ) -> None:
        self.client = client
        self.channel = notices_channel(namespace)
        self.on_notice = on_notice
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ring-notices", daemon=True)

    def start(self) -> None:
        """Start listening."""
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: returns at once; the thread ends within about a second."""
        self._stopping.set()

    def join(self) -> None:
        """Wait for the thread to end (after :meth:`stop`)."""
        if self._thread.is_alive():
            self._thread.join(timeout=3)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                # redis-py annotates Redis.pubsub from 8.2 on only: called through a
                # typed reference, it type-checks on every version in our range (an
                # ignore would be needed by one and unused, an error, on another).
                open_pubsub: Callable[..., PubSub] = self.client.pubsub
                pubsub = open_pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                try:
                    while not self._stopping.is_set():
                        message = pubsub.get_message(timeout=1.0)
                        if message is not None:
                            kind, _, ring = message["data"].decode().partition(" ")
                            self.on_notice(kind, ring)
                finally:
                    pubsub.close()
            except redis.RedisError as error:
                log.debug("notices: %s; listening again in 1 s", error)
                self._stopping.wait(1.0)
