"""Red team 5: the doorbell transport (:mod:`coder_ring.celery.doorbell`) at kombu's level,
on a private Redis (no worker process): what a consumer of ring queues does when Redis
refuses the sweep for a moment, and what it asks Redis per request.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

from coder_ring.celery.doorbell import Channel, Transport
from coder_ring.celery.names import ring_queue
from coder_ring.registry.keys import doorbell_key, lock_key
from tests.servers import PrivateRedis, keep_busy, private_redis

pytestmark = pytest.mark.redis

MEMBER = "m1@host|1|ab"


@pytest.fixture
def server() -> Iterator[PrivateRedis]:
    with private_redis() as started:
        yield started


def connection(url: str, namespace: str | None, doorbell: bool = True) -> Connection:
    options: dict[str, Any] = {"priority_steps": [0]}
    if namespace is not None:
        options["coder_ring_namespace"] = namespace
    transport = Transport if doorbell else "redis"
    return Connection(url, transport=transport, transport_options=options)


def queue_of(namespace: str, ring: str) -> Queue:
    name = ring_queue(namespace, ring)
    return Queue(name, Exchange(name, "direct"), routing_key=name)


@contextmanager
def consuming(
    url: str, namespace: str, rings: list[str], doorbell: bool = True
) -> Iterator[tuple[Connection, Any, list[str]]]:
    got: list[str] = []

    def on_message(body: Any, message: Any) -> None:
        got.append(body)
        message.ack()

    with connection(url, namespace, doorbell) as conn:
        channel = conn.default_channel
        if doorbell:
            assert isinstance(channel, Channel)
            assert channel.use_doorbell(doorbell_key(namespace, MEMBER))
        with Consumer(
            channel, [queue_of(namespace, ring) for ring in rings], callbacks=[on_message]
        ):
            yield conn, channel, got


def drain(conn: Connection, got: list[str], until: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while len(got) < until and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.05)


def test_a_sweep_refused_for_a_moment_does_not_break_the_wait_in_flight(
    server: PrivateRedis,
) -> None:
    """A sweep refused while Redis answers -BUSY (a script of anyone's ran past
    busy-reply-threshold, 5 s by default) gives the doorbell up *while its BRPOP is in
    flight*: the doorbell's next name is then read as a message of a queue named like the
    doorbell, and json.loads(name) raises out of the event loop (in a worker: "Unrecoverable
    error", the worker stops). Expected: the request rung meanwhile is delivered."""
    namespace = f"rt5{uuid.uuid4().hex[:6]}"
    admin = server.client()
    admin.set(lock_key(namespace, "mine"), MEMBER)
    admin.config_set("busy-reply-threshold", 50)  # ms: -BUSY soon (5 s by default)
    with consuming(server.url, namespace, ["mine", "idle"]) as (conn, channel, got):
        channel.brpop_timeout = 10  # the BRPOP in flight outlives the busy script
        drain(conn, got, 1, seconds=0.5)  # first looks (pop script): both queues empty
        assert channel._in_poll and not channel._popping, "a BRPOP on the doorbell waits"
        busy = threading.Thread(target=lambda: keep_busy(server.url, 600_000))
        busy.start()
        time.sleep(0.2)  # the script runs, past the threshold
        channel.sweep_rings()  # the event loop's sweep: -BUSY
        busy.join()
        with connection(server.url, namespace) as publisher:
            Producer(publisher.default_channel).publish(
                "after-busy",
                exchange=queue_of(namespace, "mine").exchange,
                routing_key=queue_of(namespace, "mine").name,
            )
        drain(conn, got, 1, seconds=3.0)  # raises json.JSONDecodeError today
    assert got == ["after-busy"]
    admin.close()


def waits_sent(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {
        name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("brpop", "evalsha")
    }


def serial_requests(url: str, namespace: str, doorbell: bool, requests: int) -> float:
    """Commands a consumer of one ring's queue sends to wait for and take ``requests``
    requests sent one at a time (each served before the next is sent, as by a caller
    waiting on its result), per request."""
    admin = redis.Redis.from_url(url)
    admin.set(lock_key(namespace, "solo"), MEMBER)
    queue = queue_of(namespace, "solo")
    with (
        consuming(url, namespace, ["solo"], doorbell) as (conn, _channel, got),
        connection(url, namespace, doorbell) as publisher,
    ):
        producer = Producer(publisher.default_channel)
        drain(conn, got, 1, seconds=0.3)  # settled: a BRPOP waits
        before = waits_sent(admin)
        for index in range(requests):
            producer.publish(f"r{index}", exchange=queue.exchange, routing_key=queue.name)
            drain(conn, got, index + 1, seconds=5.0)
            drain(conn, got, index + 2, seconds=0.05)  # idle again (nothing more comes)
        after = waits_sent(admin)
    assert got == [f"r{index}" for index in range(requests)]
    admin.close()
    published = requests if doorbell else 0  # the callers' publish script is an EVALSHA
    sent = after["brpop"] - before["brpop"] + after["evalsha"] - before["evalsha"] - published
    return sent / requests


@pytest.mark.slow  # about 7 s: `make test` runs it, `make test-fast` (under a minute) not
def test_a_request_sent_alone_costs_one_wait_and_one_pop(server: PrivateRedis) -> None:
    """kombu's transport takes a request sent alone with the BRPOP already waiting, then
    waits again: one command a request. The doorbell's BRPOP also takes it at once (the
    ring's queue is among the recent ones, and Redis serves the key pushed first), but the
    name the caller pushed to the doorbell stays. Found by red team 5: the next BRPOP
    returned it at once, the pop script then found the queue empty, and only the BRPOP
    after that waited -- three commands a request. Now the queue served is marked rung, so
    one pop takes the name (and any other) and finds the queue empty: two, the second
    after the request was served."""
    kombus = serial_requests(server.url, f"rt5k{uuid.uuid4().hex[:6]}", False, 40)
    ours = serial_requests(server.url, f"rt5d{uuid.uuid4().hex[:6]}", True, 40)
    assert ours <= kombus + 1.2, f"doorbell: {ours:.2f} commands a request; kombu: {kombus:.2f}"


def test_a_moment_of_busy_redis_does_not_give_the_doorbell_up_for_good(
    server: PrivateRedis,
) -> None:
    """Any ResponseError of the sweep (or of the pop script) gives the doorbell up until
    the consumer reconnects, "give the Redis user the README's ACL rules" -- also a -BUSY
    of a few hundred milliseconds, which refuses every command alike and passes. From then
    on every BRPOP names every ring queue again (what issue 19 removed), for the life of
    the connection. Expected: after the busy moment, the waits name the doorbell and a few
    queues again."""
    from tests.system.test_doorbell import commands_sent  # MONITOR, as a list of words

    namespace = f"rt5b{uuid.uuid4().hex[:6]}"
    rings = [f"b{index:03d}" for index in range(300)]
    admin = server.client()
    for ring in rings:
        admin.set(lock_key(namespace, ring), MEMBER)
    admin.config_set("busy-reply-threshold", 50)
    with consuming(server.url, namespace, rings) as (conn, channel, got):
        drain(conn, got, 1, seconds=0.5)  # first looks: all empty
        busy = threading.Thread(target=lambda: keep_busy(server.url, 600_000))
        busy.start()
        time.sleep(0.2)
        channel.sweep_rings()  # the event loop's sweep, four times a second
        busy.join()
        drain(conn, got, 1, seconds=1.5)  # the wait in flight ends (its timeout)
        for _ in range(4):  # Redis answers again: sweeps run on
            channel.sweep_rings()
        with commands_sent(server.url) as sent, connection(server.url, namespace) as publisher:
            producer = Producer(publisher.default_channel)
            for index, ring in enumerate(rings[:5]):
                queue = queue_of(namespace, ring)
                producer.publish(f"q{index}", exchange=queue.exchange, routing_key=queue.name)
                drain(conn, got, index + 1, seconds=3.0)
        waits = [words for words in sent if words[0] == "BRPOP"]
        assert channel.doorbell is not None, "a busy moment gave the doorbell up"
    assert sorted(got) == [f"q{index}" for index in range(5)]
    longest = max((len(words) for words in waits), default=0)
    assert longest <= 1 + 2 + 8 + 1, f"a BRPOP named {longest - 2} keys after a busy moment"
    admin.close()


@pytest.fixture
def old_rules_server() -> Iterator[tuple[Any, str]]:
    """A Redis whose user ``coder`` has the README's ACL rules of 0.2.0 (no ``+rpop``):
    the CHANGELOG's upgrade note says its workers "wait on every ring queue, as 0.2.0
    did". Yields the server and the namespace."""
    from tests.harness.acl_redis import AclRedis, namespace_rules

    namespace = f"rt5a{uuid.uuid4().hex[:6]}"
    rules = namespace_rules(namespace).replace("+rpop ", "")
    acl = AclRedis({"coder": rules})
    try:
        acl.start()
        yield acl, namespace
    finally:
        acl.close()


def test_after_giving_the_doorbell_up_every_queue_is_waited_on(
    old_rules_server: tuple[Any, str],
) -> None:
    """Once the doorbell is given up, kombu's round robin decides which queues BRPOP names:
    ``_update_queue_cycle`` runs inside kombu's basic_consume/_basic_cancel, *before*
    ``_Doorbell`` clears its cached ``active_queues``, so the cycle gets the list of before
    the change. A ring queue consumed afterwards (a ring moving in) is never named: its
    requests wait for ever. After a queue is cancelled (a ring moving out), the cycle keeps
    it and BRPOP names len(active) of its items: the one served last (rotated to the end)
    is left out -- a caller's next request on that ring waits until another ring is served."""
    server, namespace = old_rules_server
    admin = server.client()
    for ring in ("a", "b", "c"):
        admin.set(lock_key(namespace, ring), MEMBER)
    got: list[str] = []

    def on_message(body: Any, message: Any) -> None:
        got.append(body)
        message.ack()

    with (
        connection(server.url_of("coder"), namespace) as conn,
        connection(server.url, namespace) as publisher,
    ):
        channel = conn.default_channel
        assert channel.use_doorbell(doorbell_key(namespace, MEMBER))
        consumer = Consumer(channel, [queue_of(namespace, "a"), queue_of(namespace, "b")])
        consumer.register_callback(on_message)
        consumer.consume()
        drain(conn, got, 1, seconds=0.5)  # the pop script is refused: kombu's waits
        assert channel.doorbell is None, "given up, as the CHANGELOG says"
        producer = Producer(publisher.default_channel)

        def served(ring: str, body: str) -> bool:
            queue = queue_of(namespace, ring)
            producer.publish(body, exchange=queue.exchange, routing_key=queue.name)
            drain(conn, got, len(got) + 1, seconds=3.0)
            return body in got

        assert served("a", "before")
        # A ring moves in: what RingOwnership.reconcile does (add_queue, then consume).
        consumer.add_queue(queue_of(namespace, "c"))
        consumer.consume()
        moved_in = served("c", "to-the-ring-that-moved-in")
        # A ring moves out (cancel_task_queue), then one caller asks ring b twice.
        consumer.cancel_by_queue(queue_of(namespace, "a").name)
        first, second = served("b", "b-first"), served("b", "b-second")
    admin.close()
    assert (moved_in, first, second) == (True, True, True), got


def test_an_unblocked_wait_does_not_give_the_doorbell_up(server: PrivateRedis) -> None:
    """Redis ends a blocked BRPOP with -UNBLOCKED when the server turns replica (REPLICAOF,
    a failover's demotion, Redis >= 6.2) or on CLIENT UNBLOCK ... ERROR: a ResponseError, so
    the worker gives its doorbell up for the life of its connection (and kombu's queue
    cycle then goes stale: test_after_giving_the_doorbell_up_every_queue_is_waited_on).
    Expected: a wait ended by the server is simply sent again."""
    namespace = f"rt5u{uuid.uuid4().hex[:6]}"
    admin = server.client()
    with consuming(server.url, namespace, ["a", "b"]) as (conn, channel, got):
        drain(conn, got, 1, seconds=0.3)  # first looks done: a BRPOP on the doorbell waits
        blocked = [c["id"] for c in admin.client_list() if c.get("cmd") == "brpop"]
        assert blocked
        admin.execute_command("CLIENT", "UNBLOCK", blocked[0], "ERROR")
        drain(conn, got, 1, seconds=0.3)
        assert channel.doorbell is not None, "the doorbell was given up for an -UNBLOCKED"
    admin.close()


def test_a_sweep_costs_the_event_loop_the_same_whatever_the_rings(server: PrivateRedis) -> None:
    """Issue 19's aim: what a worker does costs the same whatever the number of ring
    queues it consumes. The sweep runs on the event loop four times a second and, each
    time, sorts every unrung ring queue and sends an EXISTS over all of them, 1,000 keys a
    script call: measured here 3.4 ms a sweep at 2,500 rings, 14 ms at 10,000 (6 % of the
    event loop, and a request arriving meanwhile waits that long). Expected: a bounded
    slice per tick (or a sweep only as a rare backstop), so 10,000 rings cost at most
    three times what 1,000 do."""
    namespace = f"rt5s{uuid.uuid4().hex[:6]}"
    with connection(server.url, namespace) as conn:
        channel = conn.default_channel
        assert channel.use_doorbell(doorbell_key(namespace, MEMBER))

        def per_sweep(rings: int) -> float:
            # The ring queues a consumer of ``rings`` rings sweeps (consumed, none rung).
            channel._rings = {ring_queue(namespace, f"r{index:05d}") for index in range(rings)}
            channel.sweep_rings()
            started = time.perf_counter()
            for _ in range(10):
                channel.sweep_rings()
            return (time.perf_counter() - started) / 10

        small = min(per_sweep(1000) for _ in range(3))
        large = min(per_sweep(10_000) for _ in range(3))
    assert large <= 3 * small, (
        f"a sweep: {small * 1000:.1f} ms at 1,000 rings, {large * 1000:.1f} ms at 10,000"
    )
