"""Issue 19 at 1,000 rings: 3 workers hold them all soon after a cold start (nobody takes
every ring first), a fourth takes its share, one leaves by SIGTERM, while caller threads
ask ring after ring for codes throughout: not one request fails, no code is issued
twice, and the graceful leave loses no code.

Rings have base_length 2 (1,024 codes a cycle) and small pools, the lock TTL is the
tests' 2 s. The figures printed are the ones issue 19 sets goals for (at 1,000 rings
on 3 workers: every ring held within 10 s of the start).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    HolderWatch,
    ProcessGroup,
    caller_app,
    wait_until,
    worker_env,
    write_rings,
)
from tests.servers import private_redis
from tests.system.registry_callers import Callers, check_requests, ledger
from tests.system.registry_cluster import Cluster, printed

pytestmark = [pytest.mark.redis]

MANY = [f"m{index:04d}" for index in range(1000)]
#: Seconds from the three workers' start until every ring is held: issue 19's goal is
#: 10 s; this shared 2-core machine gets twice that.
HELD_WITHIN = 20.0


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(150)
def test_a_thousand_rings_start_join_and_leave(tmp_path: Path, pg_url: str) -> None:
    small = {"base_length": 2, "pool_size": 8}
    rings_file = write_rings(tmp_path / "rings.toml", **dict.fromkeys(MANY, small))
    figures: dict[str, Any] = {}
    with private_redis() as server, printed(figures):
        env = worker_env(redis_url=server.url, database_url=pg_url, rings_file=rings_file)
        group = ProcessGroup(tmp_path / "processes")
        with (
            group,
            caller_app(env) as app,
            HolderWatch(server.url, MANY, interval=0.2) as watch,
        ):
            cluster = Cluster(env, group, watch)
            started = time.monotonic()
            for name in "abc":
                cluster.start(name)
            wait_until(
                lambda: cluster.loads() is not None, HELD_WITHIN, 0.2, what="every ring held"
            )
            figures["3 workers: every ring held, s"] = round(time.monotonic() - started, 2)
            figures["3 workers: moves while forming"] = watch.moves_since(dict.fromkeys(MANY, 0))
            figures["3 workers: balanced"] = cluster.converge("a", "b", "c")
            # No grab-all: every ring went straight to its first holder.
            assert figures["3 workers: moves while forming"] <= 50, figures
            callers = Callers(app, MANY)
            callers.start()
            time.sleep(1.0)

            figures["d joins"] = joined = cluster.join("d", "a", "b", "c")
            assert joined["loads"] == [250, 250, 250, 250], figures

            # SIGTERM one: every ring it held moves with its pool; no request fails.
            callers.pause()
            before = ledger(app, callers, MANY)
            callers.resume()
            leaving = cluster.workers["a"]
            leaving.kill(signal.SIGTERM)
            figures["SIGTERM: 333/333/334"] = cluster.converge("b", "c", "d")
            assert leaving.wait(30) == 0
            callers.pause()
            after = ledger(app, callers, MANY)
            callers.stop()
            lost = {r: after[r]["lost"] - before[r]["lost"] for r in MANY}
            assert not any(lost.values()), {r: n for r, n in lost.items() if n}
            figures["requests"] = len(callers.requests)
            figures["since the start, s"] = round(time.monotonic() - started, 2)

    check_requests(callers.requests, {})
