"""Red team 2: the batched ring locks (coder_ring.celery.ring_locks) on a real Redis.

``RingLocks.keep`` is what renews a stopping worker's locks while its pools go back
(``WorkerRuntime.stop`` lets the seats go 4 at a time; each give-back waits for the
request in flight and for top-ups, up to 30 s). It asks Redis only about the seats that
``has_lock()``, and a failed call sets ``valid_until = 0`` on every one of them: after a
single transient Redis error, no later keep round asks about those seats again, so
their locks lapse while their pools are still on the way back. A standby then takes
the ring and claims a new epoch, and the give-back is fenced: the pool is lost on a
graceful stop. (``follow`` does not have the problem for a handoff: it asks about a
seat handing off whatever ``has_lock()`` says.)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from coder_ring.celery.ring_locks import LeaseKeeper, RingLocks
from coder_ring.celery.seat import RingSeat
from coder_ring.registry.keys import member_key
from coder_ring.registry.member_lease import MemberLease
from tests.harness.shared import REDIS_TEST_URL, require

pytestmark = [pytest.mark.redis]

TTL = 1.0


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """The shared test Redis, untouched: keys under a namespace of this test's own."""
    connection = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        connection.ping()
    except redis.RedisError as error:
        require("Redis", error)
    yield connection
    connection.close()


class FlakyBook(MemberLease):
    """A MemberLease whose next ``fail`` calls raise as a timed-out Redis call would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail = 0

    def tend(self, wants: Any) -> Any:
        if self.fail:
            self.fail -= 1
            raise redis.TimeoutError("Timeout reading from socket")
        return super().tend(wants)


def fresh_names() -> tuple[str, str, str]:
    """A namespace of the test's own, ring ``one``'s lock key in it, and a member id."""
    namespace = f"rt2{uuid.uuid4().hex[:8]}"
    return namespace, f"{namespace}:lock:one", f"me|1|{uuid.uuid4().hex[:8]}"


def held_seat(book: MemberLease, ring: str, key: str) -> RingSeat:
    """A seat whose lock is taken and recorded as the lease thread would (closed: the
    worker stops)."""
    until, granted = book.tend([(key, True)])
    assert granted == [True]
    seat = RingSeat(ring, book.lock(key), server=None)  # type: ignore[arg-type]
    seat.valid_until = until
    seat.closed = True
    return seat


def test_keep_goes_on_renewing_after_one_failed_call(client: redis.Redis) -> None:
    """While the worker stops, one failed keep round must not end the renewals of the
    seats not let go yet: their pools are still on the way back."""
    namespace, key, me = fresh_names()
    book = FlakyBook(client, namespace, me, TTL)
    locks = RingLocks(book, me, "me", won=print, lost=print, leave=lambda seat, why: None)
    seat = held_seat(book, "one", key)
    try:
        book.fail = 1
        locks.keep([seat])  # one transient error (a socket timeout under load)
        # The lease thread goes on with a round every TTL/3 while the pool goes back.
        deadline = time.monotonic() + 2 * TTL
        while time.monotonic() < deadline:
            time.sleep(TTL / 3)
            locks.keep([seat])
        # A standby asks for the ring (free to take if the stopping worker's lease lapsed).
        standby = MemberLease(client, namespace, f"standby|2|{uuid.uuid4().hex[:8]}", TTL)
        _, taken = standby.tend([(key, True)])
        assert taken == [False], (
            "the stopping worker's lock lapsed while its seat was not let go yet: a "
            "standby took the ring (and would claim a new epoch, fencing the give-back)"
        )
        assert client.get(key) == me.encode()
        # And the let-go that follows must release it (and tell the others).
        assert seat.has_lock(), "let_go would see no lock and neither release nor notify"
    finally:
        client.delete(key)


def test_a_handoff_ending_after_a_failed_round_releases_its_lock(client: redis.Redis) -> None:
    """A round whose script call fails sets ``valid_until = 0`` on a seat handing off
    (ring_locks ``_apply``: ``seat.valid_until = until or 0.0``); if the handoff's
    ``let_go`` ends before the next round, it sees no lock, so it neither releases it
    nor publishes RELEASED: the ring's new holder waits for the lock to expire (up to a
    TTL, 5 s by default) although the pool is home."""
    namespace, key, me = fresh_names()
    book = FlakyBook(client, namespace, me, TTL)
    locks = RingLocks(book, me, "me", won=print, lost=print, leave=lambda seat, why: None)
    seat = held_seat(book, "one", key)
    seat.closed = False
    seat.handing_off = True  # the pool is on its way back (hand_off ran last round)

    class Server:
        epoch = None

        def deactivate(self, give_back: bool) -> int:
            return 0

    seat.server = Server()  # type: ignore[assignment]
    try:
        book.fail = 1
        locks.follow([seat], {"one": "other"}, {"other"}, healthy=True, stopping=False)
        seat.let_go(give_back=True)  # the handoff ends (its pool is home)
        assert client.get(key) is None, (
            "the handoff ended but the lock stays ours until it expires: the ring's new "
            "holder cannot take it meanwhile"
        )
    finally:
        client.delete(key)


def test_a_round_longer_than_the_ttl_keeps_the_rings(client: redis.Redis) -> None:
    """Issue 19: at 10,000 rings a busy worker's lease round outlasted the TTL, so every
    ring of it lapsed at once (and was taken again, round after round). Between rounds
    the keeper renews the lease alone: the seats stay valid and no standby can take
    their locks. A round stuck for good is not covered: its rings fail over."""
    namespace, key, me = fresh_names()
    book = MemberLease(client, namespace, me, TTL)
    locks = RingLocks(book, me, "me", won=print, lost=print, leave=lambda seat, why: None)
    seat = held_seat(book, "one", key)
    seat.closed = False
    keeper = LeaseKeeper(locks, lambda: [seat], member_key(namespace, me), TTL)
    standby = MemberLease(client, namespace, f"standby|2|{uuid.uuid4().hex[:8]}", TTL)
    keeper.start()
    try:
        time.sleep(2.5 * TTL)  # no round meanwhile: it is still under way
        assert seat.can_serve(), "the seat lapsed although the worker lives"
        assert standby.tend([(key, True)])[1] == [False], "a standby took a live worker's ring"
        time.sleep((LeaseKeeper.STUCK_ROUNDS - 2.5 + 1.5) * TTL)  # the round is stuck
        assert not seat.can_serve()
        assert standby.tend([(key, True)])[1] == [True]
    finally:
        keeper.stop()
        client.delete(key)
