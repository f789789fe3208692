"""The rings file changing under running workers (issue 17, item 5): a reload applies as a
whole or is retried, and no edit leaves a ring of the file unserved.

``test_a_ring_removed_and_added_back_while_its_handoff_waits_is_served_again`` is the
exact case that broke: the handoff of a removed ring waits for a request in flight (held
by a row lock), the ring comes back meanwhile. ``test_random_rings_file_edits...`` edits
the file at random (seeded; the seed is printed, ``CODER_RING_RELOAD_SEED`` replays it)
under two workers and callers that keep asking.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.harness import (
    TEST_LOCK_TTL,
    ProcessGroup,
    assert_distinct,
    caller_app,
    lock_holders,
    wait_until,
    worker_env,
)
from tests.system.reload_support import (
    Callers,
    Editor,
    code_when_served,
    extra_of,
    issued_by_ring,
    losses_logged,
    rings_text,
    row_locked,
    served_by_ring,
    write_at_once,
)

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

#: A ring of the file is served again within two lock TTLs (the old holder's lock lapses
#: or is released, and a lease round claims it), plus scheduling on a busy machine.
SERVED_BOUND = 2 * TEST_LOCK_TTL + 1.5
FAILED_ROUND = "lease round failed"
RELOADED = r"rings file reloaded|" + FAILED_ROUND


def test_a_ring_removed_and_added_back_while_its_handoff_waits_is_served_again(
    tmp_path: Path, redis_url: str, pg_url: str, group: ProcessGroup
) -> None:
    rings = tmp_path / "rings.toml"
    # Ring `one` has no pool: its request draws from the database, where a row lock holds it.
    write_at_once(rings, rings_text(rings, {"one": 0, "two": 4}))
    # A request held in flight must not be delivered again meanwhile.
    env = worker_env(
        redis_url=redis_url, database_url=pg_url, rings_file=rings, visibility_timeout=60
    )
    worker = group.worker("w", env)
    worker.wait_for_lock("one", timeout=30)
    worker.wait_for_lock("two", timeout=30)
    with caller_app(env) as app:
        codes = [app.ring_tasks.get_code.delay("one").get(timeout=10)]
        with row_locked(pg_url, "one"):
            in_flight = app.ring_tasks.get_code.delay("one")
            worker.wait_for_log(r"Task coder_ring\.get_code\[[^\]]+\] received", count=2)
            time.sleep(0.3)
            assert not in_flight.ready()
            # Removed: the worker hands the ring off, and the handoff waits for the request.
            write_at_once(rings, rings_text(rings, {"two": 4}))
            worker.wait_for_log(r"rings file reloaded: 0 added, 1 removed", timeout=10)
            # Back, in an edit that also adds a ring and changes a pool size.
            write_at_once(rings, rings_text(rings, {"one": 0, "two": 6, "three": 4}))
            worker.wait_for_log(RELOADED, timeout=10, count=2)
            assert not in_flight.ready()
        codes.append(in_flight.get(timeout=10))  # the request ends, then the handoff
        code, took = code_when_served(app, "one", SERVED_BOUND)
        codes.append(code)
        print(f"ring one served again {took:.2f} s after its handoff could end")
        code_when_served(app, "three", SERVED_BOUND)
        wait_until(
            lambda: app.ring_tasks.status.delay("two").get(timeout=10)["pooled"] == 6,
            10,
            what="ring two's pool at its new size",
        )
    assert_distinct(codes)
    assert FAILED_ROUND not in worker.log_text(whole=True)
    assert worker.stop(30) == 0
    # Nothing lost: ring one has no pool, so the database issued exactly what was served.
    assert issued_by_ring(env, ["one"]) == {"one": {"": len(codes)}}


# --------------------------------------------------------------------------------------
# Random edits under callers

NAMES = ["r1", "r2", "r3", "r4"]
#: Worker b may serve only these (so they are in every file the test starts with).
RESTRICTED = ["r1", "r2"]
EDITS = 12
POOL_SIZES = (0, 1, 3, 8, 16)


def test_random_rings_file_edits_under_callers_leave_every_ring_served(
    tmp_path: Path, redis_url: str, pg_url: str, group: ProcessGroup
) -> None:
    seed = int(os.environ.get("CODER_RING_RELOAD_SEED") or random.randrange(2**32))
    print(f"seed {seed} (replay: CODER_RING_RELOAD_SEED={seed})")
    chooser = random.Random(seed)
    rings = tmp_path / "rings.toml"
    good = {"r1": 3, "r2": 8, "r3": 0}
    write_at_once(rings, rings_text(rings, good))
    # No worker dies here: a request held in flight by an edit is never delivered twice.
    env = worker_env(
        redis_url=redis_url, database_url=pg_url, rings_file=rings, visibility_timeout=30
    )
    workers = [group.worker("a", env), group.worker("b", env, RESTRICTED)]
    for name in good:
        wait_until(
            lambda name=name: any(worker.holds(name) for worker in workers),
            30,
            what=f"ring {name} held",
        )
    with caller_app(env) as app:
        callers = Callers(app, NAMES, seed)
        callers.start(3)
        time.sleep(1.0)
        editor = Editor(rings, chooser, good, NAMES, POOL_SIZES, pg_url, callers, workers)
        for _ in range(EDITS):
            kind = editor.edit()
            print(f"  {kind}: {editor.good}")
            time.sleep(chooser.uniform(0.1, 0.8))
        good = editor.good
        if chooser.random() < 0.5:  # the last edit may be a bad one: the workers keep `good`
            editor.write_bad()
            print("  bad (last)")
        settled = time.monotonic()
        # Every ring of the last good file is served (the callers' app reads the file,
        # which may be bad now: ask through an app on a copy of the last good one).
        last_good = tmp_path / "last_good.toml"
        write_at_once(last_good, rings_text(last_good, good))
        with caller_app({**env, "CODER_RING_CONFIG": str(last_good)}) as checker:
            for name in sorted(good):
                code, _ = code_when_served(checker, name, SERVED_BOUND + 2.0, extra=extra_of(name))
                callers.codes[name].append(code)
                print(f"  {name} served {time.monotonic() - settled:.2f} s after the edits")
        callers.stop()
    # Rings no longer in the file are released.
    client = workers[0].redis
    gone = [name for name in NAMES if name not in good]
    wait_until(
        lambda: not any(lock_holders(client, gone).values()) if gone else True,
        SERVED_BOUND,
        what=f"rings {gone} released",
    )
    for worker in workers:
        assert worker.stop(30) == 0  # SIGTERM: the pools go back
    print(f"  codes received: { {k: len(v) for k, v in callers.codes.items()} }")
    print(f"  errors (during the edits): {dict(callers.errors) or 'none'}")
    assert set(callers.errors) <= {"UnknownRing", "ConfigError", "NoWorker", "TimeoutError"}
    assert not [w.name for w in workers if FAILED_ROUND in w.log_text(whole=True)]
    served = served_by_ring(workers, NAMES)
    issued = issued_by_ring(env, NAMES)
    losses = losses_logged(workers)
    for name in NAMES:
        assert_distinct(served[name])
        assert set(callers.codes[name]) <= set(served[name])
        by_extra = issued[name]
        print(f"  {name}: served {len(served[name])}, issued {by_extra}")
        if losses:
            assert sum(by_extra.values()) >= len(served[name])
        else:
            # Graceful moves, removals and pool changes give every pooled code back.
            assert by_extra.get(extra_of(name), 0) == len(served[name])
            assert by_extra.get("", 0) == 0
    if losses:
        print("  codes may be lost (not by a reload):\n    " + "\n    ".join(losses))
