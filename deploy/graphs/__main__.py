"""``python -m deploy.graphs [--minutes M] [--output DIR] [--ports FIRST]``: run two
workers, ``coder-ring metrics`` and Prometheus under caller load with a ring move and a
failover, and screenshot the graphs (``DIR/graph-*.png``, default ``docs/``). Needs
Debian's ``prometheus``, ``chromium`` and ``redis-server``; touches no other server."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from deploy.graphs.run import RATES, Plan, run_graphs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.graphs", description=__doc__)
    parser.add_argument("--minutes", type=float, default=4.0, help="load time (default 4)")
    parser.add_argument("--output", type=Path, default=Path("docs"), metavar="DIR")
    parser.add_argument("--scrape-interval", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument(
        "--ports", type=int, metavar="FIRST", help="use FIRST..FIRST+5 (default: free ports)"
    )
    args = parser.parse_args(argv)
    if args.minutes < 1:
        parser.error(
            f"--minutes must be at least 1 (the graphs span whole minutes), not {args.minutes:g}"
        )
    started = time.monotonic()
    # SIGTERM ends the run as Ctrl-C does (a background job ignores SIGINT):
    # every process it started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def log(line: str) -> None:
        print(f"{time.monotonic() - started:6.1f}s  {line}", flush=True)

    plan = Plan(args.minutes * 60, args.scrape_interval, args.ports)
    paths, run = run_graphs(args.output, plan, log)
    rates = ", ".join(f"{ring} {rate:g}/s" for ring, rate in RATES.items())
    print(f"\ncallers: get_code at {rates}")
    for moment, what in run.events:
        print(f"{moment:%H:%M:%S} UTC  {what}")
    codes = sum(len(codes) for codes in run.calls.codes.values())
    errors = ", ".join(f"{n} {kind}" for kind, n in run.calls.errors.items()) or "none"
    print(f"{codes} codes received, {run.calls.repeated()} repeated; failed calls: {errors}")
    print("\n".join(str(path) for path in paths))
    return 1 if run.calls.repeated() else 0


if __name__ == "__main__":
    sys.exit(main())
