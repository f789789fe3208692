"""Red team 6: the epoch check was skipped after a slow round (since put back).

A reset or rebuild made through the Python API (``RingService.reset``, direct mode)
sends no Redis notice: the README promises the worker notices it "within a lease round
(each worker checks its rings' epochs)" and drops its pool before serving another code.
Since abffd01 a round that was slow skips that check. When Redis is slow for *everyone*
(a busy Redis: the case LinkHealth deliberately does not degrade), every round is slow,
``suspect`` stays true for as long as Redis stays slow, and the check never runs: the
worker goes on handing out its pool, drawn in the old cycle, after the reset. The new
cycle issues those very codes again (nothing fences a pool served from memory: the DB
fence only refuses the worker's *writes*), so two codes handed out after the reset are
equal: a duplicate that the reset's own semantics ("may repeat earlier codes") does not
cover.

Fixed: the epoch check runs every round again, slow or not.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from coder_ring import RingService, SqlStore
from coder_ring.config import load_rings
from coder_ring.profanity import space_of
from tests.servers import private_redis
from tests.system.test_redteam_slow_redis import busy, runtime_on

pytestmark = [pytest.mark.redis]

TTL = 3.0


@pytest.mark.timeout(120)
def test_reset_while_redis_is_slow_for_everyone_drops_the_pool_within_a_round(
    tmp_path: Path,
) -> None:
    """Shows: with Redis slow for every client (each call up to 0.2 s, within the client's
    timeout; no member degrades), a ``RingService.reset`` (no notice) is not noticed by
    the worker for as long as Redis stays slow: 2 TTL after the reset it still serves its
    pre-reset pool, and those codes are issued again by the new cycle (direct draws after
    the reset). Severity: duplicate (two codes handed out after the reset are equal);
    also the README's "within a lease round" is broken."""
    rings = tmp_path / "rings.toml"
    rings.write_text("[rings.r]\nbase_length = 1\npool_size = 16\n")
    database = f"sqlite:///{tmp_path / 'rings.db'}"
    namespace = f"rt6{uuid.uuid4().hex[:10]}"
    with private_redis() as server:
        worker = runtime_on(server.url, database, rings, namespace, "a")
        worker.service.migrate()
        direct = RingService(SqlStore(database), load_rings(rings))
        stop = threading.Event()
        # One client's 0.2 s scripts back to back: each call waits up to 0.2 s (within the
        # client's TTL/6 timeout, no lock lapses), a round's calls 0.6-1.3 s in all.
        slow = [threading.Thread(target=busy, args=(server.url, 0.2, stop))]
        try:
            worker.start()
            seat = worker.seats["r"]
            deadline = time.monotonic() + 20
            while not (seat.can_serve() and seat.server.epoch is not None):
                assert time.monotonic() < deadline, "never held"
                time.sleep(0.05)
            first = seat.serve(lambda s: s.get_code())
            seat.server.top_up_if_low()
            seat.server.settle()
            seat.server.refill()
            assert seat.server.pooled >= 10, seat.server.pooled
            for thread in slow:
                thread.start()
            deadline = time.monotonic() + 15
            while not (worker.watch.seconds or 0.0) > worker.link.limit:  # a slow round
                assert time.monotonic() < deadline, "Redis never counted slow"
                time.sleep(0.05)
            direct.reset("r")  # Python API: a new epoch, no Redis notice
            reset_at = time.monotonic()
            time.sleep(2 * TTL)  # two TTLs: six lease rounds
            assert seat.can_serve(), "the worker lost its lock (test needs it held)"
            after = [seat.serve(lambda s: s.get_code()) for _ in range(4)]
            waited = time.monotonic() - reset_at
            # The new cycle, drawn directly after the reset: every code of the space once.
            fresh = direct.get_codes("r", space_of(1, False).total)
        finally:
            stop.set()
            for thread in slow:
                if thread.is_alive():
                    thread.join()
            worker.stop(give_back=True)
            direct.close()
    repeated = sorted(set(after) & set(fresh))
    assert not repeated, (
        f"{waited:.1f} s after a reset (Redis slow for everyone, epoch check skipped) the "
        f"worker still served pre-reset pool codes {after} (first code {first}); the new "
        f"cycle handed out {repeated} again: duplicates after the reset"
    )
