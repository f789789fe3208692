"""``coder-ring metrics``: every configured ring's metrics, held or not, for a Prometheus
scrape. Each scrape reads the rings' status from the database and their locks and the
live workers from Redis; nothing is kept between scrapes but when this process first
saw each ring's holder (lock age) or each ring without one (unheld seconds).

Pools are the workers' to tell (their own endpoints): this view sends no task, so a
scrape adds nothing to Flower or to the workers' queues.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType

import click
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from coder_ring.cli_support import HELP, CliError, app_context
from coder_ring.config import RingsFile
from coder_ring.errors import CoderRingError, ConfigError
from coder_ring.metrics.catalog import (
    DATABASE,
    DEFAULT_EXTRAS_SHOWN,
    DEFAULT_METRICS_PORT,
    Families,
    MetricsServer,
)
from coder_ring.registry.client import registry_client
from coder_ring.registry.lease import holder_name, lock_holders
from coder_ring.registry.membership import live_members
from coder_ring.service import RingService
from coder_ring.settings import WorkerSettings
from coder_ring.urls import redact_url

log = logging.getLogger("coder_ring.metrics")


class DatabaseCollector:
    """The database-wide view (prometheus_client's Collector protocol). Thread-safe:
    concurrent scrapes take turns. ``service`` serves the rings of the settings' rings
    file, read again when it changes."""

    def __init__(
        self,
        settings: WorkerSettings,
        service: RingService,
        extras_shown: int = DEFAULT_EXTRAS_SHOWN,
    ) -> None:
        self.redis_url = settings.redis_url
        self.namespace = settings.namespace
        self.lock_ttl = settings.lock_ttl
        self.service = service
        self.extras_shown = extras_shown
        self.redis = registry_client(settings, 2.0)
        self._mutex = threading.Lock()
        self._rings_file = RingsFile(settings.engine.config_path)
        self._rings_file.mark()  # the service was built from it just now
        #: ring -> (member id holding it, monotonic time this process first saw that).
        self._holders: dict[str, tuple[str, float]] = {}
        #: ring -> monotonic time this process first saw it without a holder.
        self._unheld_since: dict[str, float] = {}

    def collect(self) -> Iterator[Metric]:
        """One scrape's families."""
        with self._mutex:
            families = Families(DATABASE)
            self._reload_if_changed()
            rings = sorted(self.service.rings)
            families.add("coder_ring_lock_ttl_seconds", [], self.lock_ttl)
            self._locks(families, rings)
            self._statuses(families, rings)
        yield from families

    def close(self) -> None:
        """Release the Redis connections."""
        self.redis.close()

    def _locks(self, families: Families, rings: Sequence[str]) -> None:
        try:
            tokens = lock_holders(self.redis, self.namespace, rings)
            members = live_members(self.redis, self.namespace)
        except redis.RedisError as error:
            where = redact_url(self.redis_url)
            log.warning("metrics: cannot reach Redis at %s: %s", where, error)
            families.add("coder_ring_redis_up", [], 0)
            return
        families.add("coder_ring_redis_up", [], 1)
        families.add("coder_ring_live_workers", [], len(members))
        now = time.monotonic()
        holders: dict[str, tuple[str, float]] = {}
        unheld: dict[str, float] = {}
        for ring in rings:
            member = tokens.get(ring)
            if member is None:
                since = unheld[ring] = self._unheld_since.get(ring, now)
                families.add("coder_ring_held", [ring], 0)
                families.add("coder_ring_unheld_seconds", [ring], now - since)
                continue
            seen = self._holders.get(ring)
            if seen is None or seen[0] != member:
                seen = (member, now)
            holders[ring] = seen
            families.add("coder_ring_held", [ring], 1)
            families.add("coder_ring_unheld_seconds", [ring], 0)
            families.info("coder_ring_holder", [ring], {"holder": holder_name(member) or ""})
            families.add("coder_ring_lock_age_seconds", [ring], now - seen[1])
        # Only rings configured now, so these stay as small as the rings file.
        self._holders, self._unheld_since = holders, unheld

    def _statuses(self, families: Families, rings: Sequence[str]) -> None:
        for ring in rings:
            try:
                state = self.service.status(ring)
            except CoderRingError as error:
                log.warning("metrics: cannot read the rings database: %s", error)
                families.add("coder_ring_database_up", [], 0)
                return
            shown = [extra.extra for extra in state.extras[: self.extras_shown]]
            families.ring_status(state, extras=shown)
            families.add("coder_ring_extras", [ring], len(state.extras))
            families.add("coder_ring_stored_positions", [ring], state.stored_positions)
        families.add("coder_ring_database_up", [], 1)

    def _reload_if_changed(self) -> None:
        if not self._rings_file.changed():
            return
        try:
            self.service.reload(self._rings_file.rings())
        except ConfigError as error:
            self._rings_file.mark()  # not again until the file changes
            log.error("rings file not reloaded (%s); showing the rings as before", error)


@click.command(context_settings=HELP)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_METRICS_PORT,
    show_default=True,
    help="TCP port of the metrics page.",
)
@click.option(
    "--host",
    "--address",
    "host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on: 127.0.0.1 serves this machine only; 0.0.0.0 every "
    "interface (in a container, for a Prometheus in another one).",
)
@click.option(
    "--extras",
    "extras_shown",
    type=click.IntRange(0, 1000),
    default=DEFAULT_EXTRAS_SHOWN,
    show_default=True,
    help="Extras per ring with series of their own, most recently used first.",
)
@click.option("--once", is_flag=True, help="Print one scrape on stdout and exit.")
@click.pass_context
def metrics(ctx: click.Context, port: int, host: str, extras_shown: int, once: bool) -> None:
    """Serve every configured ring's metrics, held or not, for Prometheus at
    http://HOST:PORT/metrics: fullness of each extra's cycle, holder, lock age, time
    without a holder, live workers. Each scrape reads the database and Redis; pools,
    codes issued, errors, failovers and latency come from the workers
    (CODER_RING_METRICS_PORT). Stops on SIGTERM or Ctrl-C."""
    app = app_context(ctx)
    settings = app.worker_settings()
    collector = DatabaseCollector(settings, app.service(), extras_shown)
    registry = CollectorRegistry()
    registry.register(collector)
    try:
        if once:
            click.echo(generate_latest(registry).decode(), nl=False)
            return
        server = MetricsServer(registry, port, host)
        try:
            server.start()
        except OSError as error:
            why = error.strerror or error
            raise CliError(
                f"cannot listen on --host {host!r} --port {port}: {why} (the host must be an "
                "address of this machine, e.g. 127.0.0.1, or 0.0.0.0 for every interface)"
            ) from None
        click.echo(
            f"serving the ring metrics of namespace {settings.namespace} on {server.url}", err=True
        )
        _wait_for_signal()
        server.stop()
    finally:
        collector.close()


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    while not stop.wait(1.0):
        pass
