"""Every Redis key coder_ring's registry uses, in one place (the queue and task names are
:mod:`coder_ring.celery.names`).

Every key carries the deployment's namespace (``CODER_RING_NAMESPACE``), so
deployments (and the demo) sharing one Redis never meet.
"""

from __future__ import annotations


def _key(namespace: str, *parts: str) -> str:
    return ":".join(("coder_ring", namespace, *parts))


def lock_key(namespace: str, ring: str) -> str:
    """The Redis key of the lock that says which worker serves ``ring``."""
    return _key(namespace, "lock", ring)


def member_lease_key(namespace: str, member: str) -> str:
    """A worker's lease (expires unless renewed each round): every ring lock naming the
    worker is valid while it lives."""
    return _key(namespace, "lease", member)


def doorbell_key(namespace: str, member: str) -> str:
    """A worker's doorbell: the list of ring queues callers have sent a request to
    (:mod:`coder_ring.celery.doorbell`)."""
    return _key(namespace, "doorbell", member)


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


def assignment_version_key(namespace: str) -> str:
    """A token the coordinator writes with each assignment: a member reads the
    assignment again only when it changed."""
    return _key(namespace, "assignment-version")


def notices_channel(namespace: str) -> str:
    """The pub/sub channel of change notices (ring reset or rebuilt, ring released...)."""
    return _key(namespace, "notices")


def namespace_pattern(namespace: str) -> str:
    """A SCAN pattern matching every registry key of ``namespace``."""
    return _key(namespace, "*")
