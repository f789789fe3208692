"""The app configured from the environment (``CODER_RING_*``: broker, rings file,
namespace...) and its ring tasks, built when this module is first imported. Callers
import the tasks from :mod:`coder_ring.celery`, which imports this module only then::

    from coder_ring.celery import get_code, get_codes, status, aget_code, aget_codes
    get_code.delay("widget").get(timeout=30)          # '8CH4', from any thread
    await aget_code("widget")                          # from asyncio code

The tasks are bound to this app, not to Celery's thread-local current app, so any
thread may call them. :func:`aget_code` and :func:`aget_codes` run the same blocking
call in a worker thread (``asyncio.to_thread``): honest about what they are, and they
keep the event loop free while the request waits.

``celery -A workers.app`` (the repository's deployment) serves this same app; where
that folder is not at hand (a pip install), ``celery -A coder_ring.celery.from_env``.
"""

from __future__ import annotations

import asyncio

from celery import Task

from coder_ring.celery.app import create_app

#: The app of the environment: workers serve it, callers send through it.
app = create_app()
get_code: Task = app.ring_tasks.get_code
get_codes: Task = app.ring_tasks.get_codes
status: Task = app.ring_tasks.status
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
    ring: str,
    count: int,
    extra: str = "",
    bump: bool = False,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> list[str]:
    """``get_codes.delay(ring, count, ...).get(timeout=...)`` without blocking the loop."""

    def call() -> list[str]:
        codes: list[str] = get_codes.delay(ring, count, extra=extra, bump=bump).get(timeout=timeout)
        return codes

    return await asyncio.to_thread(call)
