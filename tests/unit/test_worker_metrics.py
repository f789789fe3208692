"""A worker's codes-issued counter (coder_ring.metrics.worker): what Prometheus's
``rate()`` of it means must survive a ring moving away and extras coming and going."""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from coder_ring.metrics.catalog import OTHER_EXTRAS
from coder_ring.metrics.worker import WorkerMetrics
from coder_ring.ring_server import MAX_POOLED_EXTRAS
from coder_ring.status import RingStatus


def issued_series(metrics: WorkerMetrics) -> dict[str, float]:
    """extra -> coder_ring_codes_issued_total of ring ``r``, as a scrape shows it."""
    text = generate_latest(metrics.registry).decode()
    return {
        sample.labels["extra"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "coder_ring_codes_issued_total" and sample.labels["ring"] == "r"
    }


def no_status(ring: str) -> RingStatus:
    raise AssertionError("not asked for rings no longer served")


def test_a_ring_moving_away_keeps_its_series_as_they_were() -> None:
    # The worker no longer serves the ring (it moved away after these requests): its
    # pools are gone, so nothing of the ring is asked of the database.
    pools: dict[str, dict[str, int]] = {}
    metrics = WorkerMetrics(
        node="w@host",
        member_id="m",
        port=None,
        rings=lambda: ["r"],
        pools=lambda: pools,
        status=no_status,
        healthy=lambda: True,
    )
    for extra in ("", "", "hi"):
        metrics.finished("get_code", "r", extra, "AB", 0.001)
    # The series neither vanish nor move under "(other extras)" (before: they did at
    # the first scrape after a move, and a rate() over the scrapes counted them twice).
    assert issued_series(metrics) == {"": 2, "hi": 1}
    metrics.finished("get_codes", "r", "", ["AB", "CD"], 0.001)
    assert issued_series(metrics) == {"": 4, "hi": 1}


def test_extras_beyond_the_bound_share_one_series() -> None:
    metrics = WorkerMetrics(
        node="w@host",
        member_id="m",
        port=None,
        rings=lambda: ["r"],
        pools=dict,
        status=no_status,
        healthy=lambda: True,
    )
    extras = MAX_POOLED_EXTRAS + 5
    for index in range(extras):
        metrics.finished("get_code", "r", f"k{index}", "AB", 0.001)
    metrics.finished("get_code", "r", "k0", "AB", 0.001)  # an early one keeps its own
    series = issued_series(metrics)
    assert len(series) == MAX_POOLED_EXTRAS + 1
    assert series[OTHER_EXTRAS] == 5 and series["k0"] == 2
    assert sum(series.values()) == extras + 1
