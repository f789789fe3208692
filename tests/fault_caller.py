"""A caller process of the fault-injection test (tests/test_faults.py).

``python -m tests.fault_caller --name c1 --out c1.jsonl --stop STOPFILE --rings a,b``
with the ``CODER_RING_*`` variables of the service in the environment. Until the stop
file exists it asks for ``get_code`` and ``get_codes`` (50-500) on random rings, each
with a ``.get(timeout=...)``, and appends one JSON line per request to ``--out``:

    {"caller", "ring", "task", "size", "sent", "ended", "codes", "error", "message", "stage",
     "id"}

``sent``/``ended`` are ``time.monotonic()`` values (one clock for every process on the
machine). ``codes`` is the list received, or ``error`` is the exception's type name,
``message`` its text and ``stage`` ``"send"`` (``.delay()`` failed) or ``"result"``;
``id`` is the task id (None when nothing was sent).
``--rate`` caps the codes per second this caller asks for, so that the run lasts long
enough for the fault schedule instead of racing through its codes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from tests.harness import caller_app
from workers.names import TASK_GET_CODE, TASK_GET_CODES

SINGLE_SHARE = 0.7  # share of requests that are get_code; the rest get_codes(50..500)
BATCH = (50, 500)
PAUSE_AFTER_ERROR = 0.25  # seconds: no busy loop while a server is down


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--stop", required=True, type=Path)
    parser.add_argument("--rings", required=True)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=150.0, help="codes per second at most")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rings = args.rings.split(",")
    rng = random.Random(args.seed)
    with caller_app(os.environ) as app, args.out.open("a", encoding="utf-8") as out:
        single, batch = app.tasks[TASK_GET_CODE], app.tasks[TASK_GET_CODES]
        next_at = time.monotonic()
        while not args.stop.exists():
            ring = rng.choice(rings)
            size = 1 if rng.random() < SINGLE_SHARE else rng.randint(*BATCH)
            record: dict[str, Any] = {
                "caller": args.name,
                "ring": ring,
                "task": "get_code" if size == 1 else "get_codes",
                "size": size,
                "sent": time.monotonic(),
                "codes": [],
                "error": None,
                "message": "",
                "stage": "send",
                "id": None,
            }
            try:
                result = single.delay(ring) if size == 1 else batch.delay(ring, size)
                record["stage"] = "result"
                record["id"] = result.id
                value = result.get(timeout=args.timeout)
                record["codes"] = [value] if size == 1 else list(value)
            except Exception as error:  # noqa: BLE001 - every failure is recorded as is
                record["error"] = type(error).__name__
                record["message"] = str(error)[:300]
            record["ended"] = time.monotonic()
            out.write(json.dumps(record) + "\n")
            out.flush()

            pause = size / args.rate if args.rate > 0 else 0.0
            next_at = max(next_at, record["sent"]) + pause
            if record["error"]:
                next_at = max(next_at, time.monotonic() + PAUSE_AFTER_ERROR)
            while time.monotonic() < next_at and not args.stop.exists():
                time.sleep(min(0.05, next_at - time.monotonic()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
