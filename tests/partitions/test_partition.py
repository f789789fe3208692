"""A full partition of the host that holds the most rings, under load, then a heal.

Three hosts (network namespaces), each running ``coder-ring worker --all``; six rings,
lock TTL 3 s; a private Redis and PostgreSQL on the veths. The test's own traffic
(:mod:`tests.partitions.traffic`) asks every ring for a code ten times a second from
the root namespace, which no cut reaches. Once the rings are spread, the host holding
the most of them loses its veth for 10 s (both ways: Redis, the broker and the database
at once), then the link comes back.

Asserted: no code reaches two requests, every request ends with a code or a clear
error within its timeout, each ring's longest stretch without a code is at most 2x the
TTL, and each ring serves a request sent after the cut and one sent after the heal
within 2x the TTL plus the visibility timeout (issue 20's targets; measured 2.9-4.1 s
and 2.8-4.0 s, against 6 s and 10 s).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from coder_ring.service import RingService
from tests.harness import (
    TEST_VISIBILITY_TIMEOUT,
    ProcessGroup,
    caller_app,
    engine_settings,
    worker_env,
    write_rings,
)
from tests.harness.netns import Network
from tests.harness.netns_servers import NetnsWorker, host_env, veth_servers
from tests.partitions.traffic import Outcome, Traffic, problems, ring_report

RINGS = {f"r{i}": {"base_length": 2, "pool_size": 16} for i in range(1, 7)}
LOCK_TTL = 3.0
VISIBILITY = TEST_VISIBILITY_TIMEOUT
TASK_EXPIRES = 12.0  # a request nobody took by then fails (RequestExpired), drawing nothing
REQUEST_TIMEOUT = 15.0
SLACK = 3.0  # on a busy 2-core machine, a poll or two late
CUT_SECONDS = 10.0
WARM_SECONDS = 2.0
#: Long enough after the heal for the victim to rejoin and get rings back (about 2x TTL).
AFTER_HEAL = 2 * LOCK_TTL + 2.0
GAP_TARGET = 2 * LOCK_TTL
SERVE_TARGET = 2 * LOCK_TTL + VISIBILITY
LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): (\w+)/[^\]]*\] (.*)$", re.M)
LEASE_LINES = re.compile(r"lock|handed off|unreachable|registry|database", re.I)
WON_OR_LOST = re.compile(r"lock (won|lost)|handed off")


def held(worker: NetnsWorker) -> list[str]:
    return [ring for ring in RINGS if worker.holds(ring)]


def wait_for_spread(workers: list[NetnsWorker], timeout: float = 40.0) -> dict[str, list[str]]:
    """Wait until every ring has a holder and every worker holds one, unchanged for a
    second (the coordinator has spread them); what each worker holds then."""
    deadline = time.monotonic() + timeout
    last: dict[str, list[str]] = {}
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        for worker in workers:
            if not worker.alive():
                raise RuntimeError(f"{worker.name} exited:\n{worker.log_tail()}")
        now = {worker.name: held(worker) for worker in workers}
        if now != last:
            last, stable_since = now, time.monotonic()
        spread = all(now.values()) and sum(map(len, now.values())) == len(RINGS)
        if spread and time.monotonic() - stable_since >= 1.0:
            return now
        time.sleep(0.1)
    return last  # not spread in time: the test goes on with what it has


def log_since(worker: NetnsWorker, wall: float, pattern: re.Pattern[str]) -> list[str]:
    """The worker's log lines from ``wall`` (time.time()) on that match ``pattern`` (or
    are warnings), each with its time relative to ``wall``."""
    lines = []
    for stamp, level, text in LOG_TIME.findall(worker.log_text(whole=True)):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp() - wall
        shown = level != "INFO" or pattern.search(text)
        if at >= -0.5 and shown and "Task coder_ring" not in text:
            lines.append(f"  {at:+7.2f} s {worker.name} {level:7} {text[:140]}")
    return lines


def report(
    outcomes: list[Outcome], figures: dict[str, Any], rings: dict[str, dict[str, Any]], fault: float
) -> None:
    errors: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.error:
            errors[outcome.error] = errors.get(outcome.error, 0) + 1
    print(f"\n==== full partition of {figures['victim']} for {CUT_SECONDS:g} s ====")
    for key, value in figures.items():
        print(f"{key}: {value}")
    print(f"requests: {len(outcomes)}, errors: {errors or 'none'}")
    examples: dict[str, str] = {}
    for outcome in outcomes:
        if outcome.error:
            examples.setdefault(outcome.error, outcome.message)
    for error, message in examples.items():
        print(f"  e.g. {error}: {message}")
    for outcome in outcomes:
        if outcome.error:
            print(
                f"  {outcome.ring} sent at {outcome.sent - fault:+.2f} s, "
                f"{outcome.error} after {outcome.ended - outcome.sent:.2f} s"
            )
    print(
        f"per ring (targets: gap <= {GAP_TARGET:g} s, served again <= {SERVE_TARGET:g} s; "
        "times from the cut):"
    )
    for ring, row in rings.items():
        gap_ok = row["longest_gap_s"] <= GAP_TARGET
        after = [row["served_after_fault_s"], row["served_after_heal_s"]]
        serve_ok = all(t is not None and t <= SERVE_TARGET for t in after)
        print(
            f"  {ring} {'HIT' if row['hit'] else '   '} codes {row['codes']:4}, longest gap "
            f"{row['longest_gap_s']:5.2f} s from {row['gap_from_s']:+6.2f} s "
            f"[{'ok' if gap_ok else 'MISSED'}], served after cut {after[0]} s, "
            f"after heal {after[1]} s [{'ok' if serve_ok else 'MISSED'}]"
        )


def cluster_env(
    redis_url: str, database_url: str, rings_file: Path, namespace: str
) -> dict[str, str]:
    """The workers' environment of the partition tests (their lock TTL, visibility timeout
    and task expiry), its database migrated once, before three workers try at once."""
    env = worker_env(
        redis_url=redis_url,
        database_url=database_url,
        rings_file=rings_file,
        lock_ttl=LOCK_TTL,
        visibility_timeout=VISIBILITY,
        task_expires=TASK_EXPIRES,
        namespace=namespace,
    )
    service = RingService.from_settings(engine_settings(env))
    try:
        service.migrate()
    finally:
        service.close()
    return env


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_a_ring_holder_cut_off_for_10_s(network: Network, tmp_path: Path) -> None:
    started = time.monotonic()
    hosts = network.add_hosts(3)
    with veth_servers(network) as (redis_server, pg_server):
        rings_file = write_rings(tmp_path / "rings.toml", **RINGS)
        env = cluster_env(redis_server.url, pg_server.url, rings_file, "partitions")
        with ProcessGroup(tmp_path / "processes") as group, caller_app(env) as app:
            workers = []
            for index, host in enumerate(hosts, 1):
                name = f"w{index}"
                worker = NetnsWorker(host, name, host_env(env, host), group.directory / name)
                group.add(worker)
                workers.append(worker)
            spread = wait_for_spread(workers)
            setup = time.monotonic() - started
            traffic = Traffic(app, list(RINGS), timeout=REQUEST_TIMEOUT)
            traffic.start()
            time.sleep(WARM_SECONDS)

            victim = max(workers, key=lambda w: len(held(w)))
            hit = held(victim)
            since = time.monotonic() - WARM_SECONDS
            network.cut(victim.host)
            # From when both rules are in (a request sent while they go in may be served).
            fault, fault_wall = time.monotonic(), time.time()
            time.sleep(CUT_SECONDS / 2)
            during = {w.name: held(w) for w in workers}
            time.sleep(fault + CUT_SECONDS - time.monotonic())
            network.heal(victim.host)
            heal = time.monotonic()
            time.sleep(AFTER_HEAL)
            after = {w.name: held(w) for w in workers}
            until = time.monotonic()
            traffic.stop()
            logs = log_since(victim, fault_wall, LEASE_LINES)
            for other in workers:
                if other is not victim:
                    logs += log_since(other, fault_wall, WON_OR_LOST)
            died = [w.name for w in workers if not w.alive()]

    outcomes = traffic.outcomes
    rings = {
        ring: {
            "hit": ring in hit,
            **ring_report(outcomes, ring, since=since, until=until, fault=fault, heal=heal),
        }
        for ring in RINGS
    }
    figures = {
        "victim": f"{victim.name} on {victim.host.netns} ({victim.host.ip})",
        "rings hit": hit,
        "holders before / mid-cut / after the heal": f"{spread} / {during} / {after}",
        "settings": f"lock TTL {LOCK_TTL:g} s, visibility timeout {VISIBILITY:g} s, "
        f"task expires {TASK_EXPIRES:g} s, request timeout {REQUEST_TIMEOUT:g} s",
        "seconds": f"setup {setup:.1f}, whole test {time.monotonic() - started:.1f}",
        "longest request": f"{max(o.ended - o.sent for o in outcomes):.2f} s",
    }
    report(outcomes, figures, rings, fault)
    print(f"the workers' logs from the cut on (s from the cut; heal at +{heal - fault:.2f}):")
    print("\n".join(sorted(logs, key=lambda line: float(line.split()[0]))) or "  (nothing)")

    assert not died, f"workers that died: {died}"
    assert traffic.served(), "no code was served at all"
    found = problems(outcomes, REQUEST_TIMEOUT, SLACK)
    assert not found, "\n".join(found)
    assert_targets(rings)


def assert_targets(rings: dict[str, dict[str, Any]]) -> None:
    """Every ring's longest gap and its first codes after the fault and after the heal
    within issue 20's targets."""
    for ring, row in rings.items():
        assert row["longest_gap_s"] <= GAP_TARGET, (ring, row)
        for moment in ("served_after_fault_s", "served_after_heal_s"):
            assert row[moment] is not None and row[moment] <= SERVE_TARGET, (ring, row)
