"""The names coder_ring uses on the broker: its tasks and its queues. Callers that send
by name (``send_task``) use these, so they never change between releases.

Every queue carries the deployment's namespace (``CODER_RING_NAMESPACE``), so
deployments sharing one broker never meet.
"""

from __future__ import annotations

TASK_GET_CODE = "coder_ring.get_code"
TASK_GET_CODES = "coder_ring.get_codes"
TASK_RESET = "coder_ring.reset"
TASK_STATUS = "coder_ring.status"
TASK_REFILL = "coder_ring.refill"
TASK_NOOP = "coder_ring.noop"


def ring_queue(namespace: str, ring: str) -> str:
    """The queue of ring ``ring``: ``coder_ring.<namespace>.<ring>``."""
    return f"coder_ring.{namespace}.{ring}"


def misc_queue(namespace: str) -> str:
    """Tasks that belong to no ring (the no-op); every worker consumes it. Ring queues
    all have one more dot-separated part, so no ring's queue can be named like it."""
    return f"coder_ring.{namespace}"


def control_exchange(namespace: str) -> str:
    """Celery's remote control (``inspect``, ``control``, flower) for the namespace's
    workers only: pidbox queues ``<worker>.coder_ring.<namespace>.celery.pidbox``, never
    a ring's (two dots more than a ring queue). A Redis user limited to the namespace's
    keys and channels reaches them (README, Redis ACL)."""
    return f"coder_ring.{namespace}.celery"


def event_exchange(namespace: str) -> str:
    """Celery's events (worker heartbeats, task events for flower) of the namespace's
    workers only, like :func:`control_exchange`."""
    return f"coder_ring.{namespace}.celery.events"
