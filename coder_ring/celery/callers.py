"""The ring tasks of the app of ``celery -A workers.app`` (configured from the
environment), for callers:

    from coder_ring.celery.callers import get_code, get_codes, status
    get_code.delay("widget").get(timeout=30)          # '8CH4', from any thread
    await aget_code("widget")                          # from asyncio code

The tasks are bound to that app, not to Celery's thread-local current app, so any
thread may call them. :func:`aget_code` and :func:`aget_codes` run the same blocking
call in a worker thread (``asyncio.to_thread``): honest about what they are, and
they keep the event loop free while the request waits.
"""

from __future__ import annotations

import asyncio

from celery import Task

from coder_ring.celery.app import app

get_code: Task = app.ring_tasks.get_code
get_codes: Task = app.ring_tasks.get_codes
reset: Task = app.ring_tasks.reset
status: Task = app.ring_tasks.status
refill: Task = app.ring_tasks.refill
noop: Task = app.ring_tasks.noop
#: Seconds the async helpers wait for a code by default.
DEFAULT_TIMEOUT = 30.0


async def aget_code(
    ring: str, extra: str = "", bump: bool = False, *, timeout: float = DEFAULT_TIMEOUT
) -> str:
    """``get_code.delay(ring, ...).get(timeout=...)`` without blocking the event loop."""

    def call() -> str:
        code: str = get_code.delay(ring, extra=extra, bump=bump).get(timeout=timeout)
        return code

    return await asyncio.to_thread(call)


async def aget_codes(
    ring: str, count: int, extra: str = "", *, timeout: float = DEFAULT_TIMEOUT
) -> list[str]:
    """``get_codes.delay(ring, count, ...).get(timeout=...)`` without blocking the loop."""

    def call() -> list[str]:
        codes: list[str] = get_codes.delay(ring, count, extra=extra).get(timeout=timeout)
        return codes

    return await asyncio.to_thread(call)
