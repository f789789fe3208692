"""Where the worker layer broke before, each through its public surfaces: deployments
sharing a Redis, a worker that cannot reach its database, an operator's reset and
rebuild while a worker serves with a pool, the rings file changing under a running
worker, delayed requests, and a direct caller beside a worker's pool.

(Callers in threads and asyncio code: tests/system/test_threads.py.)
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from coder_ring import ALPHABET, InvalidInput, NoWorker, RingConfig, UnknownRing
from tests.harness import (
    TEST_LOCK_TTL,
    ProcessGroup,
    assert_distinct,
    caller_app,
    lock_holder,
    members,
    queue_length,
    ring_calls,
    run_cli,
    service_for,
    wait_until,
    worker_env,
    write_rings,
)
from tests.harness.shared import PG_ADMIN_URL

pytestmark = [pytest.mark.redis]

RING = "one"
POOL = 8
TIMEOUT = 10.0
#: Seconds beyond the promised bound (2x the lock TTL, or one lease round) that thread
#: and process scheduling may add on a busy machine.
ALLOWANCE = 1.0
get, status = ring_calls(RING, TIMEOUT)


def first_code(app: Any, ring: str, timeout: float) -> str:
    """A code of ``ring`` as soon as a worker may serve it (NoWorker until one does)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            code: str = app.ring_tasks.get_code.delay(ring).get(timeout=TIMEOUT)
            return code
        except NoWorker:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def codes_until_wrap(app: Any, limit: int = 40) -> list[str]:
    """Codes of ring ``one`` (base_length 1) up to and including the first ``X`` code."""
    codes: list[str] = []
    for _ in range(limit):
        codes.append(get(app))
        if len(codes[-1]) == 2:
            return codes
    raise AssertionError(f"no wrap within {limit} codes: {codes}")


# --------------------------------------------------------------------------------------
# Namespaces


