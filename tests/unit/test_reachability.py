"""Reachability: one log line per change of state, retries 1, 2, 4... s apart up to a
bound, and a loop that still tends something keeps its own period."""

from __future__ import annotations

import logging

import pytest

from coder_ring.registry.reachability import Reachability


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_when_lost_one_when_back_and_retries_back_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    reach = Reachability(logging.getLogger("test.reach"), max_wait=5.0, clock=clock)
    caplog.set_level(logging.WARNING, "test.reach")
    assert reach.due() and not reach.down and reach.wait() == 0
    waits = []
    for _ in range(6):
        assert reach.due()
        reach.failed(ConnectionError("refused"))
        waits.append(reach.wait())
        assert not reach.due()
        clock.now += reach.wait()
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert reach.pace(1.5, tending=True) == 1.5  # a lock still ours is tended on time
    reach.failed(ConnectionError("refused"))
    assert reach.pace(1.5, tending=False) == 5.0
    clock.now += 3.0
    reach.reached()
    reach.reached()
    assert reach.pace(1.5, tending=False) == 1.5
    assert [r.getMessage() for r in caplog.records] == [
        "Redis unreachable: refused",
        "Redis reachable again after 25 s",
    ]
