"""A caller process of the fault-injection suite.

``python -m tests.faults.caller --name c1 --out c1.jsonl --stop STOPFILE --rings a,b
--extras ,2026-`` with the ``CODER_RING_*`` variables of the service in the environment.
Until the stop file exists it asks for ``get_code`` and ``get_codes`` (50-500) on random
rings with random extras, each with a ``.get(timeout=...)``, and appends one JSON line
per request to ``--out``:

    {"caller", "ring", "extra", "task", "size", "sent", "ended", "codes", "error",
     "message", "stage", "id"}

``sent``/``ended`` are ``time.monotonic()`` values (one clock for every process on the
machine). ``codes`` is the list received, or ``error`` is the exception's type name,
``message`` its text and ``stage`` ``"send"`` (``.delay()`` failed) or ``"result"``;
``id`` is the task id (None when nothing was sent). ``--rate`` caps the codes per
second this caller asks for, so that the run lasts long enough for the fault schedule.

Anything but a request's own failure (a bug here) ends the process with a traceback
and a non-zero exit code: the suite fails with that traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.faults.settings import BATCH
from tests.harness import caller_app

SINGLE_SHARE = 0.7  # share of requests that are get_code; the rest get_codes(50..500)
PAUSE_AFTER_ERROR = 0.25  # seconds: no busy loop while a server is down


def pause_until(
    deadline: float,
    stop: Path,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> None:
    """Sleep until ``deadline`` (a ``clock`` time) or until ``stop`` exists.

    The time left is read once per step and never slept when it is not positive: read
    twice, it could run out between the check and the sleep (``time.sleep`` refuses a
    negative length: the caller crashed on it)."""
    while not stop.exists():
        left = deadline - clock()
        if left <= 0:
            return
        sleep(min(0.05, left))


def ask(app: Any, ring: str, extra: str, size: int, timeout: float) -> dict[str, Any]:
    """One request, as the record described in the module doc."""
    record: dict[str, Any] = {
        "ring": ring,
        "extra": extra,
        "task": "get_code" if size == 1 else "get_codes",
        "size": size,
        "sent": time.monotonic(),
        "codes": [],
        "error": None,
        "message": "",
        "stage": "send",
        "id": None,
    }
    tasks = app.ring_tasks
    try:
        if size == 1:
            result = tasks.get_code.delay(ring, extra=extra)
        else:
            result = tasks.get_codes.delay(ring, size, extra=extra)
        record["stage"] = "result"
        record["id"] = result.id
        value = result.get(timeout=timeout)
        record["codes"] = [value] if size == 1 else list(value)
    except Exception as error:  # noqa: BLE001 - every failure is recorded as is
        record["error"] = type(error).__name__
        record["message"] = str(error)[:300]
    record["ended"] = time.monotonic()
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--stop", required=True, type=Path)
    parser.add_argument("--rings", required=True)
    parser.add_argument("--extras", default="", help="comma-separated; '' is an extra")
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=150.0, help="codes per second at most")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rings = args.rings.split(",")
    extras = args.extras.split(",")
    rng = random.Random(args.seed)
    with caller_app(os.environ) as app, args.out.open("a", encoding="utf-8") as out:
        next_at = time.monotonic()
        while not args.stop.exists():
            ring, extra = rng.choice(rings), rng.choice(extras)
            size = 1 if rng.random() < SINGLE_SHARE else rng.randint(*BATCH)
            record = {"caller": args.name, **ask(app, ring, extra, size, args.timeout)}
            out.write(json.dumps(record) + "\n")
            out.flush()

            pause = size / args.rate if args.rate > 0 else 0.0
            next_at = max(next_at, record["sent"]) + pause
            if record["error"]:
                next_at = max(next_at, time.monotonic() + PAUSE_AFTER_ERROR)
            pause_until(next_at, args.stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
