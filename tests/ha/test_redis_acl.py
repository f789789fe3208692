"""A Redis that requires a user and password (ACL): a user limited to its namespace's
keys and channels (:func:`~tests.harness.acl_redis.namespace_rules`, the README's rules)
runs a worker and its callers; a user of another namespace is refused clearly.

The server's ``default`` user is off, so nothing reaches it without a user. Asserted:
codes through ``redis://USER:PASSWORD@...`` URLs (broker, results, locks, registry), a
graceful stop, and nothing refused by the server on the way (``ACL LOG`` is empty: a
refusal that something retried quietly fails the test too); then the same worker and
caller as another namespace's user: the worker exits and the caller's request fails,
each saying the user has no permission.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coder_ring.errors import ConfigError
from coder_ring.service import RingService
from tests.harness import (
    REPO,
    ProcessGroup,
    assert_distinct,
    caller_app,
    engine_settings,
    worker_env,
    write_rings,
)
from tests.harness.acl_redis import PASSWORD, AclRedis, namespace_rules

NAMESPACE = "acl"
RING = "tokens"
TIMEOUT = 10.0


@pytest.mark.slow
@pytest.mark.redis
def test_a_user_limited_to_its_namespace_runs_workers_and_callers(tmp_path: Path) -> None:
    users = {"ring": namespace_rules(NAMESPACE), "neighbour": namespace_rules("neighbour")}
    server = AclRedis(users)
    try:
        server.start()
        env = worker_env(
            redis_url=server.url_of("ring"),
            database_url=f"sqlite:///{tmp_path / 'rings.db'}",
            rings_file=write_rings(tmp_path / "rings.toml", **{RING: {"pool_size": 8}}),
            namespace=NAMESPACE,
        )
        service = RingService.from_settings(engine_settings(env))
        service.migrate()
        service.close()
        with ProcessGroup(tmp_path / "processes") as group:
            with caller_app(env) as app:
                worker = group.worker("acl1", env, rings=[RING])
                worker.wait_for_lock(RING, timeout=30)
                tasks = app.ring_tasks
                codes = [tasks.get_code.delay(RING).get(timeout=TIMEOUT) for _ in range(10)]
                codes += tasks.get_codes.delay(RING, 20).get(timeout=TIMEOUT)
                status = tasks.status.delay(RING).get(timeout=TIMEOUT)
            assert len(codes) == 30
            assert_distinct(codes)
            assert status["holder"] == worker.hostname
            assert worker.stop() == 0
            assert "gave" in worker.log_text() and "NoPermission" not in worker.log_text()
            assert server.denials() == []

            # The neighbour's user may not touch this namespace's keys.
            outsider = {**env, **{k: server.url_of("neighbour") for k in REDIS_VARIABLES}}
            intruder = group.worker("intruder", outsider, rings=[RING])
            assert intruder.wait(60) != 0
            assert re.search(r"NoPermission\w*: .*no permissions", intruder.log_text())
            with caller_app(outsider) as app, pytest.raises(ConfigError) as no:
                app.ring_tasks.get_code.delay(RING)
            message = str(no.value)
            assert "refused its user" in message and "no permissions" in message, message
            assert "Redis ACL" in message and PASSWORD not in message, message
            assert server.denials(), "the server refused nothing"
    finally:
        server.close()


REDIS_VARIABLES = ("CODER_RING_BROKER_URL", "CODER_RING_RESULT_BACKEND", "CODER_RING_REDIS_URL")


def test_the_readme_gives_these_rules() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = readme.split("### Redis ACL", 1)[1].split("```", 2)[1]
    assert block.split()[:4] == ["user", "coder", "on", ">PASSWORD"], block
    assert sorted(block.split()[4:]) == sorted(namespace_rules("default").split())
