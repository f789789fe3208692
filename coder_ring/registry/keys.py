"""Every name coder_ring uses on the broker and in Redis, in one place.

Every key and queue carries the deployment's namespace (``CODER_RING_NAMESPACE``), so
deployments (and the demo) sharing one Redis never meet.
"""

from __future__ import annotations

import re

from coder_ring.errors import ConfigError

DEFAULT_NAMESPACE = "default"
NAMESPACE_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")

TASK_GET_CODE = "coder_ring.get_code"
TASK_GET_CODES = "coder_ring.get_codes"
TASK_RESET = "coder_ring.reset"
TASK_STATUS = "coder_ring.status"
TASK_REFILL = "coder_ring.refill"
TASK_NOOP = "coder_ring.noop"
RING_TASKS = (TASK_GET_CODE, TASK_GET_CODES, TASK_RESET, TASK_STATUS, TASK_REFILL)


def check_namespace(namespace: str) -> str:
    """A namespace: lowercase letters, digits, ``-`` and ``_``, at most 32 characters."""
    if not NAMESPACE_PATTERN.fullmatch(namespace):
        raise ConfigError(
            f"CODER_RING_NAMESPACE={namespace!r} is invalid: use 1 to 32 lowercase letters, "
            "digits, '-' or '_', starting with a letter or digit"
        )
    return namespace


def ring_queue(namespace: str, ring: str) -> str:
    """The queue of ring ``ring``: ``coder_ring.<namespace>.<ring>``."""
    return f"coder_ring.{namespace}.{ring}"


def misc_queue(namespace: str) -> str:
    """Tasks that belong to no ring (the no-op); every worker consumes it. Ring queues
    all have one more dot-separated part, so no ring's queue can be named like it."""
    return f"coder_ring.{namespace}"


def _key(namespace: str, *parts: str) -> str:
    return ":".join(("coder_ring", namespace, *parts))


def lock_key(namespace: str, ring: str) -> str:
    """The Redis key of the lock that says which worker serves ``ring``."""
    return _key(namespace, "lock", ring)


def member_key(namespace: str, member: str) -> str:
    """A worker's membership record (a hash that expires unless heartbeated)."""
    return _key(namespace, "member", member)


def members_key(namespace: str) -> str:
    """The set of member ids (pruned of those whose record expired)."""
    return _key(namespace, "members")


def coordinator_key(namespace: str) -> str:
    """The lock of the member that places rings."""
    return _key(namespace, "coordinator")


def assignment_key(namespace: str) -> str:
    """The hash ring -> member id the coordinator writes."""
    return _key(namespace, "assignment")


def notices_channel(namespace: str) -> str:
    """The pub/sub channel of change notices (ring reset or rebuilt, ring released...)."""
    return _key(namespace, "notices")
