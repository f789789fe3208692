"""Probe of a cluster of ``coder-ring worker --all`` processes serving N rings (issue 19):
the phases of :class:`bench.rings.RingCluster` (``python -m bench --only rings``), with
what a profile needs besides.

    python -m tests.harness.rings_probe --rings 1000 --workers 3 [--profile DIR] [--out FILE.json]

Starts a private Redis and a private PostgreSQL (pg_stat_statements loaded) unless
--redis-url/--database-url are given, writes a rings file of N rings (base_length 4),
migrates, starts K workers and measures:

* seconds from the workers' start until every ring's lock is held, and balanced;
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
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.rings import RingCluster, commandstats
from coder_ring.registry.keys import coordinator_key
from coder_ring.registry.lease import as_text
from coder_ring.settings import Settings, WorkerSettings
from tests.harness.rings_gauges import PY_SPY, Pg, cpu_ticks
from tests.servers import PrivatePostgres, PrivateRedis


class Probe:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir = Path(tempfile.mkdtemp(prefix="rings_probe_"))
        self.servers: list[Any] = []
        self.result: dict[str, Any] = {"rings": args.rings, "workers": args.workers}
        self.log(f"work dir {self.dir}")

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

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
        if hasattr(self, "cluster"):
            self.cluster.close()
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.close()
        if not self.args.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def counted(self, phase: Callable[[], Any]) -> dict[str, Any]:
        """``phase()``'s result, with the Redis commands, PostgreSQL transactions and worker
        CPU it took."""
        before, xacts = commandstats(self.cluster.client), self.pg.xacts()
        ticks = {w.name: cpu_ticks(w.pid) for w in self.cluster.alive}
        self.pg.reset()
        started = time.monotonic()
        value = phase()
        elapsed = time.monotonic() - started
        delta = commandstats(self.cluster.client) - before
        delta.pop("info", None)
        clock = os.sysconf("SC_CLK_TCK") * elapsed
        return {
            "value": value,
            "redis_cmds": sum(delta.values()),
            "by_command": dict(delta.most_common(12)),
            "pg_xacts": self.pg.xacts() - xacts,
            "pg_top": self.pg.top(8),
            "cpu_share": {w.name: round((cpu_ticks(w.pid) - ticks[w.name]) / clock, 3)
                          for w in self.cluster.alive},
        }  # fmt: skip

    def spy(self, seconds: float, tag: str) -> list[subprocess.Popen[bytes]]:
        """py-spy on the coordinator and one other worker for ``seconds``."""
        if not self.args.profile:
            return []
        Path(self.args.profile).mkdir(parents=True, exist_ok=True)
        token = self.cluster.client.get(coordinator_key(self.args.namespace))
        pids = [w.pid for w in self.cluster.alive]
        leader = int(as_text(token).split("|")[1]) if token else pids[0]
        roles = [("coordinator", leader), *[("member", p) for p in pids if p != leader][:1]]
        return [
            subprocess.Popen(
                [PY_SPY, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                 "--rate", "100", "--format", "raw", "--nonblocking",
                 "-o", f"{self.args.profile}/n{self.args.rings}-{tag}-{role}.txt"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for role, pid in roles
        ]  # fmt: skip

    def run(self) -> dict[str, Any]:
        args = self.args
        redis_url, database_url = self.servers_up()
        engine = Settings(database_url, self.dir / "rings.toml")
        settings = WorkerSettings(
            engine, redis_url, redis_url, redis_url, args.namespace, lock_ttl=args.lock_ttl
        )
        self.cluster = cluster = RingCluster(settings, args.rings, self.dir, args.base_length)
        self.pg = Pg(database_url, statements=not args.database_url)
        started = time.monotonic()

        def start() -> dict[str, Any]:
            for _ in range(args.workers):
                cluster.start_worker()
            held = cluster.wait_held(started, args.held_timeout)
            return {"held_s": held, **cluster.wait_balanced(started, args.held_timeout)}

        self.result["start"] = self.counted(start)
        self.log(f"start: {self.result['start']['value']}")
        if self.result["start"]["value"]["balanced_s"] is None and not args.unbalanced_ok:
            return self.result
        time.sleep(args.settle)
        spies = self.spy(args.idle, "idle")
        self.result["idle"] = self.counted(lambda: cluster.idle(args.idle))
        for spy in spies:
            spy.wait()
        self.log(f"idle: {self.result['idle']['value']}")
        self.result["rss_mb_idle"] = {w.name: round(w.rss_mb(), 1) for w in cluster.alive}
        cluster.latency(20)  # the caller warms up (connections, its registry view)
        rounds = []
        for index in range(args.repeat):
            latency = self.counted(lambda: cluster.latency(args.requests))
            spies = self.spy(args.burst_spy, f"burst{index}") if index == 0 else []
            burst = self.counted(lambda: cluster.burst(args.burst))
            for spy in spies:
                spy.wait()
            rounds.append({"latency": latency, "burst": burst})
            self.log(f"round {index}: {latency['value']}, burst {burst['value']}/s")
        self.result["rounds"] = rounds
        self.result["rss_mb_after"] = {w.name: round(w.rss_mb(), 1) for w in cluster.alive}
        if args.kill:
            killed = time.monotonic()
            held_again = cluster.kill_one(args.held_timeout)
            balanced = cluster.wait_balanced(killed, args.held_timeout)
            self.result["after_sigkill"] = {"held_again_s": held_again, **balanced}
        return self.result


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