@pytest.mark.slow
@pytest.mark.postgres
def test_two_deployments_and_the_demo_share_one_redis(
    tmp_path: Path, redis_url: str, pg_url: str, sqlite_url: str, group: ProcessGroup
) -> None:
    # Same ring name, one per deployment: 3 characters in "default", 2 in "other".
    env = worker_env(
        redis_url=redis_url,
        database_url=pg_url,
        rings_file=write_rings(tmp_path / "a.toml", widget={"base_length": 3}),
    )
    other = worker_env(
        redis_url=redis_url,
        database_url=sqlite_url,
        rings_file=write_rings(tmp_path / "b.toml", widget={"base_length": 2}),
        namespace="other",
    )
    mine, theirs = group.worker("mine", env, ["widget"]), group.worker("theirs", other, ["widget"])
    mine.wait_for_lock("widget", timeout=30)
    theirs.wait_for_lock("widget", timeout=30)
    get_widget, status_widget = ring_calls("widget", TIMEOUT)
    lonely = worker_env(
        redis_url=redis_url, database_url=sqlite_url, rings_file=tmp_path / "a.toml", namespace="x"
    )
    with caller_app(env) as app, caller_app(other) as other_app, caller_app(lonely) as nobody:
        codes = [get_widget(app) for _ in range(5)]
        other_codes = [get_widget(other_app) for _ in range(5)]
        # A namespace nobody serves has no worker, whatever other namespaces run.
        with pytest.raises(NoWorker, match=r"'widget' in namespace 'x'"):
            nobody.ring_tasks.get_code.delay("widget")
        before = status_widget(app)
        token = mine.lock_token("widget")

        # `coder-ring demo` on the same Redis: its worker serves its own "widget".
        demo = run_cli(
            {"CODER_RING_BROKER_URL": redis_url}, "demo", "--dir", str(tmp_path / "demo")
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert f"using the one answering at {redis_url}" in demo.stdout
        demo_codes = [line.strip() for line in demo.stdout.splitlines() if line.startswith("  ")]
        assert len([code for code in demo_codes if len(code) == 4]) >= 10, demo.stdout

        after = status_widget(app)
        assert mine.lock_token("widget") == token  # the same process holds it, untouched
        assert (after["pooled"], after["epoch"]) == (before["pooled"], before["epoch"])
        assert after["remaining_in_cycle"] == before["remaining_in_cycle"]
        other_pooled = status_widget(other_app)["pooled"]
    # Each worker served exactly its own callers' codes, from its own database: each
    # database issued those 5 codes and its worker's pool, nothing else.
    assert mine.codes_served() == codes and all(len(code) == 3 for code in codes)
    assert theirs.codes_served() == other_codes and all(len(code) == 2 for code in other_codes)
    for deployment, pooled in ((env, after["pooled"]), (other, other_pooled)):
        service = service_for(deployment)
        try:
            assert service.status("widget").extras[0].issued == 5 + pooled
        finally:
            service.close()
    assert [m.node for m in members(env)] == [mine.hostname]
    assert [m.node for m in members(other)] == [theirs.hostname]


# --------------------------------------------------------------------------------------
# A worker that cannot reach its database


@pytest.mark.slow
@pytest.mark.postgres
def test_a_worker_with_a_wrong_database_url_never_serves(
    tmp_path: Path, redis_url: str, pg_admin: Engine, sqlite_url: str, group: ProcessGroup
) -> None:
    rings = write_rings(tmp_path / "rings.toml", **{RING: {"base_length": 2, "pool_size": POOL}})
    env = worker_env(redis_url=redis_url, database_url=sqlite_url, rings_file=rings)
    # Valid syntax, a server that answers, a database that does not exist.
    wrong = PG_ADMIN_URL.rsplit("/", 1)[0] + "/coder_ring_no_such_database"
    bad = group.worker("bad", {**env, "CODER_RING_DATABASE_URL": wrong}, [RING])
    wait_until(lambda: members(env), 30, 0.1, "the bad worker to register")
    with caller_app(env) as app:
        # Its only worker is unhealthy: a caller is told so at once.
        with pytest.raises(NoWorker, match=r"bad@\S+ serves one, database unreachable"):
            app.ring_tasks.get_code.delay(RING)

        good = group.worker("good", env, [RING])
        good.wait_ready(30)
        ready = time.monotonic()
        codes = [first_code(app, RING, 4 * TEST_LOCK_TTL)]
        flowing = time.monotonic() - ready
        print(f"first code {flowing:.2f} s after the good worker was ready")
        assert flowing <= 2 * TEST_LOCK_TTL + ALLOWANCE
        codes += [get(app) for _ in range(20)]

        listed = run_cli(env, "workers", "--json")
        assert listed.returncode == 0, listed.stderr
        by_node = {row["node"]: row for row in json.loads(listed.stdout)}
    assert by_node[bad.hostname]["healthy"] is False
    assert by_node[bad.hostname]["holding"] == []
    assert by_node[good.hostname]["healthy"] is True
    assert by_node[good.hostname]["holding"] == [RING]
    assert_distinct(codes)
    assert good.codes_served() == codes
    assert bad.tasks_received() == 0
    assert "lock won" not in bad.log_text()
    assert "coder_ring_no_such_database" in bad.log_text()  # it says why


# --------------------------------------------------------------------------------------
# Reset and rebuild while a worker serves


@pytest.mark.slow
def test_reset_and_rebuild_reach_the_serving_worker(
    tmp_path: Path, redis_url: str, sqlite_url: str, group: ProcessGroup
) -> None:
    rings = write_rings(tmp_path / "rings.toml", **{RING: {"base_length": 1, "pool_size": POOL}})
    env = worker_env(redis_url=redis_url, database_url=sqlite_url, rings_file=rings)
    worker = group.worker("serving", env, [RING])
    worker.wait_for_lock(RING, timeout=30)
    service = service_for(env)
    try:
        with caller_app(env) as app:
            # In the second cycle, with a pool of second-cycle ("X") codes: a code of the
            # old pool after a reset would have two characters.
            codes_until_wrap(app)
            assert status(app)["pooled"] > 0

            reset = run_cli(env, "reset", RING, "--yes")
            assert reset.returncode == 0, reset.stderr
            assert "dropped its pool and serves the new state" in reset.stdout, reset.stdout
            assert "warning" not in reset.stdout
            assert len(get(app)) == 1  # the very next code: the new first cycle

            # From Python (no notice): the worker notices within one lease round.
            codes_until_wrap(app)
            record = service.reset(RING)
            started = time.monotonic()
            wait_until(
                lambda: (service.store.ring_record(RING) or record).epoch > record.epoch,
                5,
                0.02,
                "the worker to claim the reset ring",
            )
            noticed = time.monotonic() - started
            print(f"reset from Python: the worker claimed it again after {noticed:.2f} s")
            assert noticed <= TEST_LOCK_TTL / 3 + ALLOWANCE
            assert len(get(app)) == 1

            # A new shape in the rings file, then `rebuild`: no restart, no RingMismatch.
            write_rings(rings, **{RING: {"base_length": 2, "pool_size": POOL}})
            rebuild = run_cli(env, "rebuild", RING, "--yes")
            assert rebuild.returncode == 0, rebuild.stderr
            assert "dropped its pool and serves the new state" in rebuild.stdout, rebuild.stdout
            rebuilt = [get(app) for _ in range(40)]
            assert all(len(code) == 2 and set(code) <= set(ALPHABET) for code in rebuilt)
            assert_distinct(rebuilt)
            report = status(app)
            assert (report["base_length"], report["total_codes"]) == (2, 1024)
    finally:
        service.close()
    assert worker.alive()


# --------------------------------------------------------------------------------------
# The rings file changes under a running worker


@pytest.mark.slow
def test_rings_added_and_removed_without_a_restart(
    tmp_path: Path, redis_url: str, sqlite_url: str, group: ProcessGroup
) -> None:
    one = {"base_length": 1, "pool_size": POOL}
    rings = write_rings(tmp_path / "rings.toml", one=one)
    env = worker_env(redis_url=redis_url, database_url=sqlite_url, rings_file=rings)
    worker = group.worker("all", env, cli=True)  # `coder-ring worker --all`
    worker.wait_for_lock(RING, timeout=30)
    with caller_app(env) as app:
        handed_out = [get(app) for _ in range(3)]
        pooled = status(app)["pooled"]
        assert pooled > 0

        write_rings(rings, one=one, two={"base_length": 2, "pool_size": 4})
        started = time.monotonic()
        wait_until(lambda: lock_holder(redis_url, "two") == worker.hostname, 10, 0.05, "two")
        print(f"ring added: held after {time.monotonic() - started:.2f} s")
        # The caller app was made before the change: it reads the file again.
        code = app.ring_tasks.get_code.delay("two").get(timeout=TIMEOUT)
        assert len(code) == 2 and set(code) <= set(ALPHABET)

        write_rings(rings, two={"base_length": 2, "pool_size": 4})
        started = time.monotonic()
        wait_until(lambda: lock_holder(redis_url, RING) is None, 10, 0.05, "one released")
        print(f"ring removed: released after {time.monotonic() - started:.2f} s")
        with pytest.raises(UnknownRing, match=r"'one'.*two"):
            app.ring_tasks.get_code.delay(RING)
        assert app.ring_tasks.get_code.delay("two").get(timeout=TIMEOUT) != code
    (member,) = members(env)
    assert (member.rings, member.holding) == (("two",), ("two",))
    wait_until(lambda: worker.gave_back(RING) == pooled, 5, 0.05, "the pool given back")
    # Back in the database: only the codes handed out count as issued.
    removed = service_for(env, {RING: RingConfig(RING, **one)})
    try:
        state = removed.status(RING)
    finally:
        removed.close()
    assert (state.extras[0].issued, state.remaining_in_cycle) == (3, 32 - 3)
    assert worker.codes_served()[:3] == handed_out


# --------------------------------------------------------------------------------------
# Delayed requests


def test_countdown_and_eta_are_refused_and_nothing_is_sent(
    tmp_path: Path, redis_url: str, sqlite_url: str
) -> None:
    rings = write_rings(tmp_path / "rings.toml", **{RING: {"base_length": 1}})
    env = worker_env(redis_url=redis_url, database_url=sqlite_url, rings_file=rings)
    soon = datetime.now(UTC) + timedelta(seconds=5)
    with caller_app(env) as app:
        tasks = app.ring_tasks
        for task, args in [(tasks.get_code, (RING,)), (tasks.get_codes, (RING, 3))]:
            with pytest.raises(InvalidInput, match=r"countdown=5 .*cannot be delayed"):
                task.apply_async(args, countdown=5)
            with pytest.raises(InvalidInput, match=r"eta=datetime.*cannot be delayed"):
                task.apply_async(args, eta=soon)
    assert queue_length(redis_url, RING) == 0


# --------------------------------------------------------------------------------------
# A direct caller beside a worker's pool, a refill and a restart


@pytest.mark.slow
@pytest.mark.postgres
def test_direct_draws_beside_a_pool_then_a_refill_and_a_restart_repeat_nothing(
    tmp_path: Path, redis_url: str, pg_url: str, group: ProcessGroup
) -> None:
    rings = write_rings(tmp_path / "rings.toml", **{RING: {"base_length": 2, "pool_size": POOL}})
    env = worker_env(redis_url=redis_url, database_url=pg_url, rings_file=rings)
    first = group.worker("first", env, [RING])
    first.wait_for_lock(RING, timeout=30)
    second = group.worker("second", env, [RING])  # a standby, to drain the cycle later
    with caller_app(env) as app:
        # A claim fills the pool in the background (a request that comes first draws for
        # itself instead): counted from a full pool.
        wait_until(lambda: status(app)["pooled"] == POOL, TIMEOUT, 0.1, what="a full pool")
        codes = [get(app) for _ in range(3)]
        assert status(app)["pooled"] == POOL - 3
        direct = run_cli(env, "get", RING, "--direct", "-n", "4")
        assert direct.returncode == 0, direct.stderr
        codes += direct.stdout.split()
        # Beat's refill: the pool draws what it misses, after the direct draw.
        app.ring_tasks.refill.delay(RING)
        first.wait_for_log(r"Task coder_ring\.refill\[[^\]]+\] succeeded", timeout=TIMEOUT)
        assert status(app)["pooled"] == POOL
        assert first.stop(30) == 0  # SIGTERM: the pool goes back where it can
        # The 3 codes the refill drew go back; the 5 drawn before the direct draw cannot
        # (their positions are behind it now): they are lost, never repeated.
        assert first.gave_back(RING) == 3

        second.wait_for_lock(RING, timeout=30)
        while True:  # drain the first cycle (1,024 codes of 2 characters)
            batch = app.ring_tasks.get_codes.delay(RING, 100).get(timeout=TIMEOUT)
            codes += [code for code in batch if len(code) == 2]
            if any(len(code) == 3 for code in batch):
                break
    print(f"first cycle: {len(codes)} codes issued of 1024")
    assert_distinct(codes)
    assert len(codes) == 1024 - (POOL - 3)
