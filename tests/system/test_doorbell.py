"""A worker waits on its doorbell, not on every ring queue it consumes (issue 19): with
hundreds of rings, every request is still served, whoever sent it and whenever, and what
the worker asks Redis per request does not name its ring queues.

The requests nobody rang: sent before any worker consumed the ring, and sent by a plain
Celery app (kombu's own transport, no doorbell) -- the worker's first look at a queue it
starts consuming, and its sweep, find them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from coder_ring.celery.doorbell import RECENT_QUEUES
from coder_ring.celery.names import TASK_GET_CODE, ring_queue
from coder_ring.registry.keys import lock_key
from coder_ring.settings import DEFAULT_NAMESPACE
from tests.harness import assert_distinct, caller_app, wait_until, worker_env, write_rings
from tests.harness.one_worker import one_worker_serving
from tests.servers import private_redis

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

RINGS = [f"d{index:03d}" for index in range(300)]
TIMEOUT = 30.0


@contextmanager
def commands_sent(url: str) -> Iterator[list[list[str]]]:
    """Every command Redis at ``url`` runs meanwhile (MONITOR), as lists of words."""
    seen: list[list[str]] = []
    stop = threading.Event()
    client = redis.Redis.from_url(url, decode_responses=True)

    def run() -> None:
        with client.monitor() as monitor:
            ready.set()
            while not stop.is_set():
                seen.append(monitor.next_command()["command"].split(" "))

    ready = threading.Event()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield seen
    finally:
        stop.set()
        client.ping()  # one more command ends next_command()
        thread.join(5)
        client.close()


def plain_client(url: str) -> Celery:
    """A service's own Celery app: kombu's Redis transport, no coder_ring."""
    return Celery("elsewhere", broker=url, backend=url, set_as_current=False)


def send_plain(client: Celery, ring: str) -> Any:
    queue = ring_queue(DEFAULT_NAMESPACE, ring)
    return client.send_task(TASK_GET_CODE, args=[ring], queue=queue, expires=TIMEOUT)


@pytest.mark.timeout(120)
def test_every_request_is_served_whoever_sent_it(tmp_path: Path, pg_url: str, group: Any) -> None:
    rings_file = write_rings(
        tmp_path / "rings.toml", **{ring: {"base_length": 2, "pool_size": 8} for ring in RINGS}
    )
    chosen = random.Random(19).sample(RINGS, 60)
    with private_redis() as server:
        env = worker_env(redis_url=server.url, database_url=pg_url, rings_file=rings_file)
        plain = plain_client(server.url)
        try:
            # Before any worker: nobody's doorbell rings; the requests wait in the queues.
            early = [send_plain(plain, ring) for ring in chosen[:20]]
            worker = group.worker("a", env)
            worker.wait_ready()
            codes = [
                (ring, result.get(timeout=TIMEOUT))
                for ring, result in zip(chosen, early, strict=False)
            ]
            wait_until(lambda: all(worker.holds(ring) for ring in RINGS), TIMEOUT, 0.2)
            with caller_app(env) as app, commands_sent(server.url) as sent:
                # Rung by coder_ring's callers, and not rung at all (a plain publisher).
                for ring in chosen[20:40]:
                    codes.append((ring, app.ring_tasks.get_code.delay(ring).get(timeout=TIMEOUT)))
                    started = time.monotonic()
                    codes.append((ring, send_plain(plain, ring).get(timeout=TIMEOUT)))
                    # Found by the sweep (a quarter of a second) when it did not serve last.
                    assert time.monotonic() - started < 5.0
                late = [send_plain(plain, ring) for ring in chosen[40:]]
                codes += [
                    (ring, result.get(timeout=TIMEOUT))
                    for ring, result in zip(chosen[40:], late, strict=True)
                ]
            waits = [words for words in sent if words[0] == "BRPOP"]
        finally:
            plain.close()
    assert len(codes) == 80
    assert_distinct([f"{ring}:{code}" for ring, code in codes])  # a code is unique in its ring
    # kombu's own transport names every consumed queue in each BRPOP (301 keys here).
    assert waits, "the worker never waited"
    # Ours: the doorbell, the no-op's queue, the rings that served last, the timeout.
    assert max(len(words) for words in waits) <= 1 + 2 + RECENT_QUEUES + 1, waits[:3]


@pytest.mark.timeout(90)
def test_a_callers_requests_declare_no_queue(tmp_path: Path, pg_url: str, group: Any) -> None:
    # Celery declares and binds a queue before its first message on each connection: two
    # round trips per ring, paid by nearly every request among thousands of rings. A
    # coder_ring caller sends to the ring's list by name; the worker declared the queue.
    rings = RINGS[:12]
    with (
        one_worker_serving(tmp_path, pg_url, group, rings, TIMEOUT) as (server, env, _),
        caller_app(env) as app,
    ):
        assert app.publishes_by_name
        app.ring_tasks.get_code.delay(rings[0]).get(timeout=TIMEOUT)  # connections made
        with commands_sent(server.url) as sent:
            codes = [
                (ring, app.ring_tasks.get_code.delay(ring).get(timeout=TIMEOUT))
                for ring in rings[1:]
            ]
    assert len(codes) == len(rings) - 1
    declares = [words for words in sent if any("_kombu.binding" in word for word in words)]
    assert not declares, declares[:3]
    # Still one publish per request: the script that pushes it and rings the doorbell.
    locks = {lock_key(DEFAULT_NAMESPACE, ring) for ring in rings}
    published = [words for words in sent if words[0] == "EVALSHA" and words[4] in locks]
    assert len(published) == len(codes), published
