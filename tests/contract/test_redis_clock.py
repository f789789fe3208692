"""Redis's clock as a worker reckons it, and the lease-extending scripts that refuse a
request reaching Redis after its sender gave up on it (issue 20, fault 6), on a real
Redis. A request is made "late" by a clock that dates its sends in the past: the send
time the script gets is then that far behind Redis's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from coder_ring.registry.keys import coordinator_key, member_key, member_lease_key
from coder_ring.registry.lease import Lease
from coder_ring.registry.member_lease import MemberLease
from coder_ring.registry.membership import MemberInfo, Membership, live_members
from coder_ring.registry.redis_clock import SAMPLES, LateRequest, RedisClock

pytestmark = [pytest.mark.redis]
NAMESPACE = "clock"
TTL = 5.0
#: A call timeout of the test's clients, as a worker's (TTL/6 there).
TIMEOUT = 0.5


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url, socket_timeout=TIMEOUT)
    yield connection
    connection.close()


def redis_ms(client: redis.Redis) -> int:
    seconds, micros = client.time()
    return int(seconds * 1000 + micros // 1000)


class Behind(RedisClock):
    """A clock that dates every send ``seconds`` early, which no reply corrects: every
    request it stamps looks that late to Redis."""

    def __init__(self, client: redis.Redis, seconds: float) -> None:
        super().__init__(client)
        self._offset = RedisClock(client).offset() - seconds

    def offset(self) -> float:
        return self._offset


class Counted(RedisClock):
    """A clock that counts the requests it stamps (a refused one is tried again)."""

    tries = 0

    def offset(self) -> float:
        self.tries += 1
        return super().offset()


def behind_once(client: redis.Redis, seconds: float) -> Counted:
    """A clock whose only sample dates sends ``seconds`` early, until a reply's time
    corrects it."""
    clock = Counted(client)
    clock.observe(redis_ms(client) - int(seconds * 1000), time.monotonic())
    return clock


def test_the_offset_is_a_lower_bound_of_redis_s_clock(client: redis.Redis) -> None:
    clock = RedisClock(client)
    assert clock.patience_ms == TIMEOUT * 1000  # the client's own call timeout
    before = time.monotonic()
    seconds, micros = client.time()
    after = time.monotonic()
    offset = clock.offset()  # its first sample: a TIME call of its own, taken later
    # Redis's time was seconds + micros at a moment between before and after: never
    # above that, and below it by the reply's trip at most (a loaded machine: 50 ms).
    assert seconds + micros / 1e6 - after - 0.05 <= offset <= seconds + micros / 1e6 - before


def test_the_best_of_the_last_samples_counts_and_a_new_clock_is_followed(
    client: redis.Redis,
) -> None:
    clock = RedisClock(client)
    now = time.monotonic()
    clock.observe(9_999_000, now)  # a slower trip: a lower bound, not the estimate
    clock.observe(10_000_000, now)  # a Redis whose clock read 10,000 s (ms) at `now`
    assert clock.offset() == pytest.approx(10_000 - now)
    # A failover to a Redis whose clock is an hour behind: followed once the old
    # samples are out of the window.
    for _ in range(SAMPLES - 1):
        clock.observe(10_000_000 - 3_600_000, now)
    assert clock.offset() == pytest.approx(10_000 - now)  # the old best is still in it
    clock.observe(10_000_000 - 3_600_000, now)
    assert clock.offset() == pytest.approx(10_000 - 3_600 - now)


def test_a_normal_link_never_has_a_renewal_refused(client: redis.Redis) -> None:
    clock = Counted(client)
    book = MemberLease(client, NAMESPACE, "me|1|a", TTL, clock)
    key = f"{NAMESPACE}:lock:one"
    for _ in range(300):
        assert book.tend([(key, True)])[1] == [True]
        assert book.prolong(member_key(NAMESPACE, "me|1|a"))[1] is not None
        assert book.recheck(key) is not None
    assert clock.tries == 900  # not one tried twice


def test_a_late_renewal_extends_nothing(client: redis.Redis) -> None:
    book = MemberLease(client, NAMESPACE, "me|1|a", TTL)
    lease, key = member_lease_key(NAMESPACE, "me|1|a"), f"{NAMESPACE}:lock:one"
    on_time = book.clock
    book.clock = Behind(client, 2 * TIMEOUT)
    with pytest.raises(LateRequest, match="after it was sent"):
        book.tend([(key, True)])
    assert client.exists(lease, key) == 0  # neither the lease nor the lock taken
    book.clock = on_time
    assert book.tend([(key, True)])[1] == [True]
    before = client.pttl(lease)
    book.clock = Behind(client, 2 * TIMEOUT)
    with pytest.raises(LateRequest):
        book.prolong(member_key(NAMESPACE, "me|1|a"))
    with pytest.raises(LateRequest):
        book.recheck(key)
    assert client.pttl(lease) <= before  # not extended by either
    assert not client.exists(member_key(NAMESPACE, "me|1|a"))  # nor a record made to live
    assert client.get(key) == b"me|1|a"


def test_a_refusal_that_came_back_is_tried_again_with_the_clock_corrected(
    client: redis.Redis,
) -> None:
    # Its sender was still waiting: the clock was off (here, a new Redis's clock ahead).
    clock = behind_once(client, 2 * TIMEOUT)
    book = MemberLease(client, NAMESPACE, "me|1|a", TTL, clock)
    assert book.tend([(f"{NAMESPACE}:lock:one", True)])[1] == [True]
    assert clock.tries == 2
    assert RedisClock(client).offset() - 0.05 <= clock.offset()


@pytest.mark.parametrize("what", ["heartbeat", "coordinator"])
def test_a_late_heartbeat_or_coordinator_renewal_does_nothing(
    client: redis.Redis, what: str
) -> None:
    member = MemberInfo("me|1|a", "me", 1, 0.0, ("one",), True, "sqlite://")
    membership = Membership(client, NAMESPACE, TTL)
    coordinator = Lease(client, coordinator_key(NAMESPACE), member.id, TTL)
    calls: dict[str, tuple[Callable[[], object], Callable[[], bool]]] = {
        "heartbeat": (
            lambda: membership.heartbeat(member),
            lambda: bool(live_members(client, NAMESPACE)),
        ),
        "coordinator": (
            coordinator.acquire_or_renew,
            lambda: client.get(coordinator_key(NAMESPACE)) == b"me|1|a",
        ),
    }
    call, done = calls[what]
    on_time = membership.clock, coordinator.clock
    membership.clock = coordinator.clock = Behind(client, 2 * TIMEOUT)
    with pytest.raises(LateRequest):
        call()
    assert not done()
    membership.clock, coordinator.clock = on_time
    call()
    assert done()
