"""The doorbell transport at kombu's level, on the test Redis: a consumer of many ring
queues gets every request exactly once, whoever rang for it; a name rung for a queue it
does not consume leaves the request for that queue's holder; a request nobody rang is
found by the sweep (:mod:`coder_ring.celery.doorbell`).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

from coder_ring.celery.app import create_app
from coder_ring.celery.doorbell import Channel, Transport
from coder_ring.celery.names import ring_queue
from coder_ring.registry.keys import doorbell_key, lock_key, namespace_pattern
from coder_ring.settings import WorkerSettings
from tests.harness.shared import REDIS_TEST_URL, require

pytestmark = pytest.mark.redis

MEMBER = "m1@host|1|ab"


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace of the test's own; its keys and queues are deleted afterwards."""
    name = f"bell{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except redis.RedisError as error:
        require("Redis", error)
    yield name
    patterns = (namespace_pattern(name), ring_queue(name, "*"), f"_kombu.binding.*{name}*")
    for pattern in patterns:
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)
    client.close()


def connection(namespace: str | None) -> Connection:
    options: dict[str, Any] = {"priority_steps": [0]}
    if namespace is not None:
        options["coder_ring_namespace"] = namespace
    return Connection(REDIS_TEST_URL, transport=Transport, transport_options=options)


def queues(namespace: str, rings: list[str]) -> list[Queue]:
    names = [ring_queue(namespace, ring) for ring in rings]
    return [Queue(name, Exchange(name, "direct"), routing_key=name) for name in names]


@contextmanager
def consuming(namespace: str, rings: list[str]) -> Iterator[tuple[Connection, list[str]]]:
    """A consumer of the rings' queues waiting on :data:`MEMBER`'s doorbell, and the
    bodies it received (acknowledged as they come)."""
    got: list[str] = []

    def on_message(body: Any, message: Any) -> None:
        got.append(body)
        message.ack()

    with connection(namespace) as conn:
        channel = conn.default_channel
        assert isinstance(channel, Channel)
        assert channel.use_doorbell(doorbell_key(namespace, MEMBER))
        with Consumer(channel, queues(namespace, rings), callbacks=[on_message]):
            yield conn, got


def drain(conn: Connection, got: list[str], until: int, seconds: float = 10.0) -> None:
    """Drain until ``until`` bodies arrived (or ``seconds`` without one)."""
    while len(got) < until:
        try:
            conn.drain_events(timeout=seconds)
        except TimeoutError:
            return


def publish(namespace: str, sends: list[tuple[str, str]], plain: bool = False) -> None:
    """Publish ``(ring, body)`` pairs: through the doorbell transport, or ``plain``
    kombu's (nobody's doorbell rings)."""
    conn = Connection(REDIS_TEST_URL) if plain else connection(namespace)
    with conn, Producer(conn.default_channel) as producer:
        for ring, body in sends:
            queue = queues(namespace, [ring])[0]
            producer.publish(body, exchange=queue.exchange, routing_key=queue.name, declare=[queue])


def test_every_request_once_over_many_queues(namespace: str) -> None:
    rings = [f"r{index:03d}" for index in range(200)]
    client = redis.Redis.from_url(REDIS_TEST_URL)
    for ring in rings[:150]:  # the other 50 have no holder: nobody's doorbell rings
        client.set(lock_key(namespace, ring), MEMBER)
    early = [(random.choice(rings), f"early{index}") for index in range(50)]
    publish(namespace, early)  # before anyone consumes
    with consuming(namespace, rings) as (conn, got):
        drain(conn, got, 50)
        sends = [(random.choice(rings[:150]), f"b{index}") for index in range(400)]
        publish(namespace, sends)
        drain(conn, got, 450)
    assert sorted(got) == sorted(body for _, body in early + sends)
    assert not any(client.llen(ring_queue(namespace, ring)) for ring in rings)
    client.close()


def test_a_name_rung_for_another_queue_leaves_its_request(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_TEST_URL)
    for ring in ("mine", "moved"):
        client.set(lock_key(namespace, ring), MEMBER)  # "moved" has gone elsewhere since
    with consuming(namespace, ["mine"]) as (conn, got):
        publish(namespace, [("moved", "theirs"), ("mine", "ours")])
        drain(conn, got, 2, seconds=2.0)
    assert got == ["ours"]
    assert client.llen(ring_queue(namespace, "moved")) == 1  # waits for its holder
    assert client.llen(doorbell_key(namespace, MEMBER)) == 0
    client.close()


def test_the_sweep_finds_requests_nobody_rang(namespace: str) -> None:
    rings = [f"s{index:02d}" for index in range(40)]
    with consuming(namespace, rings) as (conn, got):
        drain(conn, got, 1, seconds=1.0)  # the first look at every queue: all empty
        sends = [(ring, f"plain-{ring}") for ring in rings[::4]]
        publish(namespace, sends, plain=True)
        drain(conn, got, len(sends), seconds=1.5)
        assert got == []  # nobody rang, and the worker waits on its doorbell only
        channel = conn.default_channel
        assert isinstance(channel, Channel)
        channel.sweep_rings()  # a worker's event loop runs it four times a second
        drain(conn, got, len(sends))
    assert sorted(got) == sorted(body for _, body in sends)


def test_a_channel_without_a_namespace_is_kombus_own(namespace: str) -> None:
    with connection(None) as conn:
        channel = conn.default_channel
        assert isinstance(channel, Channel)
        assert not channel.use_doorbell(doorbell_key(namespace, MEMBER))


@pytest.mark.parametrize(
    ("broker", "by_name"),
    [
        ("redis://127.0.0.1:6379/3", True),
        ("sentinel://127.0.0.1:26379", True),
        # On AMQP an undeclared queue drops a message: Celery's declare stays.
        ("amqp://guest@127.0.0.1//", False),
    ],
)
def test_callers_skip_celerys_declare_only_on_coder_rings_transports(
    broker: str, by_name: bool
) -> None:
    master = "p" if broker.startswith("sentinel") else None
    settings = WorkerSettings(broker_url=broker, sentinel_master=master)
    app = create_app(settings)
    try:
        assert app.publishes_by_name is by_name
    finally:
        app.close()


def test_a_closed_channel_says_its_connection_was_lost(namespace: str) -> None:
    # Beat keeps its producer across a Redis outage. A publish on the channel closed by
    # the outage must fail as a connection error, which makes Celery reconnect and send
    # again; it raised AttributeError (no connection) and beat never sent again.
    with connection(namespace) as conn:
        channel = conn.channel()
        assert isinstance(channel, Channel)
        channel.close()
        with pytest.raises(redis.exceptions.ConnectionError, match="closed"):
            channel._put(ring_queue(namespace, "r"), {"body": "x"})
        assert not conn.default_channel.client.exists(ring_queue(namespace, "r"))
