"""The worker's pools (coder_ring.ring_server.RingServer) without Celery: on the in-memory store
for speed, and on SQLite where the store matters."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from coder_ring import (
    ALPHABET,
    ExtraConflict,
    Fenced,
    MemoryStore,
    RingConfig,
    RingService,
    SqlStore,
)
from coder_ring.errors import NotHolding
from coder_ring.extra_pool import PooledCodes
from coder_ring.ring_server import MAX_POOLED_EXTRAS, RingServer
from coder_ring.store import Drawn, Store

POOL = 8
ONE = RingConfig("one", base_length=1, pool_size=POOL)
TWO = RingConfig("two", base_length=2, pool_size=POOL)


def service_on(store: Store, seed: int | None = None) -> RingService:
    randbelow = random.Random(seed).randrange if seed is not None else random.randrange
    return RingService(store, {ring.name: ring for ring in (ONE, TWO)}, randbelow)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(1, thread_name_prefix="refill-test")
    yield pool
    pool.shutdown(wait=True)


def drained(executor: ThreadPoolExecutor) -> None:
    """Wait until everything submitted to the one-thread ``executor`` ran."""
    executor.submit(lambda: None).result(timeout=30)


@pytest.fixture
def server(executor: ThreadPoolExecutor) -> RingServer:
    ring_server = RingServer(service_on(MemoryStore()), "one", executor=executor)
    ring_server.activate()
    return ring_server


def rest_of_cycle(service: RingService, name: str = "one", extra: str = "") -> list[str]:
    return service.draw(name, 10_000, extra=extra, within_cycle=True).codes


def test_serves_the_codes_the_ring_would_issue_in_draw_order(
    executor: ThreadPoolExecutor,
) -> None:
    pooled = RingServer(service_on(MemoryStore(), seed=7), "two", executor=executor)
    pooled.activate()
    plain = service_on(MemoryStore(), seed=7)
    served = [pooled.get_code() for _ in range(3)] + pooled.get_codes(9)
    assert served == [plain.get_code("two") for _ in range(12)]
    # The given-back codes go back at their own positions: picking the top each time
    # issues them in the order the pool would have served them.
    twin = plain.get_codes("two", POOL)
    assert pooled.refill() == POOL
    assert pooled.deactivate() == POOL
    top = RingService(pooled.service.store, pooled.service.rings, randbelow=lambda n: n - 1)
    assert top.get_codes("two", POOL) == twin


def test_deactivate_gives_back_exactly_what_was_not_handed_out(server: RingServer) -> None:
    service = server.service
    assert server.pooled == POOL
    assert service.status("one").remaining_in_cycle == 32 - POOL
    served = [server.get_code() for _ in range(3)]
    assert server.deactivate() == POOL - 3
    assert server.pooled == 0
    assert service.status("one").remaining_in_cycle == 32 - 3
    assert sorted(served + rest_of_cycle(service)) == sorted(ALPHABET)
    assert server.deactivate() == 0  # nothing left, not holding


def test_a_background_top_up_lands_and_goes_back_too(server: RingServer) -> None:
    served = server.get_codes(5)
    server.top_up_if_low()
    server.settle()
    assert server.pooled == POOL
    assert server.service.status("one").remaining_in_cycle == 32 - 5 - POOL
    served += server.get_codes(2)
    server.top_up_if_low()  # 6 left: not below half, nothing to do
    server.settle()
    assert server.pooled == POOL - 2
    assert server.deactivate() == POOL - 2
    assert sorted(served + rest_of_cycle(server.service)) == sorted(ALPHABET)


def serve(server: RingServer, count: int, extra: str = "", bump: bool = False) -> list[str]:
    """Serve as a worker does: the codes, then a background top-up if the pool is low."""
    codes = server.get_codes(count, extra=extra, bump=bump)
    server.top_up_if_low(extra)
    server.settle()
    return codes


def test_each_extra_has_its_own_pool_and_switching_drops_nothing(server: RingServer) -> None:
    served: dict[str, list[str]] = {"": [], "hi": [], "26-": []}
    for extra in ["", "hi", "", "26-", "hi", "hi", "", "26-"]:
        served[extra] += serve(server, 2, extra)
    pooled = server.pooled_by_extra()
    assert set(pooled) == set(served) and all(pooled.values())
    assert server.deactivate() == sum(pooled.values())
    for extra, codes in served.items():
        rest = rest_of_cycle(server.service, extra=extra)
        assert sorted(codes + rest) == sorted(extra + base for base in ALPHABET)


def issued_by_extra(service: RingService, name: str = "one") -> dict[str, int]:
    return {extra.extra: extra.issued for extra in service.status(name).extras}


@pytest.mark.parametrize(("extras", "seed"), [(9, 1), (12, 2), (40, 3), (MAX_POOLED_EXTRAS + 6, 4)])
def test_any_number_of_extras_loses_no_code(
    extras: int, seed: int, executor: ThreadPoolExecutor
) -> None:
    """Extras in rotation and at random, more than there are pools, top-ups in the
    background: once the server stops, the database counts as issued exactly the codes
    handed out, per extra (0.2.0 lost codes with a ninth extra)."""
    rng = random.Random(seed)
    service = service_on(MemoryStore(), seed)
    server = RingServer(service, "two", executor=executor)
    server.activate()
    names = [f"e{index}-" for index in range(extras)]
    served: dict[str, list[str]] = {}
    for step in range(600):
        extra = names[step % extras] if step < 300 else rng.choice(names)
        served.setdefault(extra, []).extend(server.get_codes(rng.randint(1, 5), extra))
        server.top_up_if_low(extra)
        assert len(server.pooled_by_extra()) <= MAX_POOLED_EXTRAS
    server.settle()
    assert server.deactivate() > 0
    received = {extra: len(codes) for extra, codes in served.items()}
    assert {extra: n for extra, n in issued_by_extra(service, "two").items() if n} == received
    for codes in served.values():
        assert len(set(codes)) == len(codes)


def test_idle_pools_go_back_at_a_refill(
    server: RingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = {extra: serve(server, 3, extra) for extra in ["", "hi", "26-"]}
    monkeypatch.setattr("coder_ring.ring_server.POOL_IDLE_SECONDS", 0.0)
    server.refill()
    assert set(server.pooled_by_extra()) == {""}  # the default extra's pool stays
    for extra in ["hi", "26-"]:
        rest = rest_of_cycle(server.service, extra=extra)
        assert sorted(served[extra] + rest) == sorted(extra + base for base in ALPHABET)


def test_a_bump_drops_that_extras_pool_only(server: RingServer) -> None:
    hi = serve(server, 1, "hi")
    bumped = serve(server, 1, bump=True)[0]
    assert bumped.startswith("X") and len(bumped) == 2
    assert server.pooled_by_extra() == {"hi": POOL, "": POOL}  # "" refilled in cycle 1
    assert server.deactivate() == 2 * POOL
    status = {extra.extra: extra for extra in server.service.status("one").extras}
    assert (status[""].cycle, status[""].remaining_in_cycle) == (1, 31)
    rest = rest_of_cycle(server.service, extra="hi")
    assert sorted(hi + rest) == sorted("hi" + base for base in ALPHABET)


def test_the_pool_never_straddles_two_cycles(server: RingServer) -> None:
    served = server.get_codes(30)
    server.refill()
    assert server.pooled == 2  # the rest of cycle 0, nothing of cycle 1
    served += server.get_codes(1)
    server.refill()
    assert server.pooled == 1
    assert server.deactivate() == 1
    last = server.service.get_codes("one", 2)
    assert sorted(served + last[:1]) == sorted(ALPHABET)  # the given-back code, in cycle 0
    assert last[1].startswith("X")


def test_a_refused_extra_leaves_no_pool_behind(server: RingServer) -> None:
    served = server.get_codes(2)
    with pytest.raises(ExtraConflict, match="'X'"):
        server.get_codes(1, extra="X")
    assert server.pooled_by_extra() == {"": POOL - 2}
    assert server.refill() == 2  # a beat refill still works
    assert server.deactivate() == POOL
    assert sorted(served + rest_of_cycle(server.service)) == sorted(ALPHABET)


def test_a_claim_by_another_server_fences(server: RingServer) -> None:
    served = server.get_codes(5)
    other = RingServer(server.service, "one")
    other.activate()
    served += server.get_codes(3)  # already issued to this server: still safe to hand out
    with pytest.raises(Fenced):
        server.get_codes(2)
    assert server.pooled == 0
    with pytest.raises(NotHolding):
        server.get_code()
    assert server.deactivate() == 0
    served += other.get_codes(32)
    assert len(set(served)) == len(served)
    other.close()


def test_still_current_drops_the_pools_after_an_outside_reset(server: RingServer) -> None:
    server.get_codes(2)
    assert server.still_current()
    record = server.reset()  # the holder's own reset keeps its epoch
    assert server.still_current() and record.epoch == server.epoch
    server.get_codes(2)
    server.refill()
    server.service.reset("one")
    assert not server.still_current()
    assert (server.pooled, server.epoch) == (0, None)
    with pytest.raises(NotHolding):
        server.get_code()
    assert server.deactivate() == 0
    assert server.service.status("one").remaining_in_cycle == 32


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_the_edges_bug_direct_draws_beside_a_pool_never_repeat(
    backend: str, sqlite_url: str, executor: ThreadPoolExecutor
) -> None:
    store: Store = MemoryStore() if backend == "memory" else SqlStore(sqlite_url)
    store.migrate()
    try:
        worker = RingServer(service_on(store), "two", executor=executor)
        worker.activate()
        handed_out = worker.get_codes(3)
        handed_out += service_on(store).get_codes("two", 4)  # a direct caller meanwhile
        worker.refill()
        worker.deactivate(give_back=True)
        fresh = RingServer(service_on(store), "two", executor=executor)
        fresh.activate()
        remaining = fresh.service.status("two").remaining_in_cycle + fresh.pooled
        handed_out += fresh.get_codes(remaining)
        assert len(handed_out) == len(set(handed_out)), "a code was handed out twice"
        assert len(handed_out) <= 1024
        assert all(len(code) == 2 for code in handed_out)  # all in the first cycle
        assert fresh.service.status("two").remaining_in_cycle == 0
    finally:
        store.dispose()


def test_pooled_codes_keep_order_and_what_each_was_drawn_from() -> None:
    # Parallel arrays, not an object a code: taking from the front moves a start index,
    # and the taken slots are freed once they are half the lists.
    def drawn(first: int, count: int, cycle: int = 0) -> Drawn:
        values = [7 * (first + i) for i in range(count)]
        codes = [f"C{v}" for v in values]
        positions = list(range(first, first + count))
        return Drawn(codes, values, positions, [cycle] * count, None, None)  # type: ignore[arg-type]

    pool = PooledCodes()
    assert len(pool) == 0 and not pool and pool.take(3) == []
    pool.extend(drawn(0, 10))
    pool.extend(drawn(10, 5, cycle=1))
    assert len(pool) == 15
    assert pool.take(3) == ["C0", "C7", "C14"]
    assert pool.codes()[:2] == ["C21", "C28"] and len(pool) == 12
    assert next(iter(pool.entries())) == (21, 3, 0) and list(pool.entries())[-1] == (98, 14, 1)
    assert pool.take(6) == [f"C{7 * i}" for i in range(3, 9)]  # past half: compacted
    assert len(pool) == 6 and next(iter(pool.entries())) == (63, 9, 0)
    assert pool.take(100) == ["C63", "C70", "C77", "C84", "C91", "C98"] and len(pool) == 0
    pool.extend(drawn(20, 2))
    assert pool.codes() == ["C140", "C147"]
    pool.clear()
    assert len(pool) == 0 and list(pool.entries()) == []
    bad = drawn(0, 3)
    bad.values.pop()
    with pytest.raises(ValueError, match="differ in number"):
        pool.extend(bad)
    assert len(pool) == 0  # a bad draw pools nothing
