"""A caller process of tests/system/test_threads.py: many threads and an event loop calling
the ring tasks of ``coder_ring.celery`` (the app configured from this process's environment)
the way the README's callers import them.

``python -m tests.system.thread_caller RING --threads 16 --calls 100 --gather 100
[--other-env FILE --other-ring RING --other-calls N]`` prints one JSON object:
``{"threads": {"codes": [...], "errors": [...]}, "gather": {...}, "other": {...}}``.

``threads``: each thread makes ``--calls`` ``get_code.delay(RING).get()`` calls (no call
is made from the main thread first). ``gather``: ``asyncio.gather`` over ``--gather``
``aget_code`` calls and as many ``asyncio.to_thread`` calls. ``other``: while the threads
run, one more thread calls through an app made with ``create_app(settings)`` (settings
from the JSON environment in ``--other-env``) beside the environment's app.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from coder_ring.celery import WorkerSettings, aget_code, create_app, get_code

TIMEOUT = 30.0


def repeat(call: Callable[[], str], times: int) -> dict[str, list[str]]:
    """``call()`` ``times`` times: the codes, and each error as ``Type: message``."""
    codes: list[str] = []
    errors: list[str] = []
    for _ in range(times):
        try:
            codes.append(call())
        except Exception as error:  # noqa: BLE001 - every failure is reported, not raised
            errors.append(f"{type(error).__name__}: {error}")
    return {"codes": codes, "errors": errors}


def merge(parts: list[dict[str, list[str]]]) -> dict[str, list[str]]:
    return {key: [item for part in parts for item in part[key]] for key in ("codes", "errors")}


async def gather(ring: str, count: int) -> dict[str, list[str]]:
    def blocking() -> str:
        code: str = get_code.delay(ring).get(timeout=TIMEOUT)
        return code

    results = await asyncio.gather(
        *(aget_code(ring, timeout=TIMEOUT) for _ in range(count)),
        *(asyncio.to_thread(blocking) for _ in range(count)),
        return_exceptions=True,
    )
    return {
        "codes": [result for result in results if isinstance(result, str)],
        "errors": [
            f"{type(result).__name__}: {result}"
            for result in results
            if isinstance(result, BaseException)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ring")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--gather", type=int, default=100)
    parser.add_argument("--other-env", type=Path)
    parser.add_argument("--other-ring", default="")
    parser.add_argument("--other-calls", type=int, default=100)
    args = parser.parse_args(argv)

    def env_call() -> str:
        code: str = get_code.delay(args.ring).get(timeout=TIMEOUT)
        return code

    report: dict[str, Any] = {}
    other_app = None
    if args.other_env is not None:
        other_env = json.loads(args.other_env.read_text(encoding="utf-8"))
        other_app = create_app(WorkerSettings.from_env(other_env))
    with ThreadPoolExecutor(args.threads + 1) as pool:
        futures = [pool.submit(repeat, env_call, args.calls) for _ in range(args.threads)]
        if other_app is not None:
            other_task = other_app.ring_tasks.get_code

            def other_call() -> str:
                code: str = other_task.delay(args.other_ring).get(timeout=TIMEOUT)
                return code

            other = pool.submit(repeat, other_call, args.other_calls)
            report["other"] = other.result()
        report["threads"] = merge([future.result() for future in futures])
    report["gather"] = asyncio.run(gather(args.ring, args.gather))
    if other_app is not None:
        other_app.close()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
