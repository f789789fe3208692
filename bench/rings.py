"""Many rings side by side (issue 19): 1, 100, 1,000 and 10,000 rings, each served by
fresh ``coder-ring worker --all`` processes as shipped (3 workers; 4 for the largest),
on one Redis server of the run's own (its command counts are the run's alone) and the
run's PostgreSQL schema. Per size: the seconds until every ring is held after the
workers start and until their queues are consumed, a p50 then (each worker is still
filling the pools of the rings it claimed) and the seconds until the workers settle
(pools filled), then p50/p99 of ``get_code`` on a random ring, a burst on random rings,
the workers' RSS and Redis's commands per second while idle; for the largest, a worker
joining (seconds until the rings are balanced over one more) and a SIGKILL of one
(seconds until every ring of it is held again). Any duplicate code fails the run.

:class:`RingCluster` is the measuring core; ``tests/harness/rings_probe.py`` (profiling,
PostgreSQL statements) runs the same phases on servers of its own.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.calls import DuplicateCode, percentile
from bench.worker import BenchWorker, Workers
from coder_ring.celery.app import create_app
from coder_ring.celery.names import ring_queue
from coder_ring.registry.keys import assignment_key
from coder_ring.registry.lease import as_text
from coder_ring.registry.member_lease import lock_holders
from coder_ring.service import RingService
from coder_ring.settings import Settings, WorkerSettings


@dataclass(frozen=True)
class RingsParams:
    """Sizes run; workers per size (``big_workers`` from ``big`` rings on, which also get
    a join and a SIGKILL); calls per size; seconds idle, settling and at most waiting."""

    sizes: tuple[int, ...] = (1, 100, 1_000, 10_000)
    workers: int = 3
    big: int = 10_000
    big_workers: int = 4
    requests: int = 300
    burst: int = 1_500
    idle_s: float = 10.0
    settle_s: float = 5.0
    timeout_s: float = 300.0

    @classmethod
    def quick(cls) -> RingsParams:
        """A few seconds per size: checks that everything works."""
        return cls((1, 100), 2, 100, 2, 30, 100, 2.0, 1.0, 120.0)


#: A worker is settled (its claims' pools filled) below this share of a core.
SETTLED_SHARE = 0.2


def commandstats(client: redis.Redis) -> Counter[str]:
    """Calls per Redis command so far (the commands a script runs included)."""
    info = client.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in info.items()})


class RingCluster:
    """``rings`` rings (``r00000``...) in ``settings``'s rings file and database, and the
    workers serving them; each phase measures one thing."""

    def __init__(self, settings: WorkerSettings, rings: int, workdir: Path, base_length: int = 4):
        self.settings = settings
        self.rings = [f"r{index:05d}" for index in range(rings)]
        path = settings.engine.config_path
        path.write_text("".join(f"[rings.{r}]\nbase_length = {base_length}\n" for r in self.rings))
        service = RingService.from_settings(settings.engine)
        service.migrate()
        service.close()
        self.client = redis.Redis.from_url(settings.redis_url)
        self.workers = Workers(workdir, settings.redis_url)
        self.app = create_app(settings)
        self.codes: set[tuple[str, str]] = set()

    def close(self) -> None:
        """Stop the workers and close the clients."""
        self.app.close()
        self.workers.stop_all()
        self.client.close()

    def start_worker(self) -> BenchWorker:
        """One more worker serving every ring (``w1``, ``w2``...)."""
        name = f"w{len(self.workers.started) + 1}"
        return self.workers.coder_ring(name, ["--all"], self.settings)

    @property
    def alive(self) -> list[BenchWorker]:
        """The workers not killed."""
        return [worker for worker in self.workers.started if worker.alive()]

    def holders(self) -> list[str | None]:
        """Each ring's holder (a member whose lease lives), in ring order."""
        held = lock_holders(self.client, self.settings.namespace, self.rings)
        return [held.get(ring) for ring in self.rings]

    def wait_held(self, started: float, timeout: float, spare: str = "") -> float | None:
        """Seconds from ``started`` until every ring is held (by a member other than
        ``spare``'s pid mark), or None after ``timeout``."""
        while time.monotonic() - started < timeout:
            holders = self.holders()
            if all(h is not None and (not spare or spare not in h) for h in holders):
                return round(time.monotonic() - started, 2)
            time.sleep(0.1)
        return None

    def wait_balanced(self, started: float, timeout: float) -> dict[str, Any]:
        """Seconds from ``started`` until every ring is held by the member the assignment
        names and the live workers' loads differ by at most one."""
        key, members = assignment_key(self.settings.namespace), len(self.alive)
        last: dict[str, Any] = {}
        while time.monotonic() - started < timeout:
            holders = self.holders()
            assigned = {as_text(k): as_text(v) for k, v in self.client.hgetall(key).items()}
            loads = Counter(h for h in holders if h)
            mismatched = sum(
                h is None or assigned.get(r) != h for r, h in zip(self.rings, holders, strict=True)
            )
            last = {"mismatched": mismatched, "loads": sorted(loads.values())}
            spread = max(loads.values(), default=0) - min(loads.values(), default=0)
            if not mismatched and len(loads) == min(members, len(self.rings)) and spread <= 1:
                return {"balanced_s": round(time.monotonic() - started, 2), **last}
            time.sleep(0.25)
        return {"balanced_s": None, **last}

    def wait_consuming(self, started: float, timeout: float) -> float | None:
        """Seconds from ``started`` until every ring's queue is bound (kombu declares a
        queue, a SADD of its binding, as a worker starts consuming it; nobody has
        published yet), or None after ``timeout``."""
        pattern = f"_kombu.binding.{ring_queue(self.settings.namespace, '*')}"
        while time.monotonic() - started < timeout:
            bound = sum(1 for _ in self.client.scan_iter(match=pattern, count=10_000))
            if bound >= len(self.rings):
                return round(time.monotonic() - started, 2)
            time.sleep(0.25)
        return None

    def wait_settled(self, started: float, timeout: float, window: float = 2.0) -> float | None:
        """Seconds from ``started`` until every worker used under :data:`SETTLED_SHARE` of
        a core over ``window`` seconds, or None after ``timeout``. A worker fills the pool
        of each ring it claims in the background: at 10,000 rings that is 2,500 draws each,
        tens of seconds of CPU that a request measured meanwhile shares."""
        while time.monotonic() - started < timeout:
            workers = self.alive
            before = [worker.cpu_seconds() for worker in workers]
            time.sleep(window)
            used = [worker.cpu_seconds() - b for worker, b in zip(workers, before, strict=True)]
            if max(used) < SETTLED_SHARE * window:
                return round(time.monotonic() - started, 2)
        return None

    def idle(self, seconds: float) -> dict[str, Any]:
        """Redis commands per second (all of them, and per command) while nobody calls."""
        before, started = commandstats(self.client), time.monotonic()
        time.sleep(seconds)
        delta, elapsed = commandstats(self.client) - before, time.monotonic() - started
        delta.pop("info", None)
        return {
            "redis_cmds_per_s": round(sum(delta.values()) / elapsed, 1),
            "by_command_per_s": {k: round(v / elapsed, 1) for k, v in delta.most_common(12)},
        }

    def latency(self, count: int) -> dict[str, float]:
        """p50/p99 (ms) of ``get_code`` on a random ring, one at a time."""
        get_code, times = self.app.ring_tasks.get_code, []
        for _ in range(count):
            ring, started = random.choice(self.rings), time.perf_counter()
            self._keep(ring, get_code.delay(ring).get(timeout=60))
            times.append((time.perf_counter() - started) * 1000)
        return {
            "p50_ms": round(percentile(times, 50), 2),
            "p99_ms": round(percentile(times, 99), 2),
        }

    def burst(self, count: int) -> float:
        """Requests per second of ``count`` ``get_code`` on random rings, all sent first."""
        get_code, started = self.app.ring_tasks.get_code, time.perf_counter()
        rings = [random.choice(self.rings) for _ in range(count)]
        results = [(ring, get_code.delay(ring)) for ring in rings]
        for ring, result in results:
            self._keep(ring, result.get(timeout=120))
        return round(count / (time.perf_counter() - started), 1)

    def _keep(self, ring: str, code: str) -> None:
        if (ring, code) in self.codes:
            raise DuplicateCode(f"ring {ring}: code {code!r} was given out twice")
        self.codes.add((ring, code))

    def join(self, timeout: float) -> float | None:
        """Start one more worker; seconds until the rings are balanced over it too."""
        started = time.monotonic()
        self.start_worker()
        balanced: float | None = self.wait_balanced(started, timeout)["balanced_s"]
        return balanced

    def kill_one(self, timeout: float) -> float | None:
        """SIGKILL the first live worker; seconds until every ring is held again."""
        victim = self.alive[0]
        victim.kill()
        victim.wait(10)
        return self.wait_held(time.monotonic(), timeout, spare=f"|{victim.pid}|")


