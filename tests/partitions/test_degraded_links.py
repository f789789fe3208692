"""A slow lossy link, a short partition healed before the holder noticed, and late
heartbeats, each dealt to the host holding the most rings under load (issue 20,
faults 4-6); see :mod:`tests.partitions.scenario` for the setting and what is asserted
of every fault.

* Slow, lossy link: 200 ms ± 50 ms on the host's way out and 5 % loss, for 15 s.
* A heal while the cut-off holder still believes it holds its rings: its link goes for
  less than a TTL (its locks may still be valid in Redis) and for just over one (others
  took the rings, and its lease round, waiting on timeouts, has not said so yet). The
  fence: a ring that moved has a higher epoch, and the old holder's pool is dropped
  (never served, never given back) -- 0 duplicates either way.
* Asymmetry: every packet from the host to Redis arrives 1.5 s late (above TTL/3, the
  heartbeat period); Redis's replies and the database are as fast as ever. A renewal
  that lands after its sender gave up on it does nothing
  (:mod:`coder_ring.registry.redis_clock`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.netns import Network
from tests.partitions.scenario import Fault, check, run_faults
from tests.partitions.test_partition import LOCK_TTL

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]
#: Setup, the fault, the heal and the graceful stop, on a busy machine.
TIMEOUT = 120


SLOW = Fault("slow lossy link", lambda net, host: net.slow(host, 200, 50, 0.05), 15.0)
SHORT = Fault("partition shorter than the TTL", Network.cut, 0.7 * LOCK_TTL)
LONGER = Fault("partition just past the TTL", Network.cut, LOCK_TTL + 1.0)
#: Every Redis call of the worker times out, as in a Redis cut; the renewals it sent land
#: 1.5 s late and are refused (their sender gave up on them), so its lease ends by its
#: last answered renewal and the rings move within 2x TTL like after a cut.
LATE = Fault(
    "requests to Redis 1.5 s late",
    lambda net, host: net.slow(host, 1500, target="redis", direction="out"),
    9.0,
)


#: The slow link's victim holds no ring from this (3x TTL) after the fault's start on: two
#: slow rounds, one of them after another member's quick one, then its release (3.7-5.7 s
#: measured); a round whose every call a lost packet timed out counts neither way and
#: adds one. The rings' gap (2x TTL, :func:`check`) bounds what callers see.
DEGRADED_WITHIN = 3 * LOCK_TTL


@pytest.mark.timeout(TIMEOUT + 30)
def test_a_slow_lossy_link_then_late_heartbeats(network: Network, tmp_path: Path) -> None:
    # One cluster for both (a setup less in CI): each fault on the host holding the most
    # rings once they are spread again.
    figures = run_faults(network, tmp_path, [SLOW, LATE])
    check(figures)
    slow = figures.dealt[0]
    # The slow link is found, not merely outlived: its worker gave every ring up at once
    # (pools dropped) within 3x TTL, held none for the rest of the fault, and said it was
    # unhealthy during the fault (its record is written over the slow link: a heartbeat
    # lost there says it a round later).
    assert slow.unhealthy_at is not None, f"{slow.victim} never said it was unhealthy"
    assert slow.unhealthy_at < SLOW.seconds, f"unhealthy after {slow.unhealthy_at:.1f} s"
    for ring in slow.hit:
        given_up = f"{slow.victim} WARNING ring {ring}: given up (Redis answers too slowly)"
        assert any(given_up in line for line in slow.logs), (ring, slow.logs)
    held = [(round(at, 1), rings) for at, _, rings in slow.samples if rings]
    assert all(at <= DEGRADED_WITHIN for at, _ in held), f"{slow.victim} held {held}"


@pytest.mark.timeout(TIMEOUT + 30)
def test_a_heal_before_the_holder_noticed_its_cut(network: Network, tmp_path: Path) -> None:
    figures = run_faults(network, tmp_path, [SHORT, LONGER])
    check(figures)
    for dealt in figures.dealt:
        for ring in dealt.hit:
            taken = [
                line
                for line in dealt.logs
                if f"ring {ring}: lock won" in line and line.split()[2] != dealt.victim
            ]
            if dealt.fault is LONGER:
                assert taken, f"{ring}: no other worker took it during a cut past the TTL"
            if taken:
                # The fence: the new holder claimed a new epoch, which refuses every
                # later draw and give-back of the old one; and the old holder, healed,
                # dropped its pool instead of serving it.
                assert dealt.epochs_after[ring] > dealt.epochs_before[ring], dealt
                dropped = f"{dealt.victim} WARNING ring {ring}: lock lost; pool dropped"
                assert any(dropped in line for line in dealt.logs), dealt.logs
