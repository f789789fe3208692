"""Fault injection: no code is issued twice while workers die, freeze and servers restart.

Real processes on servers of the test's own (a private Redis for broker, results,
locks and registry, and a private PostgreSQL; the shared servers are never touched):
two small rings (``alpha`` and ``beta``, 1,024 codes a cycle, pool 32 per extra) served
by four workers (two may serve both rings, one each only one: every ring's holder has
two standbys), and six caller processes (:mod:`tests.faults.caller`) asking for
``get_code`` and ``get_codes`` (50-500) on both rings with the extras ``""``, ``"2026-"``
and ``"hi"`` (each (ring, extra) wraps into its next cycle every few seconds), with a
``.get()`` timeout on every request. Meanwhile the rounds of faults of
:mod:`tests.faults.injections` run; at the end the workers stop gracefully and
:mod:`tests.faults.audit` checks duplicates, lost codes against their bound, request
endings and recovery times.

The figures are printed (run pytest with ``-s``) and written as JSON to
``fault_report.json`` in the test's tmp directory (and to ``$CODER_RING_FAULT_REPORT``).

Long mode, outside CI::

    make faults-long
    # = CODER_RING_FAULT_CODES=100000 .venv/bin/python -m pytest tests/faults -s

The number of codes sets how long it runs: callers ask for about
``CODER_RING_FAULT_RATE`` codes per second in all (default 500), and rounds of faults
repeat until the codes are reached. The CI run (20,000) is one round of ten faults;
100,000 codes take three or four. ``CODER_RING_FAULT_SEED`` replays a run's random
choices (its seed is printed).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from coder_ring.alphabet import encode_base
from coder_ring.config import RingConfig
from coder_ring.ring_server import RingServer
from coder_ring.service import RingService
from coder_ring.sql.store import SqlStore
from tests.faults import caller
from tests.faults.audit import fault_report, print_report, unissued_values
from tests.faults.cluster import CallerCrashed, Cluster, private_servers, run_env
from tests.faults.injections import Injector
from tests.faults.settings import (
    CODES,
    RATE,
    RINGS,
    ROUND_SECONDS_GUESS,
    STEADY_SECONDS,
    settings_figures,
)
from tests.harness import (
    ManagedProcess,
    ProcessGroup,
    caller_app,
    engine_settings,
    wait_until,
    write_rings,
)


def test_a_caller_never_sleeps_a_negative_time(tmp_path: Path) -> None:
    # The deadline passes between two readings of the clock: the old caller checked it,
    # read the clock again and called time.sleep() with a negative length (a crash).
    clock = iter([100.0, 100.2, 100.3])
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        slept.append(seconds)

    stop = tmp_path / "no-stop-file"
    caller.pause_until(100.1, stop, clock=lambda: next(clock), sleep=sleep)
    assert slept == [0.05]
    caller.pause_until(99.0, stop, clock=lambda: next(clock), sleep=sleep)  # past already
    assert slept == [0.05]
    (tmp_path / "stop").touch()
    caller.pause_until(1e9, tmp_path / "stop", clock=lambda: next(clock), sleep=sleep)
    assert slept == [0.05]  # asked to stop: no wait


def test_a_caller_that_crashes_fails_the_run_with_its_traceback(tmp_path: Path) -> None:
    crash = "import time; time.sleep(-0.01)"  # what the old caller did now and then
    traceback = r"[\s\S]*Traceback[\s\S]*ValueError: sleep length must be non-negative"
    with ProcessGroup(tmp_path / "processes") as group:
        servers: Any = None  # not used by the callers' part
        cluster = Cluster(
            tmp_path, {}, group=group, app=None, redis_server=servers, pg_server=servers
        )
        argv = [sys.executable, "-c", crash]
        crashed = ManagedProcess("caller1", argv, {}, tmp_path / "caller1.log")
        group.add(crashed)
        cluster.callers.append(crashed)
        crashed.wait()
        # While the run goes on (checked after every fault, and while waiting)...
        with pytest.raises(CallerCrashed, match=f"caller1 ended by itself{traceback}"):
            cluster.check_callers()
        # ... and when the callers are asked to stop.
        cluster.stop_file.touch()
        with pytest.raises(CallerCrashed, match=f"caller1 exited with 1{traceback}"):
            cluster.stop_callers()


def test_the_audit_finds_duplicates_unissued_and_lost_codes(tmp_path: Path) -> None:
    # The audit on a real database (SQLite) with a real pool server: a clean run passes,
    # and each kind of fault it must catch is caught.
    rings = {name: RingConfig(name, **keys) for name, keys in RINGS.items()}
    service = RingService(SqlStore(f"sqlite:///{tmp_path / 'rings.db'}"), rings)
    service.migrate()
    server = RingServer(service, "alpha")
    server.activate()
    served = server.get_codes(5) + server.get_codes(3, extra="hi")
    assert server.deactivate(give_back=True) > 0  # the rest of the pools goes back
    beta = service.get_codes("beta", 40, extra="2026-")

    def request(ring: str, codes: list[str], extra: str = "") -> dict[str, Any]:
        return {"caller": "c1", "ring": ring, "extra": extra, "size": len(codes), "sent": 0.0,
                "ended": 1.0, "codes": codes, "error": None, "message": "", "stage": "result",
                "id": f"id-{codes[0]}"}  # fmt: skip

    clean = [
        request("alpha", served[:5]),
        request("alpha", served[5:], "hi"),
        request("beta", beta, "2026-"),
    ]
    try:
        report, problems = fault_report([], [], service, clean)
        assert problems == []
        assert report["rings"]["alpha"]["lost"] == report["rings"]["beta"]["lost"] == 0

        free = unissued_values(service, "alpha", "")
        assert free is not None
        planted = encode_base(min(free[0]), 2)  # still unissued in the database
        faulty = [
            request("alpha", served[:5]),
            request("alpha", [served[0]]),  # handed out twice
            request("alpha", [planted]),
            request("alpha", ["2026-A"], "2026-"),  # not a code of that ring
            request("beta", beta[:10], "2026-"),  # 30 issued, received by nobody
        ]
        _, problems = fault_report([], [], service, faulty)
    finally:
        service.close()
    found = "\n".join(problems)
    assert f"1 codes issued twice: [{served[0]!r}]" in found
    assert f"unissued in the database (they could be issued again): [{planted!r}]" in found
    assert "malformed codes ['2026-A']" in found
    assert "ring beta: 30 codes lost > bound 0" in found


def run_rounds(cluster: Cluster, injector: Injector) -> int:
    """Rounds of faults until the callers received CODES codes; how many rounds."""
    rounds = 0
    while True:
        round_started, before = time.monotonic(), cluster.codes_received()
        print(f"\nround {rounds + 1} of faults")
        injector.run_round()
        rounds += 1
        have = cluster.codes_received()
        rate = max(1.0, (have - before) / (time.monotonic() - round_started))
        missing = CODES - have
        if missing <= 0:
            return rounds
        if missing / rate > 0.75 * ROUND_SECONDS_GUESS:
            continue  # long mode: more rounds of faults

        def enough() -> bool:
            cluster.check_callers()
            return cluster.codes_received() >= CODES

        wait_until(enough, 4 * missing / rate + 30, 1, f"{CODES} codes")
        return rounds


def write_report(report: dict[str, Any], tmp_path: Path, records: list[dict[str, Any]]) -> None:
    text = json.dumps(report, indent=2, sort_keys=True)
    (tmp_path / "fault_report.json").write_text(text, encoding="utf-8")
    if os.environ.get("CODER_RING_FAULT_REPORT"):
        Path(os.environ["CODER_RING_FAULT_REPORT"]).write_text(text, encoding="utf-8")
    with (tmp_path / "probes.jsonl").open("w", encoding="utf-8") as probes:
        probes.writelines(json.dumps(r) + "\n" for r in records if r["caller"] == "probe")
    print(f"report: {tmp_path / 'fault_report.json'}")


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.timeout(max(300, 200 + math.ceil(CODES / RATE * 1.6)))
def test_no_duplicates_under_faults(tmp_path: Path) -> None:
    started = time.monotonic()
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        phases[name] = round(time.monotonic() - started - sum(phases.values()), 1)

    with private_servers() as (redis_server, pg_server):
        rings_file = write_rings(tmp_path / "rings.toml", **RINGS)
        env = run_env(redis_server, pg_server, rings_file)
        service = RingService.from_settings(engine_settings(env))
        service.migrate()
        phase("servers")
        group = ProcessGroup(tmp_path / "processes")
        try:
            with group, caller_app(env) as app:
                cluster = Cluster(
                    tmp_path,
                    env,
                    group=group,
                    app=app,
                    redis_server=redis_server,
                    pg_server=pg_server,
                )
                injector = Injector(cluster)
                cluster.start_workers()
                phase("workers")
                cluster.start_callers()
                cluster.prober.idle(STEADY_SECONDS, cluster.check_callers)
                rounds = run_rounds(cluster, injector)
                phase("faults")
                callers = cluster.stop_callers()
                cluster.prober.finish()
                statuses = cluster.statuses()
                died, exits = cluster.stop_workers()
                phase("stop")
                records = cluster.caller_records() + cluster.prober.records
                report, problems = fault_report(
                    injector.faults, cluster.workers.values(), service, records, statuses
                )
        finally:
            service.close()
    phase("audit")
    report["rounds"] = rounds
    report["phases_s"] = phases
    report["seconds"] = round(time.monotonic() - started, 1)
    report["worker_exit_codes"] = exits
    report["caller_exit_codes"] = callers
    report["settings"] = settings_figures()
    print_report(report)
    write_report(report, tmp_path, records)

    hung = [name for name, code in callers.items() if code is None]
    assert not hung, f"caller processes still running after the stop: {hung}"
    assert not died, f"workers that died by themselves: {died}"
    assert all(code == 0 for code in exits.values()), f"graceful stop exit codes: {exits}"
    assert not problems, "\n".join(problems)
    assert report["codes_received"] >= CODES
