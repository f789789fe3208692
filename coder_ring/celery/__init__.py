"""The serving layer on Celery, and the callers' one import path::

    from coder_ring.celery import get_code, get_codes, status, aget_code, aget_codes

Those are the ring tasks of the app configured from the environment
(:mod:`coder_ring.celery.from_env`). This package imports nothing at import: a name is
looked up in its module when first asked for. So the worker, beat and the CLI, which
import modules of this package, never build the environment's app (a bad ``CODER_RING_*``
variable fails only the command that needs it), and the Celery-free modules here (the
worker's runtime, seats and health) stay importable without Celery.

For another configuration in the same process:
``create_app(WorkerSettings(...)).ring_tasks.get_code.delay(...)``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coder_ring.celery.app import CoderRingApp, create_app
    from coder_ring.celery.from_env import aget_code, aget_codes, get_code, get_codes, status
    from coder_ring.settings import WorkerSettings

#: Each public name -> the module that defines it.
_HOMES = {
    "get_code": "coder_ring.celery.from_env",
    "get_codes": "coder_ring.celery.from_env",
    "status": "coder_ring.celery.from_env",
    "aget_code": "coder_ring.celery.from_env",
    "aget_codes": "coder_ring.celery.from_env",
    "CoderRingApp": "coder_ring.celery.app",
    "create_app": "coder_ring.celery.app",
    "WorkerSettings": "coder_ring.settings",
}
__all__ = [
    "CoderRingApp",
    "WorkerSettings",
    "aget_code",
    "aget_codes",
    "create_app",
    "get_code",
    "get_codes",
    "status",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
