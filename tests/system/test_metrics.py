"""Ring metrics: the real endpoints (a worker's CODER_RING_METRICS_PORT and `coder-ring
metrics`) scraped over HTTP, parsed with prometheus_client's parser and checked against
`coder-ring status` after known draws (a cycle wrap, extras, a failover and a handoff).
Series that stay constant over 1,000 CLI calls and flower quiet about beat's refills are
in ``test_metrics_flower.py``; the alert rules, the dashboard and compose in
``test_metrics_deploy.py``.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from coder_ring.metrics.catalog import DATABASE, DEFAULT_EXTRAS_SHOWN, OTHER_EXTRAS, WORKER
from coder_ring.ring_server import MAX_POOLED_EXTRAS
from coder_ring.service import RingService
from tests.harness import (
    ProcessGroup,
    WorkerProcess,
    caller_app,
    engine_settings,
    free_port,
    ring_calls,
    wait_until,
)
from tests.system.metrics_scrape import (
    RING,
    MetricsProcess,
    label_values,
    ring_env,
    scrape,
    served_names,
    status_json,
    value,
    wait_for_a_round,
)

WEIRD = 'we"ird\\{x}'  # quotes, a backslash and braces survive the text format
get, _ = ring_calls(RING, 10.0)


# --------------------------------------------------------------------------------------
# The endpoints against `coder-ring status`


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_scrapes_match_status_after_a_wrap_extras_and_an_error(
    tmp_path: Path, redis_url: str, pg_url: str, group: ProcessGroup
) -> None:
    port = free_port()
    env = ring_env(tmp_path, redis_url, pg_url, CODER_RING_METRICS_PORT=str(port))
    worker = group.worker("served", env, rings=[RING])
    metrics = MetricsProcess(env, group.directory / "metrics.log", free_port())
    group.add(metrics)
    worker.wait_for_lock(RING)
    with caller_app(env) as app:
        plain = [get(app) for _ in range(40)]  # 32 codes per cycle: wraps into cycle 1
        hi = [get(app, extra="hi") for _ in range(3)]
        hi += app.ring_tasks.get_codes.delay(RING, 5, extra="hi").get(timeout=10)
        weird = [get(app, extra=WEIRD) for _ in range(2)]
        with pytest.raises(Exception, match="AB") as refused:
            get(app, extra="AB")  # only alphabet characters: ExtraConflict in the worker
    assert type(refused.value).__name__ == "ExtraConflict"
    assert sum(len(code) == 2 and code[0] == "X" for code in plain) == 8
    assert len(hi) == 8 and len(weird) == 2

    [report] = status_json(env)  # the status task settles the pool: figures hold still
    served = scrape(f"http://127.0.0.1:{port}/metrics", worker)
    database = scrape(metrics.url, metrics)
    assert set(served) - {"coder_ring_get_code_seconds_created"} == served_names(WORKER)
    assert set(database) == served_names(DATABASE)
    assert {extra["extra"] for extra in report["extras"]} == {"", "hi", WEIRD}
    assert report["holder"] == worker.hostname
    for families in (served, database):
        assert value(families, "coder_ring_codes_per_cycle", ring=RING) == 32
        assert value(families, "coder_ring_epoch", ring=RING) == report["epoch"]
        assert label_values(families, "coder_ring_holder_info", "holder") == {report["holder"]: 1}
        assert value(families, "coder_ring_database_up") == 1
        for extra in report["extras"]:
            labels = {"ring": RING, "extra": extra["extra"]}
            assert value(families, "coder_ring_cycle", **labels) == extra["cycle"]
            remaining = value(families, "coder_ring_remaining_in_cycle", **labels)
            assert remaining == extra["remaining_in_cycle"]
            ratio = value(families, "coder_ring_cycle_used_ratio", **labels)
            assert ratio == pytest.approx(extra["percent_used"] / 100)
            assert value(families, "coder_ring_drawn_codes", **labels) == extra["issued"]
    assert [extra["cycle"] for extra in report["extras"] if extra["extra"] == ""] == [1]
    for extra in report["extras"]:
        pooled = value(served, "coder_ring_pooled_codes", ring=RING, extra=extra["extra"])
        assert pooled == extra["pooled"]
        # What callers received beside what the worker holds ahead, as status says.
        received = value(served, "coder_ring_received_codes", ring=RING, extra=extra["extra"])
        assert received == extra["received"] == extra["issued"] - extra["pooled"]
    issued = label_values(served, "coder_ring_codes_issued_total", "extra")
    assert issued == {"": 40, "hi": 8, WEIRD: 2}
    assert value(served, "coder_ring_get_code_seconds_count", ring=RING) == 45
    assert value(served, "coder_ring_requests_total", ring=RING, task="get_code") == 46
    assert value(served, "coder_ring_requests_total", ring=RING, task="get_codes") == 1
    assert value(served, "coder_ring_requests_total", ring=RING, task="status") == 1
    kinds = label_values(served, "coder_ring_draw_errors_total", "kind")
    assert kinds == {"ExtraConflict": 1}
    assert value(served, "coder_ring_failovers_total", ring=RING) == 0
    assert value(database, "coder_ring_extras", ring=RING) == 3
    assert value(database, "coder_ring_stored_positions", ring=RING) == report["stored_positions"]
    assert value(database, "coder_ring_held", ring=RING) == 1
    assert value(database, "coder_ring_unheld_seconds", ring=RING) == 0
    assert value(database, "coder_ring_lock_ttl_seconds") == 2.0
    assert value(database, "coder_ring_live_workers") == 1
    assert value(database, "coder_ring_redis_up") == 1

    # Extras are callers' strings: the series per extra stay bounded.
    extras = MAX_POOLED_EXTRAS + 6
    with caller_app(env) as app:
        for index in range(extras):
            get(app, extra=f"k-{index:02}")
    served = scrape(f"http://127.0.0.1:{port}/metrics", worker)
    database = scrape(metrics.url, metrics)
    pooled = label_values(served, "coder_ring_pooled_codes", "extra")
    # The first extras to come keep their pools; the later ones are drawn exactly.
    first = {"", "hi", WEIRD} | {f"k-{index:02}" for index in range(MAX_POOLED_EXTRAS - 3)}
    assert set(pooled) == first
    issued = label_values(served, "coder_ring_codes_issued_total", "extra")
    assert set(issued) == set(pooled) | {OTHER_EXTRAS}
    assert issued[OTHER_EXTRAS] == 9 and sum(issued.values()) == 40 + 8 + 2 + extras
    # coder-ring metrics: the extras the status lists first (latest written first: an
    # evicted pool's give-back counts), once the give-backs of the evictions landed.
    service = RingService.from_settings(engine_settings(env))

    def latest_shown() -> bool:
        latest = {extra.extra for extra in service.status(RING).extras[:DEFAULT_EXTRAS_SHOWN]}
        families = scrape(metrics.url, metrics)
        return set(label_values(families, "coder_ring_cycle", "extra")) == latest

    try:
        wait_until(latest_shown, 10, 0.2, "the latest extras in the scrape")
    finally:
        service.close()
    database = scrape(metrics.url, metrics)
    assert len(label_values(database, "coder_ring_cycle", "extra")) == DEFAULT_EXTRAS_SHOWN
    assert value(database, "coder_ring_extras", ring=RING) == 3 + extras


# --------------------------------------------------------------------------------------
# Failover and handoff


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_a_failover_and_a_handoff_move_the_holder_and_count(
    tmp_path: Path, redis_url: str, pg_url: str, group: ProcessGroup
) -> None:
    ports = {"first": free_port(), "second": free_port()}
    env = ring_env(tmp_path, redis_url, pg_url)
    metrics = MetricsProcess(env, group.directory / "metrics.log", free_port())
    group.add(metrics)

    def worker(name: str, port: int) -> tuple[WorkerProcess, str]:
        started = group.worker(name, {**env, "CODER_RING_METRICS_PORT": str(port)}, [RING])
        return started, f"http://127.0.0.1:{port}/metrics"

    def holder() -> str:
        families = scrape(metrics.url, metrics)
        return next(iter(label_values(families, "coder_ring_holder_info", "holder")), "")

    first, _ = worker("first", ports["first"])
    first.wait_for_lock(RING)
    second, second_url = worker("second", ports["second"])
    wait_for_a_round(redis_url, second)
    assert holder() == first.hostname
    epoch = value(scrape(metrics.url), "coder_ring_epoch", ring=RING)

    first.kill(signal.SIGKILL)  # no handoff: its lock expires
    second.wait_for_lock(RING, timeout=20)
    wait_until(lambda: holder() == second.hostname, 10, 0.2, "the new holder in the scrape")
    after = scrape(second_url, second)
    assert value(after, "coder_ring_failovers_total", ring=RING) == 1
    assert value(after, "coder_ring_handoffs_total", ring=RING) == 0
    assert label_values(after, "coder_ring_holder_info", "holder") == {second.hostname: 1}
    assert value(scrape(metrics.url), "coder_ring_epoch", ring=RING) == (epoch or 0) + 1
    assert status_json(env)[0]["holder"] == second.hostname

    third, third_url = worker("third", ports["first"])  # the dead worker's port is free
    wait_for_a_round(redis_url, third)
    second.stop()  # SIGTERM: pool given back, lock released, RELEASED notice sent
    third.wait_for_lock(RING, timeout=20)
    wait_until(lambda: holder() == third.hostname, 10, 0.2, "the third holder in the scrape")
    taken = scrape(third_url, third)
    assert value(taken, "coder_ring_handoffs_total", ring=RING) == 1
    assert value(taken, "coder_ring_failovers_total", ring=RING) == 0
