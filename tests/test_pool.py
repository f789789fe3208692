"""The worker's pool (coder_ring.pool.RingServer) on both backends, without Celery."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from coder_ring import ALPHABET, Fenced, RingConfig
from coder_ring.pool import NotHolding, RingServer
from tests.conftest import ServiceFactory

POOL = 8


@pytest.fixture
def server(make_service: ServiceFactory) -> RingServer:
    service = make_service(RingConfig("one", base_length=1, pool_size=POOL))
    ring_server = RingServer(service, "one")
    ring_server.activate()
    return ring_server


def test_pool_serves_codes_in_draw_order_and_gives_the_rest_back(server: RingServer) -> None:
    service = server.service
    assert server.pooled == POOL
    assert service.status("one").remaining_in_cycle == 32 - POOL
    served = [server.get_code() for _ in range(3)]
    assert server.deactivate() == POOL - 3  # 3 < half: no top-up happened
    assert service.status("one").remaining_in_cycle == 32 - 3
    rest = service.get_codes("one", 29)
    assert sorted(served + rest) == sorted(ALPHABET)
    assert service.get_code("one").startswith("X")


def test_top_up_waits_for_the_caller_when_asked(server: RingServer) -> None:
    for _ in range(POOL // 2 + 1):
        server.get_code(top_up=False)
    assert server.pooled == POOL // 2 - 1  # below half, not topped up yet
    server.top_up_if_low()  # in the background
    server.settle()
    assert server.pooled == POOL
    server.get_code()  # the default tops up in the same call when below half
    assert server.pooled == POOL - 1


@pytest.mark.parametrize(("meddle", "prefix"), [({"bump": True}, "X"), ({"extra": "hi"}, "hi")])
def test_background_top_up_is_dropped_when_the_ring_changed_meanwhile(
    server: RingServer, monkeypatch: pytest.MonkeyPatch, meddle: dict[str, Any], prefix: str
) -> None:
    for _ in range(POOL // 2 + 1):
        server.get_code(top_up=False)
    draw = server.service.draw
    meddled: list[str] = []

    def meddle_first(*args: Any, **kwargs: Any) -> Any:
        # The race to provoke: a request bumps the ring, or switches to a new extra,
        # while the background top-up (planned for the old cycle and extra) is drawing.
        if threading.current_thread().name.startswith("refill-") and not meddled:
            meddled.append("")
            meddled.append(server.get_code(top_up=False, **meddle))
        return draw(*args, **kwargs)

    monkeypatch.setattr(server.service, "draw", meddle_first)
    server.top_up_if_low()
    server.settle()
    assert meddled[1:] and server.pooled == 0  # the top-up drew nothing
    assert server.service.status("one").extra == meddle.get("extra", "")
    extra = meddle.get("extra", "")
    codes = meddled[1:] + [server.get_code(extra=extra) for _ in range(31)]
    assert all(code.startswith(prefix) for code in codes)
    assert len(set(codes)) == 32  # the whole new cycle, nothing repeated


def test_pool_never_straddles_two_cycles(server: RingServer) -> None:
    codes = [server.get_code() for _ in range(32)]
    assert sorted(codes) == sorted(ALPHABET)
    assert all(code.startswith("X") for code in (server.get_code() for _ in range(32)))


def test_extra_and_bump_bypass_the_pool_as_if_there_were_none(server: RingServer) -> None:
    assert len(server.get_code(extra="hi")) == 3
    bumped = server.get_code(extra="hi", bump=True)
    assert bumped.startswith("hiX") and len(bumped) == 4
    assert len(server.get_code(extra="")) == 1  # a new extra: first cycle again
    assert server.pooled == POOL  # and the pool follows the ring's current extra


def test_a_claim_by_another_holder_fences_the_server(server: RingServer) -> None:
    for _ in range(POOL):
        server.get_code(top_up=False)  # the pool is empty: the next code needs a draw
    other = RingServer(server.service, "one")
    other.activate()
    with pytest.raises(Fenced):
        server.get_code()
    with pytest.raises(NotHolding):
        server.get_code()
    assert server.deactivate() == 0
