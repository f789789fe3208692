"""Red team 5: a ring worker whose Redis user has 0.2.0's ACL rules (no ``+rpop``). The
CHANGELOG's upgrade note promises it "logs that its doorbell script was refused and
waits on every ring queue, as 0.2.0 did". It does not wait on a ring that arrives after
that: kombu's queue cycle is updated, in kombu's basic_consume, from the doorbell
channel's cached list of queues of *before* the new one (:mod:`coder_ring.celery.doorbell`,
``active_queues``), and the sweep is off once the doorbell is given up. A request to the
new ring waits until its caller gives up, although the worker holds and consumes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coder_ring.service import RingService
from tests.harness import caller_app, engine_settings, wait_until, worker_env, write_rings
from tests.harness.acl_redis import AclRedis, namespace_rules

pytestmark = [pytest.mark.slow, pytest.mark.redis]

NAMESPACE = "acl5"
TIMEOUT = 10.0


@pytest.mark.timeout(150)
def test_a_worker_without_its_doorbell_serves_a_ring_added_later(
    tmp_path: Path, group: Any
) -> None:
    rules = namespace_rules(NAMESPACE).replace("+rpop ", "")  # 0.2.0's README rules
    server = AclRedis({"ring": rules})
    rings_path = tmp_path / "rings.toml"
    first = {ring: {"base_length": 2, "pool_size": 8} for ring in ("a", "b")}
    try:
        server.start()
        env = worker_env(
            redis_url=server.url_of("ring"),
            database_url=f"sqlite:///{tmp_path / 'rings.db'}",
            rings_file=write_rings(rings_path, **first),
            namespace=NAMESPACE,
        )
        service = RingService.from_settings(engine_settings(env))
        service.migrate()
        service.close()
        worker = group.worker("old-acl", env)
        worker.wait_ready()
        wait_until(lambda: worker.holds("a") and worker.holds("b"), 30.0, 0.2)
        with caller_app(env) as app:
            tasks = app.ring_tasks
            assert tasks.get_code.delay("a").get(timeout=TIMEOUT)
            worker.wait_for_log("doorbell's script was refused", timeout=10)
            # A ring arrives: the rings file gets a third one.
            write_rings(rings_path, **first, c={"base_length": 2, "pool_size": 8})
            wait_until(lambda: worker.holds("c"), 30.0, 0.2)
            wait_until(lambda: "c" in app.configured_rings(), 10.0, 0.2)
            result = tasks.get_code.delay("c")
            try:
                code = result.get(timeout=TIMEOUT)
            except Exception as error:  # noqa: BLE001 - the request waits in ring c's queue
                queued = server.client().llen(f"coder_ring.{NAMESPACE}.c")
                raise AssertionError(
                    f"ring c, held by the worker, served nothing in {TIMEOUT} s ({error!r}); "
                    f"its queue holds {queued}\n{worker.log_tail(20)}"
                ) from None
            assert code
    finally:
        server.close()
