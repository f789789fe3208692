"""A Flask app handing out codes from request threads, served by gunicorn::

    CODER_RING_BROKER_URL=... CODER_RING_CONFIG=rings.toml \
        gunicorn --worker-class gthread --workers 2 --threads 8 \
        --bind 127.0.0.1:8000 examples.flask_app:app

    curl -X POST http://127.0.0.1:8000/codes/voucher?extra=2026-

Each request thread calls ``get_code.delay(ring).get(timeout=...)``: the ring tasks are
bound to the app of the environment, so any thread may send through it.
"""

from __future__ import annotations

from celery.exceptions import TimeoutError as CeleryTimeout
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from coder_ring.celery import get_code
from examples.timeouts import code_timeout, http_status

app = Flask(__name__)
#: Read once at import (each gunicorn process), from the same settings the workers use.
TIMEOUT = code_timeout()


@app.post("/codes/<ring>")
def new_code(ring: str) -> ResponseReturnValue:
    extra = request.args.get("extra", "")
    try:
        code: str = get_code.delay(ring, extra=extra).get(timeout=TIMEOUT)
    except CeleryTimeout as error:
        return jsonify(error=f"no code within {TIMEOUT:.0f} s: {error}"), 504
    except Exception as error:  # noqa: BLE001 - every failure becomes an HTTP status
        return jsonify(error=str(error)), http_status(error)
    return jsonify(code=code)
