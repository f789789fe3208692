"""``coder-ring status`` with a real worker holding pools: the figures say what they
mean. ``issued`` counts every code drawn from the database, pooled ones included;
``received`` (``issued - pooled``) what callers got, beside ``pooled`` (what the worker
holds ahead); ``percent_used`` has one rounding rule, at the top level and per extra;
the table names the default extra ``""`` whether or not it was used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coder_ring.status import PERCENT_DECIMALS
from tests.harness import ProcessGroup, caller_app, run_cli, worker_env, write_rings
from tests.harness.cli import table_rows

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

POOL = 8
CALLS = 3


def test_status_shows_what_callers_received_beside_what_workers_hold(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    env = worker_env(
        redis_url=redis_url,
        database_url=pg_url,
        rings_file=write_rings(
            tmp_path / "rings.toml",
            fresh={"base_length": 2, "pool_size": POOL},
            used={"base_length": 2, "pool_size": POOL},
        ),
    )
    with ProcessGroup(tmp_path / "processes") as group, caller_app(env) as app:
        worker = group.worker("figures", env, ["fresh", "used"])
        worker.wait_for_lock("fresh", 30)
        worker.wait_for_lock("used", 30)
        received = [
            app.ring_tasks.get_code.delay("used", extra="x-").get(timeout=15) for _ in range(CALLS)
        ]
        assert len(set(received)) == CALLS
        done = run_cli(env, "status", "--json")
        assert done.returncode == 0, done.stderr
        rings = {state["ring"]: state for state in json.loads(done.stdout)}
        table = run_cli(env, "status")
    used, fresh = rings["used"], rings["fresh"]
    extras = {extra["extra"]: extra for extra in used["extras"]}
    # Callers got CALLS codes of "x-" and none of "" (its pool was drawn at the claim).
    assert extras["x-"]["received"] == CALLS, extras
    assert extras[""]["received"] == 0, extras
    for extra in used["extras"]:
        assert extra["received"] == extra["issued"] - extra["pooled"], extra
        assert extra["pooled"] > 0, extra  # the worker holds codes ahead
    assert used["received"] == CALLS
    assert used["pooled"] == sum(extra["pooled"] for extra in used["extras"])
    assert fresh["received"] == 0
    # One rounding rule: the top level is the latest extra's figure, as shown per extra.
    for state in rings.values():
        latest = state["extras"][0]
        assert state["extra"] == latest["extra"]
        assert state["percent_used"] == latest["percent_used"], state
        for extra in state["extras"]:
            assert extra["percent_used"] == round(extra["percent_used"], PERCENT_DECIMALS)
            assert len(repr(extra["percent_used"]).partition(".")[2]) <= PERCENT_DECIMALS
    # The table: received beside pooled; the default extra is '""' everywhere.
    assert table.returncode == 0, table.stderr
    rows = table_rows(table.stdout)
    x_row = next(row for row in rows if row[3] == "x-")
    assert x_row[9] == str(CALLS), rows  # received
    assert int(x_row[10]) == extras["x-"]["pooled"], rows  # pooled
    assert all(row[3] != "-" for row in rows), rows
