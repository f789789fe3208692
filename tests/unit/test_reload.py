"""coder_ring.celery.reload without processes: the seats a rings file gives, with a host that
records handoffs and reclaims (and can fail one), on the in-memory store. The same
changes under real workers and callers: tests/system/test_reload.py."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import Future
from pathlib import Path

import pytest
import redis

from coder_ring import MemoryStore, RingService
from coder_ring.celery.reload import RingsReload
from coder_ring.celery.seat import RingSeat
from coder_ring.config import RingsFile, load_rings
from coder_ring.registry.keys import lock_key
from coder_ring.registry.member_lease import MemberLease
from coder_ring.ring_server import RingServer
from tests.harness import write_rings

SMALL = {"base_length": 1, "pool_size": 4}


class Host:
    """The worker's side of a reload: seats that never reach Redis (the test sets them
    held), handoffs and reclaims recorded, and the rings in ``failing`` whose handoff
    raises."""

    def __init__(self, path: Path) -> None:
        self.service = RingService(MemoryStore(), load_rings(path))
        self.restriction: frozenset[str] = frozenset()
        self.seats: dict[str, RingSeat] = {}
        self.handed_off: list[str] = []
        self.reclaimed: list[str] = []
        self.failing: set[str] = set()
        self.pending: Future[None] | None = None
        self.client = redis.Redis()  # a lease made with it is never used here

    def new_seat(self, ring: str) -> RingSeat:
        lease = MemberLease(self.client, "test", "me", 2.0).lock(lock_key("test", ring))
        return RingSeat(ring, lease, RingServer(self.service, ring))

    def hand_off(self, seat: RingSeat, why: str) -> None:
        if seat.ring in self.failing:
            raise RuntimeError(f"cannot hand {seat.ring} off")
        seat.handing_off = True
        self.handed_off.append(seat.ring)

    def reclaim(self, seat: RingSeat) -> Future[None]:
        self.reclaimed.append(seat.ring)
        if self.pending is not None:
            return self.pending
        seat.server.deactivate()
        seat.server.activate()
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def hold(self, *rings: str) -> None:
        for ring in rings:
            self.seats[ring].valid_until = time.monotonic() + 60


class Edits:
    """The rings file, each write with a stamp of its own (two writes within one clock
    tick would otherwise look like one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.when = time.time_ns()

    def write(self, **rings: dict[str, int]) -> None:
        write_rings(self.path, **rings)
        self.touch()

    def write_text(self, text: str) -> None:
        self.path.write_text(text)
        self.touch()

    def touch(self) -> None:
        self.when += 1_000_000_000
        os.utime(self.path, ns=(self.when, self.when))


@pytest.fixture
def edits(tmp_path: Path) -> Edits:
    edits = Edits(tmp_path / "rings.toml")
    edits.write(one=SMALL, two=SMALL)
    return edits


def started(edits: Edits) -> tuple[Host, RingsReload]:
    host = Host(edits.path)
    reload = RingsReload(host, RingsFile(edits.path), RingsFile(edits.path).stamp())
    reload.sync()
    host.hold(*host.seats)
    return host, reload


def test_a_ring_added_back_during_its_handoff_keeps_its_seat(edits: Edits) -> None:
    host, reload = started(edits)
    seat = host.seats["one"]
    edits.write(two=SMALL)
    reload.round()
    assert (seat.closed, host.handed_off, host.seats["one"]) == (True, ["one"], seat)
    edits.write(one=SMALL, two=SMALL)  # back before the handoff ended
    reload.round()
    assert host.seats["one"] is seat and not seat.closed
    seat.valid_until, seat.handing_off = 0.0, False  # the handoff ends (lock released)
    reload.handed_off(seat)
    assert host.seats["one"] is seat  # and the next lease round claims it again
    edits.write(two=SMALL)  # removed again, not held now: the seat goes at once
    reload.round()
    assert sorted(host.seats) == ["two"]
    reload.handed_off(seat)  # a handoff ending late drops nothing else
    assert sorted(host.seats) == ["two"]


def test_one_rings_failure_skips_no_other_and_is_retried(
    edits: Edits, caplog: pytest.LogCaptureFixture
) -> None:
    host, reload = started(edits)
    host.failing = {"one"}
    edits.write(three=SMALL)
    reload.round()
    assert "cannot hand one off" in caplog.text and "retried next round" in caplog.text
    assert host.handed_off == ["two"]  # two and three went on
    assert sorted(host.seats) == ["one", "three", "two"]
    host.failing.clear()
    reload.round()  # the file did not change since: the reload is retried
    assert host.handed_off == ["two", "one"]
    assert host.seats["one"].closed and not host.seats["three"].closed


def test_a_bad_file_changes_nothing_and_is_reported_once(
    edits: Edits, caplog: pytest.LogCaptureFixture
) -> None:
    host, reload = started(edits)
    edits.write_text("[rings.one]\npool_sise = 3\n")
    with caplog.at_level(logging.ERROR, "coder_ring.worker"):
        reload.round()
        reload.round()
    assert [r.message.count("unknown key 'pool_sise'") for r in caplog.records] == [1]
    assert sorted(host.seats) == ["one", "two"] and not host.handed_off
    assert not any(seat.closed for seat in host.seats.values())


def test_a_changed_ring_is_claimed_again_until_it_runs_with_its_settings(
    edits: Edits,
) -> None:
    host, reload = started(edits)
    host.seats["one"].server.activate()
    edits.write(one={**SMALL, "pool_size": 6}, two=SMALL)
    pending: Future[None] = Future()
    host.pending = pending  # the reclaim waits behind another transition
    reload.round()
    reload.round()
    assert host.reclaimed == ["one"]  # one at a time
    host.pending = None
    pending.set_result(None)  # it ended without a claim (say the lock was lost meanwhile)
    reload.round()
    reload.round()
    assert host.reclaimed == ["one", "one"]  # again, and then it runs with pool_size 6
    assert host.seats["one"].server.pool_size == 6
