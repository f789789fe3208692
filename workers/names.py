"""Every name coder_ring uses on the broker and in Redis, in one place."""

from __future__ import annotations

#: Each ring's tasks go to its own queue, ``coder_ring.<ring>``.
RING_QUEUE_PREFIX = "coder_ring."
#: Tasks that belong to no ring (the benchmark's no-op); every worker consumes it.
MISC_QUEUE = "coder_ring.misc"
#: Redis key of the lock that says which worker serves a ring.
LOCK_KEY_PREFIX = "coder_ring:lock:"

TASK_GET_CODE = "coder_ring.get_code"
TASK_GET_CODES = "coder_ring.get_codes"
TASK_RESET = "coder_ring.reset"
TASK_STATUS = "coder_ring.status"
TASK_REFILL = "coder_ring.refill"
TASK_NOOP = "coder_ring.noop"
RING_TASKS = (TASK_GET_CODE, TASK_GET_CODES, TASK_RESET, TASK_STATUS, TASK_REFILL)


def ring_queue(ring: str) -> str:
    """The queue of ring ``ring``."""
    return f"{RING_QUEUE_PREFIX}{ring}"


def lock_key(ring: str) -> str:
    """The Redis key of ring ``ring``'s lock."""
    return f"{LOCK_KEY_PREFIX}{ring}"
