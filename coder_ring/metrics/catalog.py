"""Ring metrics in the Prometheus text format: what they are called and mean, and how a
ring's status becomes series.

Two views serve them (both with :mod:`prometheus_client`, each process its own
registry, every figure read when Prometheus scrapes):

- a worker (``CODER_RING_METRICS_PORT``, :mod:`coder_ring.metrics.worker`): the rings it
  holds, its pools, and what it counted while serving (codes issued, errors,
  failovers and handoffs it took part in, get_code latency);
- ``coder-ring metrics`` (:mod:`coder_ring.metrics.database`): every configured ring, held
  or not, from the database and the locks.

No series is keyed by a caller, a task id or a process of a caller, so the number of
series does not grow with callers or tasks. Extras are callers' strings: a worker
shows only the extras it pools now (at most :data:`~coder_ring.ring_server.MAX_POOLED_EXTRAS`
per ring); ``coder-ring metrics`` shows the most recently used ones
(:data:`DEFAULT_EXTRAS_SHOWN` per ring) and each ring's count of extras. The empty
extra (the default) has an empty ``extra`` label, which Prometheus treats as no label.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from coder_ring.ring_server import MAX_POOLED_EXTRAS
from coder_ring.status import RingStatus

log = logging.getLogger("coder_ring.metrics")

#: Extras per ring that ``coder-ring metrics`` shows, most recently used first.
DEFAULT_EXTRAS_SHOWN = 10
#: Port of ``coder-ring metrics`` unless --port says otherwise.
DEFAULT_METRICS_PORT = 9800
#: The ``extra`` label of codes issued with extras a worker no longer pools. It has a
#: space, so no extra (printable characters without whitespace) can be named like it.
OTHER_EXTRAS = "(other extras)"

WORKER, DATABASE, BOTH = "worker", "database", "both"


@dataclass(frozen=True)
class MetricDef:
    """One metric: its family name (a counter's samples add ``_total``, an info's
    ``_info``, a histogram's ``_bucket``/``_count``/``_sum``), type, labels and help."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str
    #: Which view serves it: WORKER, DATABASE or BOTH.
    where: str

    def samples(self) -> set[str]:
        """The sample names a scrape shows for this metric."""
        if self.kind == "counter":
            return {f"{self.name}_total", f"{self.name}_created"}
        if self.kind == "info":
            return {f"{self.name}_info"}
        if self.kind == "histogram":
            return {f"{self.name}_{part}" for part in ("bucket", "count", "sum", "created")}
        return {self.name}


_RING, _EXTRA = ("ring",), ("ring", "extra")
_PER_EXTRA = (
    "; per extra: on a worker the extras it pools now (at most "
    f"{MAX_POOLED_EXTRAS} per ring), in coder-ring metrics the {DEFAULT_EXTRAS_SHOWN} most "
    "recently used of the ring (coder_ring_extras counts them all)"
)

CATALOG: tuple[MetricDef, ...] = (
    # -- both views: from the ring's status (what `coder-ring status` shows) ----------
    MetricDef(
        "coder_ring_codes_per_cycle", "gauge", _RING, "Codes in one cycle of the ring.", BOTH
    ),
    MetricDef(
        "coder_ring_epoch",
        "gauge",
        _RING,
        "The ring's epoch: +1 at every claim by a new holder, reset and rebuild.",
        BOTH,
    ),
    MetricDef(
        "coder_ring_cycle",
        "gauge",
        _EXTRA,
        "Cycle number of the extra (0: first)" + _PER_EXTRA,
        BOTH,
    ),
    MetricDef(
        "coder_ring_remaining_in_cycle",
        "gauge",
        _EXTRA,
        "Codes of the extra's cycle not drawn from the database yet (a holder's pooled codes "
        "are not counted here)" + _PER_EXTRA,
        BOTH,
    ),
    MetricDef(
        "coder_ring_cycle_used_ratio",
        "gauge",
        _EXTRA,
        "Share of the extra's cycle drawn from the database, 0 to 1 (status: percent used / "
        "100)" + _PER_EXTRA,
        BOTH,
    ),
    MetricDef(
        "coder_ring_drawn_codes",
        "gauge",
        _EXTRA,
        "Codes ever drawn from the database with the extra, pooled ones included and codes "
        "given back not (the issued column of coder-ring status)" + _PER_EXTRA,
        BOTH,
    ),
    MetricDef(
        "coder_ring_holder",
        "info",
        ("ring", "holder"),
        "The worker (node name) holding the ring's lock; no series while nobody holds it.",
        BOTH,
    ),
    MetricDef(
        "coder_ring_lock_age_seconds",
        "gauge",
        _RING,
        "Seconds the current holder has held the ring's lock (coder-ring metrics: since it "
        "first saw that holder).",
        BOTH,
    ),
    MetricDef(
        "coder_ring_database_up",
        "gauge",
        (),
        "1 if the last scrape read the rings database, else 0 (no ring figures then).",
        BOTH,
    ),
    # -- a worker: its pools and what it counted --------------------------------------
    MetricDef(
        "coder_ring_pooled_codes",
        "gauge",
        _EXTRA,
        "Codes this worker drew ahead and holds in the extra's pool (extras it pools now, at "
        f"most {MAX_POOLED_EXTRAS} per ring).",
        WORKER,
    ),
    MetricDef(
        "coder_ring_received_codes",
        "gauge",
        _EXTRA,
        "Codes callers received with the extra (or a lost pool took): drawn minus this "
        "worker's pool, the received column of coder-ring status (extras it pools now).",
        WORKER,
    ),
    MetricDef(
        "coder_ring_codes_issued",
        "counter",
        _EXTRA,
        "Codes this worker handed to callers (get_code, get_codes), by extra for the first "
        f"{MAX_POOLED_EXTRAS} extras of the ring it served; codes of later extras are "
        f'counted under extra="{OTHER_EXTRAS}". A series never moves or drops.',
        WORKER,
    ),
    MetricDef(
        "coder_ring_requests",
        "counter",
        ("ring", "task"),
        "Ring requests this worker ran to an end, failed ones included (task: get_code, "
        "get_codes, refill, reset, status).",
        WORKER,
    ),
    MetricDef(
        "coder_ring_draw_errors",
        "counter",
        ("ring", "kind"),
        "get_code, get_codes and refill requests that failed, by error class (kind).",
        WORKER,
    ),
    MetricDef(
        "coder_ring_requeued",
        "counter",
        _RING,
        "Requests this worker sent back to the ring's queue: it no longer served the ring.",
        WORKER,
    ),
    MetricDef(
        "coder_ring_failovers",
        "counter",
        _RING,
        "Times this worker took the ring over from a holder that did not hand it off (its "
        "lock expired: the holder died, froze or lost Redis).",
        WORKER,
    ),
    MetricDef(
        "coder_ring_handoffs",
        "counter",
        _RING,
        "Times this worker took the ring over from a holder that handed it off (pool given "
        "back, lock released).",
        WORKER,
    ),
    MetricDef(
        "coder_ring_get_code_seconds",
        "histogram",
        _RING,
        "Seconds this worker took to serve a get_code request (successful ones).",
        WORKER,
    ),
    # -- coder-ring metrics: every ring ------------------------------------------------
    MetricDef(
        "coder_ring_extras", "gauge", _RING, "Extras the ring has used (all of them).", DATABASE
    ),
    MetricDef(
        "coder_ring_stored_positions",
        "gauge",
        _RING,
        "Positions the ring stores (at most one per code drawn in the current cycles).",
        DATABASE,
    ),
    MetricDef("coder_ring_held", "gauge", _RING, "1 if a worker holds the ring's lock.", DATABASE),
    MetricDef(
        "coder_ring_unheld_seconds",
        "gauge",
        _RING,
        "Seconds coder-ring metrics has seen the ring without a holder (0 while held).",
        DATABASE,
    ),
    MetricDef(
        "coder_ring_lock_ttl_seconds",
        "gauge",
        (),
        "CODER_RING_LOCK_TTL: a dead holder's ring is taken over within 2x this.",
        DATABASE,
    ),
    MetricDef(
        "coder_ring_live_workers", "gauge", (), "Ring workers alive in the namespace.", DATABASE
    ),
    MetricDef(
        "coder_ring_redis_up",
        "gauge",
        (),
        "1 if the last scrape read the locks' Redis, else 0 (no holder figures then).",
        DATABASE,
    ),
)
METRICS: dict[str, MetricDef] = {metric.name: metric for metric in CATALOG}

#: Latency buckets of get_code: a pooled code takes well under a millisecond, a draw
#: from the database a few.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def names_of(view: str) -> list[str]:
    """Family names a view serves (``view``: WORKER or DATABASE)."""
    return [metric.name for metric in CATALOG if metric.where in {view, BOTH}]


class Families:
    """The families of one scrape, every one of a view present (with no sample when it
    has nothing to say), built from :data:`CATALOG`."""

    def __init__(self, view: str) -> None:
        self._families: dict[str, Metric] = {}
        for name in names_of(view):
            metric = METRICS[name]
            if metric.kind == "histogram":
                continue  # a prometheus_client Histogram serves it
            self._families[name] = _family(metric)

    def add(self, name: str, labels: Sequence[str], value: float) -> None:
        """A sample of gauge or counter ``name`` with label values ``labels``."""
        family = self._families[name]
        assert isinstance(family, GaugeMetricFamily | CounterMetricFamily), name
        family.add_metric(list(labels), value)

    def info(self, name: str, labels: Sequence[str], value: dict[str, str]) -> None:
        """A sample of info metric ``name``."""
        family = self._families[name]
        assert isinstance(family, InfoMetricFamily), name
        family.add_metric(list(labels), value)

    def ring_status(self, state: RingStatus, extras: Iterable[str] | None = None) -> None:
        """The ring-level and per-extra figures of ``state``; per extra only for
        ``extras`` (all the status lists when None)."""
        ring = state.ring
        self.add("coder_ring_codes_per_cycle", [ring], state.total_codes)
        self.add("coder_ring_epoch", [ring], state.epoch)
        shown = None if extras is None else set(extras)
        for extra in state.extras:
            if shown is not None and extra.extra not in shown:
                continue
            labels = [ring, extra.extra]
            self.add("coder_ring_cycle", labels, extra.cycle)
            self.add("coder_ring_remaining_in_cycle", labels, extra.remaining_in_cycle)
            self.add("coder_ring_cycle_used_ratio", labels, extra.percent_used / 100.0)
            self.add("coder_ring_drawn_codes", labels, extra.issued)
            if extra.pooled is not None and "coder_ring_pooled_codes" in self._families:
                self.add("coder_ring_pooled_codes", labels, extra.pooled)
                self.add("coder_ring_received_codes", labels, extra.received or 0)

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._families.values())


def _family(metric: MetricDef) -> Metric:
    if metric.kind == "gauge":
        return GaugeMetricFamily(metric.name, metric.help, labels=list(metric.labels))
    if metric.kind == "counter":
        return CounterMetricFamily(metric.name, metric.help, labels=list(metric.labels))
    if metric.kind == "info":
        return InfoMetricFamily(metric.name, metric.help, labels=list(metric.labels[:-1]))
    raise ValueError(f"no family for {metric.kind} {metric.name}")


class MetricsServer:
    """A registry served over HTTP (``/metrics`` and ``/``) from a daemon thread."""

    def __init__(self, registry: CollectorRegistry, port: int, address: str = "0.0.0.0") -> None:
        self.registry = registry
        self.port = port
        self.address = address
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MetricsServer:
        """Listen (OSError if the port is taken)."""
        self._server, self._thread = start_http_server(self.port, self.address, self.registry)
        return self

    @property
    def url(self) -> str:
        """Where a scrape reads."""
        host = "127.0.0.1" if self.address in {"0.0.0.0", "::", ""} else self.address
        host = f"[{host}]" if ":" in host else host  # an IPv6 address
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop listening (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
