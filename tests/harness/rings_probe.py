"""Probe of a cluster of ``coder-ring worker --all`` processes serving N rings (issue 19).

    python -m tests.harness.rings_probe --rings 1000 --workers 3 [--profile DIR] [--out FILE.json]

Starts a private Redis and a private PostgreSQL (pg_stat_statements loaded) unless
--redis-url/--database-url are given, writes a rings file of N rings (base_length 4),
migrates, starts K workers and measures:

* seconds from the workers' start until every ring's lock is held (and 50 %/90 %);
* Redis commands per second while idle (INFO commandstats delta, per command), the
  PostgreSQL transactions and statements per second while idle, each worker's CPU share;
* each worker's RSS;
* p50/p99 of ``get_code.delay(ring).get()`` on random rings (sequential), and Redis
  commands per request;
* the throughput of a burst of 1,500 requests on random rings (all sent, then all got),
  Redis commands and PostgreSQL transactions per request.

With --profile DIR, py-spy records the coordinator and one other worker (raw collapsed
stacks, plus an SVG) while idle and during the first burst. Numbers from a shared
machine are noisy: --repeat runs the latency and burst phases several times.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import redis

from coder_ring.celery.app import create_app
from coder_ring.celery.demo.processes import Process
from coder_ring.config import RingConfig
from coder_ring.registry.keys import assignment_key, coordinator_key, lock_key
from coder_ring.registry.lease import as_text
from coder_ring.service import RingService
from coder_ring.settings import WorkerSettings
from coder_ring.sql.store import SqlStore
from tests.harness.config import CODER_RING, worker_env, write_rings
from tests.harness.rings_gauges import PY_SPY, Pg, commandstats, cpu_ticks, percentile, rss_mb
from tests.servers import PrivatePostgres, PrivateRedis


class Probe:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="rings_probe_"))
        self.servers: list[Any] = []
        self.workers: list[Process] = []
        self.result: dict[str, Any] = {"rings": args.rings, "workers": args.workers}
        self.log(f"work dir {self.dir}")

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    # -- set-up -----------------------------------------------------------------------

    def servers_up(self) -> tuple[str, str]:
        redis_url, database_url = self.args.redis_url, self.args.database_url
        if not redis_url:
            server = PrivateRedis()
            server.start()
            self.servers.append(server)
            redis_url = server.url
        if not database_url:
            pg = PrivatePostgres(
                {"shared_preload_libraries": "pg_stat_statements", "max_connections": "200"}
            )
            pg.start()
            self.servers.append(pg)
            database_url = pg.url
        return redis_url, database_url

    def close(self) -> None:
        for worker in self.workers:
            worker.destroy()
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.close()
        if not self.args.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def start_worker(self, index: int) -> Process:
        argv = [*CODER_RING, "worker", "--all", "--hostname", f"w{index}@%h"]
        argv += ["--loglevel", self.args.loglevel]
        worker = Process(f"w{index}", argv, self.env, self.dir / f"w{index}.log")
        worker.start()
        self.workers.append(worker)
        return worker

    # -- phases -------------------------------------------------------------------------

    def wait_all_held(self, started: float, timeout: float) -> dict[str, float]:
        keys = [lock_key(self.settings.namespace, ring) for ring in self.rings]
        marks: dict[str, float] = {}
        while time.monotonic() - started < timeout:
            held = sum(1 for value in self.client.mget(keys) if value is not None)
            share = held / len(keys)
            for name, level in (("50%", 0.5), ("90%", 0.9), ("all", 1.0)):
                if name not in marks and share >= level:
                    marks[name] = round(time.monotonic() - started, 2)
            if share >= 1.0:
                return marks
            time.sleep(0.1)
        marks["held_at_timeout"] = held
        return marks

    def wait_balanced(self, started: float, timeout: float) -> dict[str, Any]:
        """Seconds until every ring is held by the member the assignment names and the
        loads differ by at most one (what `coder-ring workers` shows once converged)."""
        keys = [lock_key(self.settings.namespace, ring) for ring in self.rings]
        akey = assignment_key(self.settings.namespace)
        last: dict[str, Any] = {}
        while time.monotonic() - started < timeout:
            holders = [as_text(v) if v else None for v in self.client.mget(keys)]
            assigned = {as_text(k): as_text(v) for k, v in self.client.hgetall(akey).items()}
            loads = Counter(h for h in holders if h)
            mismatched = sum(
                1
                for ring, h in zip(self.rings, holders, strict=True)
                if h is None or assigned.get(ring) != h
            )
            last = {"mismatched": mismatched, "loads": sorted(loads.values())}
            if (
                mismatched == 0
                and len(loads) == min(self.args.workers, len(self.rings))
                and max(loads.values()) - min(loads.values()) <= 1
            ):
                return {"balanced_s": round(time.monotonic() - started, 2), **last}
            time.sleep(0.25)
        return {"balanced_s": None, **last}

    def idle(self, seconds: float, profile: str | None) -> dict[str, Any]:
        spies = self.spy(profile, seconds) if profile else []
        before, xacts = commandstats(self.client), self.pg.xacts()
        issued = int(self.client.info("stats")["total_commands_processed"])
        self.pg.reset()
        ticks = {w.pid: cpu_ticks(w.pid) for w in self.workers}
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        delta = commandstats(self.client) - before
        issued = int(self.client.info("stats")["total_commands_processed"]) - issued - 1
        cpu = {
            w.name: round((cpu_ticks(w.pid) - ticks[w.pid]) / os.sysconf("SC_CLK_TCK") / elapsed, 3)
            for w in self.workers
        }
        for spy in spies:
            spy.wait()
        delta.pop("info", None)
        total = sum(delta.values())
        return {
            "redis_cmds_per_s": round(total / elapsed, 1),
            # Commands clients sent (a script counts once; commandstats also counts the
            # commands a script runs).
            "redis_client_cmds_per_s": round(issued / elapsed, 1),
            "by_command_per_s": {k: round(v / elapsed, 1) for k, v in delta.most_common(12)},
            "pg_xacts_per_s": round((self.pg.xacts() - xacts) / elapsed, 1),
            "pg_top": self.pg.top(),
            "cpu_share_per_worker": cpu,
        }

    def spy(
        self, directory: str, seconds: float, tag: str = "idle"
    ) -> list[subprocess.Popen[bytes]]:
        Path(directory).mkdir(parents=True, exist_ok=True)
        token = self.client.get(coordinator_key(self.settings.namespace))
        leader = int(as_text(token).split("|")[1]) if token else self.workers[0].pid
        others = [w.pid for w in self.workers if w.pid != leader][:1]
        spies = []
        for role, pid in [("coordinator", leader)] + [("member", p) for p in others]:
            base = f"{directory}/n{self.args.rings}-{tag}-{role}"
            spies.append(
                subprocess.Popen(
                    [
                        PY_SPY,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(int(seconds)),
                        "--rate",
                        "100",
                        "--format",
                        "raw",
                        "-o",
                        f"{base}.txt",
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return spies

    def latency(self, count: int) -> dict[str, Any]:
        get_code = self.app.ring_tasks.get_code
        before, xacts = commandstats(self.client), self.pg.xacts()
        times = []
        for _ in range(count):
            ring = random.choice(self.rings)
            started = time.perf_counter()
            get_code.delay(ring).get(timeout=30)
            times.append((time.perf_counter() - started) * 1000)
        delta = commandstats(self.client) - before
        delta.pop("info", None)
        return {
            "p50_ms": round(percentile(times, 0.5), 2),
            "p99_ms": round(percentile(times, 0.99), 2),
            "redis_cmds_per_req": round(sum(delta.values()) / count, 1),
            "pg_xacts_per_req": round((self.pg.xacts() - xacts) / count, 2),
        }

    def burst(self, count: int, profile: str | None, tag: str) -> dict[str, Any]:
        get_code = self.app.ring_tasks.get_code
        before, xacts = commandstats(self.client), self.pg.xacts()
        self.pg.reset()
        spies = self.spy(profile, max(3, self.args.burst_spy), tag) if profile else []
        started = time.perf_counter()
        results = [get_code.delay(random.choice(self.rings)) for _ in range(count)]
        sent = time.perf_counter() - started
        codes = [result.get(timeout=120) for result in results]
        elapsed = time.perf_counter() - started
        delta = commandstats(self.client) - before
        delta.pop("info", None)
        for spy in spies:
            spy.wait()
        assert len(set(codes)) == len(codes) or len(self.rings) > 1, "duplicate codes"
        return {
            "per_s": round(count / elapsed, 1),
            "send_s": round(sent, 2),
            "redis_cmds_per_req": round(sum(delta.values()) / count, 1),
            "by_command_per_req": {k: round(v / count, 2) for k, v in delta.most_common(10)},
            "pg_xacts_per_req": round((self.pg.xacts() - xacts) / count, 2),
            "pg_top": self.pg.top(6),
        }

    def run(self) -> dict[str, Any]:
        args = self.args
        redis_url, database_url = self.servers_up()
        self.rings = [f"r{index:05d}" for index in range(args.rings)]
        rings_file = write_rings(
            self.dir / "rings.toml", **{r: {"base_length": args.base_length} for r in self.rings}
        )
        self.env = worker_env(
            redis_url=redis_url,
            database_url=database_url,
            rings_file=rings_file,
            lock_ttl=args.lock_ttl,
            visibility_timeout=10.0,
            namespace=args.namespace,
            CODER_RING_METRICS_PORT="",
        )
        self.settings = WorkerSettings.from_env(self.env)
        self.client = redis.Redis.from_url(redis_url)
        service = RingService(
            SqlStore(database_url),
            {r: RingConfig(r, base_length=args.base_length) for r in self.rings},
        )
        service.migrate()
        service.close()
        self.pg = Pg(database_url, statements=not args.database_url)
        base = commandstats(self.client)
        started = time.monotonic()
        for index in range(args.workers):
            self.start_worker(index + 1)
        self.result["held_s"] = self.wait_all_held(started, args.held_timeout)
        startup = commandstats(self.client) - base
        self.result["startup_redis_cmds"] = dict(startup.most_common(10))
        self.log(f"held: {self.result['held_s']}")
        if "all" not in self.result["held_s"]:
            return self.result
        self.result["converged"] = self.wait_balanced(started, args.held_timeout)
        converge = commandstats(self.client) - base
        converge.pop("info", None)
        self.result["converge_redis_cmds"] = sum(converge.values())
        self.result["converge_top"] = dict(converge.most_common(8))
        self.log(f"converged: {self.result['converged']}")
        if self.result["converged"]["balanced_s"] is None and not args.unbalanced_ok:
            return self.result
        time.sleep(args.settle)
        self.result["idle"] = self.idle(args.idle, args.profile)
        self.log(f"idle: {self.result['idle']['redis_cmds_per_s']} Redis cmds/s")
        self.result["rss_mb_idle"] = {w.name: round(rss_mb(w.pid), 1) for w in self.workers}
        self.app = create_app(self.settings)
        try:
            for _ in range(20):  # warm the caller up (connections, registry view)
                self.app.ring_tasks.get_code.delay(random.choice(self.rings)).get(timeout=30)
            rounds = []
            for index in range(args.repeat):
                latency = self.latency(args.requests)
                burst = self.burst(
                    args.burst, args.profile if index == 0 else None, f"burst{index}"
                )
                rounds.append({"latency": latency, "burst": burst})
                self.log(
                    f"round {index}: p50 {latency['p50_ms']} ms p99 {latency['p99_ms']} ms, "
                    f"burst {burst['per_s']}/s"
                )
            self.result["rounds"] = rounds
        finally:
            self.app.close()
        self.result["rss_mb_after"] = {w.name: round(rss_mb(w.pid), 1) for w in self.workers}
        self.result["alive"] = [w.alive() for w in self.workers]
        if args.kill:
            self.result["after_sigkill"] = self.kill_one()
        return self.result

    def kill_one(self) -> dict[str, Any]:
        """SIGKILL the first worker; seconds until every ring's lock is held by a live
        worker again, and until the rings are balanced over the others."""
        victim = self.workers[0]
        keys = [lock_key(self.settings.namespace, ring) for ring in self.rings]
        mark = f"|{victim.pid}|"
        victim.kill()
        victim.wait(10)
        started = time.monotonic()
        found: dict[str, Any] = {"ttl": self.args.lock_ttl}
        while time.monotonic() - started < self.args.held_timeout:
            values = self.client.mget(keys)
            if all(value is not None and mark not in as_text(value) for value in values):
                found["held_again_s"] = round(time.monotonic() - started, 2)
                break
            time.sleep(0.1)
        self.workers.remove(victim)
        self.args.workers -= 1
        balanced = self.wait_balanced(started, self.args.held_timeout)
        found["balanced_s"] = balanced["balanced_s"]
        found["loads"] = balanced["loads"]
        return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rings", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--base-length", type=int, default=4)
    parser.add_argument("--lock-ttl", type=float, default=5.0)
    parser.add_argument("--namespace", default="probe")
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--held-timeout", type=float, default=300.0)
    parser.add_argument("--settle", type=float, default=5.0)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--burst", type=int, default=1500)
    parser.add_argument("--burst-spy", type=float, default=8.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--profile", default=None, help="directory for py-spy recordings")
    parser.add_argument("--loglevel", default="WARNING")
    parser.add_argument("--out", default=None)
    parser.add_argument("--kill", action="store_true", help="SIGKILL one worker at the end")
    parser.add_argument("--unbalanced-ok", action="store_true")
    parser.add_argument("--keep-dir", action="store_true")
    args = parser.parse_args()
    probe = Probe(args)
    try:
        result = probe.run()
    except Exception as error:  # noqa: BLE001 - keep what was measured so far
        result = {**probe.result, "error": f"{type(error).__name__}: {error}"}
    finally:
        probe.close()
    text_out = json.dumps(result, indent=1)
    print(text_out)
    if args.out:
        Path(args.out).write_text(text_out)


if __name__ == "__main__":
    main()
