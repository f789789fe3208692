"""The global registry (coder_ring.registry): membership and the coordinator on a real Redis (no
worker process). Placement and handoffs with real worker processes and PostgreSQL are in
``test_registry_cluster.py``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis

from coder_ring.registry.coordinator import Coordinator, read_assignment
from coder_ring.registry.keys import coordinator_key, lock_key
from coder_ring.registry.member_lease import LOCKS_PER_CALL, MemberLease, lock_holders
from coder_ring.registry.membership import MemberInfo, Membership, live_members
from tests.harness import wait_until
from tests.system.registry_cluster import RINGS

pytestmark = [pytest.mark.redis]


def info(member_id: str, rings: list[str] = RINGS, healthy: bool = True) -> MemberInfo:
    return MemberInfo(member_id, member_id, 1, 0.0, tuple(rings), healthy, "sqlite://")


def spread(assignment: dict[str, str]) -> list[int]:
    return sorted(Counter(assignment.values()).values())


# --------------------------------------------------------------------------------------
# Membership and the coordinator, on a real Redis (no worker process)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


def test_members_heartbeat_by_server_time_expire_and_leave(client: redis.Redis) -> None:
    membership = Membership(client, "reg", ttl=0.5)
    membership.heartbeat(info("a|1|x"))
    membership.heartbeat(info("b|2|y"))
    found = live_members(client, "reg")
    assert [member.id for member in found] == ["a|1|x", "b|2|y"]
    assert all(member.age is not None and 0 <= member.age < 0.5 for member in found)
    membership.leave("b|2|y")  # a graceful stop: gone at once
    assert [member.id for member in live_members(client, "reg")] == ["a|1|x"]
    # No heartbeat: gone after the TTL, by Redis's clock (and pruned from the id set).
    wait_until(lambda: not live_members(client, "reg"), 3.0, what="a to expire")
    assert not client.smembers("coder_ring:reg:members")


def test_one_coordinator_at_a_time_elected_by_lease(client: redis.Redis) -> None:
    first = Coordinator(client, "reg", "m1", 5.0, rebalance_after=0, max_moves=10)
    second = Coordinator(client, "reg", "m2", 5.0, rebalance_after=0, max_moves=10)
    both = [info("m1"), info("m2")]
    placed = first.round(both, {})
    assert placed is not None and spread(placed) == [50, 50]
    assert second.round(both, placed) is None and not second.leading
    assert read_assignment(client, "reg") == placed
    first.resign()  # a graceful stop: the next member to ask takes over at once
    assert second.round(both, placed) == placed  # and keeps every ring where it is
    assert first.round(both, placed) is None


def test_moves_on_their_way_count_against_the_cap(client: redis.Redis) -> None:
    coordinator = Coordinator(client, "reg", "m1", 5.0, rebalance_after=0, max_moves=10)
    three = [info("m1"), info("m2"), info("m3")]
    held = coordinator.round(three, {})
    assert held is not None and spread(held) == [33, 33, 34]
    four = [*three, info("m4")]
    assigned = coordinator.round(four, held)
    assert assigned is not None and Counter(assigned.values())["m4"] == 10
    # The ten have not moved yet (the holders still hold them): nothing more moves, however
    # many rounds run meanwhile (every notice runs one).
    for _ in range(3):
        assert coordinator.round(four, held) == assigned
    # Four arrived: four more may go.
    arrived = sorted(ring for ring, member in assigned.items() if member == "m4")[:4]
    held = {**held, **dict.fromkeys(arrived, "m4")}
    assigned = coordinator.round(four, held)
    assert assigned is not None and Counter(assigned.values())["m4"] == 14
    rounds = 0
    while True:  # every move completes at once from here on
        rounds += 1
        again = coordinator.round(four, assigned)
        assert again is not None
        if again == assigned:
            break
        assigned = again
    assert spread(assigned) == [25, 25, 25, 25] and rounds == 3  # +10, +1, then nothing


def test_the_assignment_of_thousands_of_rings_is_written(client: redis.Redis) -> None:
    many = [f"ring{index}" for index in range(5000)]
    coordinator = Coordinator(client, "reg", "m1", 5.0, rebalance_after=0, max_moves=10)
    placed = coordinator.round([info("m1", many), info("m2", many)], {})
    assert placed is not None and spread(placed) == [2500, 2500]
    assert read_assignment(client, "reg") == placed


def test_failovers_at_once_rebalancing_after_membership_settles(client: redis.Redis) -> None:
    coordinator = Coordinator(client, "reg", "m1", 5.0, rebalance_after=60, max_moves=10)
    three = [info("m1"), info("m2"), info("m3")]
    held = coordinator.round(three, {})
    assert held is not None
    # m3 died, m4 joined, m2 cannot reach its database: their rings go to the healthy
    # members now, nothing else moves before membership has been stable for `settle`.
    now = [info("m1"), info("m2", healthy=False), info("m4")]
    placed = coordinator.round(now, held)
    assert placed is not None and set(placed.values()) == {"m1", "m4"}
    assert all(placed[ring] == "m1" for ring, member in held.items() if member == "m1")
    assert spread(placed) == [50, 50]  # the failovers went to the least loaded
    # m5 joins: nothing moves while membership is settling.
    assert coordinator.round([*now, info("m5")], placed) == placed


def test_a_ring_whose_holder_lost_its_lock_moves_while_the_holder_is_live(
    client: redis.Redis,
) -> None:
    """Issue 20, late heartbeats: a member whose heartbeats reach Redis late stays live
    a TTL after the last one, long after its locks lapsed (it stopped serving then).
    Its rings must go to another member at once, not once its membership expires."""
    coordinator = Coordinator(client, "reg", "m1", 5.0, rebalance_after=60, max_moves=10)
    placed = coordinator.round([info("m1"), info("m2")], {})
    assert placed is not None
    mine = sorted(ring for ring, member in placed.items() if member == "m2")
    holders = {ring: member for ring, member in placed.items() if ring not in mine[:2]}
    late = replace(info("m2"), holding=tuple(mine))  # its last heartbeat, sent in time
    moved = coordinator.round([info("m1"), late], holders, placed)
    assert moved is not None
    assert [moved[ring] for ring in mine[:2]] == ["m1", "m1"], "the lapsed rings stayed"
    assert all(moved[ring] == "m2" for ring in mine[2:])  # still held: they stay


def test_one_call_tends_every_lock_of_a_worker(client: redis.Redis) -> None:
    """A worker's locks in one script call per thousand, under one lease: ours kept, free
    ones (missing, or their holder's lease gone) taken only when asked, a live holder's
    never touched; the locks have no TTL, only the lease has one."""
    names = [str(index) for index in range(LOCKS_PER_CALL + 5)]
    keys = [lock_key("reg", name) for name in names]
    MemberLease(client, "reg", "other", ttl=30.0).tend([])  # a live member
    client.mset({keys[0]: "other", keys[1]: "me", keys[2]: "gone"})  # gone: no lease
    book = MemberLease(client, "reg", "me", ttl=30.0)
    takes = [index < 3 or index % 2 == 1 for index in range(len(keys))]
    until, granted = book.tend(list(zip(keys, takes, strict=True)))
    assert until > 0
    assert granted[0] is False and client.get(keys[0]) == b"other"  # a live holder's
    assert granted[1:3] == [True, True] and client.get(keys[2]) == b"me"  # ours, a dead one's
    assert granted[3:] == takes[3:]
    assert [client.get(key) for key in keys[3:7]] == [b"me", None, b"me", None]
    assert client.pttl(book.key) > 20_000 and client.pttl(keys[1]) == -1
    holders = lock_holders(client, "reg", names)
    assert holders[names[0]] == "other" and len(holders) == 1 + sum(takes[1:])
    # Once taken, a lock is kept whether or not the next round would take it; one ours
    # that nobody asks about any more (its release failed) is let go.
    _, again = book.tend([(key, False) for key in keys[:-2]])
    assert again == [False, *takes[1:-2]]
    assert takes[-2] and client.get(keys[-2]) is None


def test_a_cold_start_waits_for_the_members_to_join(client: redis.Redis) -> None:
    """Issue 19: the first member up is not assigned every ring. A young coordinator
    places nothing while membership changes (clearing a stale assignment, whose dead
    members' rings anyone would take), then places over everyone; a failover later
    never waits."""
    client.hset("coder_ring:reg:assignment", mapping={RINGS[0]: "gone|1|x"})
    coordinator = Coordinator(
        client, "reg", "m1", 5.0, rebalance_after=60, max_moves=10, formation=0.3
    )
    assert coordinator.round([info("m1")], {}) == {}
    assert read_assignment(client, "reg") == {}
    assert coordinator.round([info("m1"), info("m2")], {}) == {}  # changed: waits again
    time.sleep(0.35)
    placed = coordinator.round([info("m1"), info("m2")], {})
    assert placed is not None and spread(placed) == [50, 50]
    assert read_assignment(client, "reg") == placed
    # m2 dies: its rings go to m1 at once (not cold: m1 holds its own).
    failover = coordinator.round([info("m1"), info("m3")], placed)
    assert failover is not None and set(failover.values()) == {"m1", "m3"}


def test_the_last_leave_of_a_rolling_restart_is_placed_at_once(client: redis.Redis) -> None:
    """Red-team finding F1: a young member that takes over the coordinator when the
    last old worker of a rolling restart leaves must not wait as at a cold start (the
    rings went unplaced for another formation wait): only a join restarts the wait."""
    old = "m2"
    client.set(coordinator_key("reg"), old, px=60_000)  # the old worker coordinates
    client.hset("coder_ring:reg:assignment", mapping=dict.fromkeys(RINGS, old))
    coordinator = Coordinator(
        client, "reg", "m1", 5.0, rebalance_after=60, max_moves=10, formation=0.3
    )
    assert coordinator.round([info("m1"), info(old, RINGS)], {}) is None  # not leading
    time.sleep(0.35)
    assert coordinator.round([info("m1"), info(old, RINGS)], {}) is None
    client.delete(coordinator_key("reg"))  # the old worker resigns and leaves
    placed = coordinator.round([info("m1", RINGS)], {})
    assert placed == dict.fromkeys(RINGS, "m1")


def test_an_old_coordinator_places_a_wiped_registry_at_once(client: redis.Redis) -> None:
    """A wiped Redis looks like a cold start; a coordinator past its formation limit
    (3 x formation after it started) does not wait: the rings are served again now."""
    coordinator = Coordinator(
        client, "reg", "m1", 5.0, rebalance_after=60, max_moves=10, formation=0.1
    )
    time.sleep(0.35)
    placed = coordinator.round([info("m1"), info("m2")], {})
    assert placed is not None and spread(placed) == [50, 50]


def test_a_few_rings_are_placed_at_once(client: redis.Redis) -> None:
    """No more rings than one batch of moves: the handoffs cost less than the wait."""
    few = RINGS[:10]
    coordinator = Coordinator(
        client, "reg", "m1", 5.0, rebalance_after=60, max_moves=10, formation=5.0
    )
    placed = coordinator.round([info("m1", few)], {})
    assert placed == dict.fromkeys(few, "m1")
