"""The demo leaves nothing behind in a Redis it did not start: every key of its own
namespace (registry keys, queues and kombu's bindings of its queues) goes at its exit.
Keys of other namespaces, and the keys kombu and Celery share between them (``unacked``...),
stay."""

from __future__ import annotations

from coder_ring.celery.names import misc_queue
from coder_ring.registry.client import registry_client
from coder_ring.registry.keys import namespace_pattern
from coder_ring.settings import WorkerSettings

#: kombu's sets that bind an exchange (named like our queues) to its queues.
KOMBU_BINDINGS = ("_kombu.binding.", "_kombu.binding_permanent.")


def namespace_patterns(namespace: str) -> list[str]:
    """SCAN patterns of every key a deployment of ``namespace`` creates in Redis."""
    queues = misc_queue(namespace)  # every ring queue is one more part: QUEUES.ring
    names = [queues, f"{queues}.*"]
    return [namespace_pattern(namespace), *names] + [
        prefix + name for prefix in KOMBU_BINDINGS for name in names
    ]


def remove_namespace(settings: WorkerSettings) -> int:
    """Delete every key of the settings' namespace from their Redis; how many went."""
    namespace = settings.namespace
    client = registry_client(settings, 5.0)
    try:
        keys = {
            key
            for pattern in namespace_patterns(namespace)
            for key in client.scan_iter(match=pattern, count=1000)
        }
        return int(client.delete(*keys)) if keys else 0
    finally:
        client.close()