def measure_size(
    settings: WorkerSettings,
    rings: int,
    params: RingsParams,
    workdir: Path,
    log: Callable[[str], None],
) -> dict[str, float]:
    """One size's figures (keys ``rings.n<N>.*``)."""
    big = rings >= params.big
    cluster = RingCluster(settings, rings, workdir)
    prefix, figures = f"rings.n{rings}", {}
    try:
        started = time.monotonic()
        for _ in range(params.big_workers if big else params.workers):
            cluster.start_worker()
        held = cluster.wait_held(started, params.timeout_s)
        if held is None:
            raise TimeoutError(f"{rings} rings not all held after {params.timeout_s} s")
        figures[f"{prefix}.held_s"] = held
        cluster.wait_balanced(started, params.timeout_s)
        consuming = cluster.wait_consuming(started, params.timeout_s)
        figures[f"{prefix}.consuming_s"] = consuming if consuming is not None else float("inf")
        cluster.latency(20)  # the caller warms up (connections, its registry view)
        figures[f"{prefix}.warming_p50_ms"] = cluster.latency(params.requests // 3)["p50_ms"]
        settled = cluster.wait_settled(started, params.timeout_s)
        figures[f"{prefix}.settled_s"] = settled if settled is not None else float("inf")
        time.sleep(params.settle_s)
        idle = cluster.idle(params.idle_s)
        figures[f"{prefix}.idle_cmds_per_s"] = idle["redis_cmds_per_s"]
        figures[f"{prefix}.rss_mb"] = max(w.rss_mb() for w in cluster.alive)
        figures |= {f"{prefix}.{k}": v for k, v in cluster.latency(params.requests).items()}
        figures[f"{prefix}.burst_per_s"] = cluster.burst(params.burst)
        log(f"{rings:,} ring(s): held {held} s, idle {idle['by_command_per_s']}")
        if big:
            figures[f"{prefix}.join_s"] = cluster.join(params.timeout_s) or float("inf")
            figures[f"{prefix}.kill_held_again_s"] = cluster.kill_one(params.timeout_s) or float(
                "inf"
            )
            cluster.burst(params.burst // 10)  # served after both moves, still no duplicate
    finally:
        cluster.close()
    return figures


def run_rings_bench(
    engine: Callable[[int], Settings],
    redis_url: str,
    params: RingsParams,
    workdir: Path,
    log: Callable[[str], None],
) -> dict[str, float]:
    """Every size of ``params`` in turn, each on its own database (``engine(size)``) and
    namespace; the figures, with p50 and burst also relative to the smallest size's."""
    figures: dict[str, float] = {}
    for rings in params.sizes:
        settings = WorkerSettings(
            engine(rings), redis_url, redis_url, redis_url, namespace=f"rings{rings}"
        )
        figures |= measure_size(settings, rings, params, workdir, log)
    base = f"rings.n{params.sizes[0]}"
    for rings in params.sizes[1:]:
        figures[f"rings.n{rings}.p50_vs_1"] = round(
            figures[f"rings.n{rings}.p50_ms"] / figures[f"{base}.p50_ms"], 2
        )
        figures[f"rings.n{rings}.burst_vs_1"] = round(
            figures[f"rings.n{rings}.burst_per_s"] / figures[f"{base}.burst_per_s"], 2
        )
    return figures
