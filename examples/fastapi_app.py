"""A FastAPI app awaiting codes without blocking its event loop, served by uvicorn::

    CODER_RING_BROKER_URL=... CODER_RING_CONFIG=rings.toml \
        uvicorn --host 127.0.0.1 --port 8000 examples.fastapi_app:app

    curl -X POST http://127.0.0.1:8000/codes/voucher?extra=2026-

``aget_code`` runs the blocking call in a worker thread (``asyncio.to_thread``): size
the loop's default executor for the requests in flight (``CODER_RING_EXAMPLE_THREADS``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from celery.exceptions import TimeoutError as CeleryTimeout
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from coder_ring.celery import aget_code
from examples.timeouts import code_timeout, http_status

TIMEOUT = code_timeout()
#: Requests waiting at once (each waits in one thread of the loop's executor).
THREADS = int(os.environ.get("CODER_RING_EXAMPLE_THREADS", "32"))


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(THREADS))
    yield


app = FastAPI(lifespan=lifespan)


@app.post("/codes/{ring}", response_model=None)
async def new_code(ring: str, extra: str = "") -> dict[str, str] | JSONResponse:
    try:
        code = await aget_code(ring, extra=extra, timeout=TIMEOUT)
    except CeleryTimeout as error:
        return JSONResponse({"error": f"no code within {TIMEOUT:.0f} s: {error}"}, 504)
    except Exception as error:  # noqa: BLE001 - every failure becomes an HTTP status
        return JSONResponse({"error": str(error)}, http_status(error))
    return {"code": code}
