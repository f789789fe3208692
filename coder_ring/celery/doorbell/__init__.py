"""kombu's Redis transport with a doorbell per worker: a request costs a worker the same
whatever the number of ring queues it consumes (issue 19).

kombu's Redis transport waits with one ``BRPOP`` over every queue a worker consumes and
sends it again after each message: with 2,500 ring queues, 2,500 keys a message, packed
by the worker and registered and unregistered by Redis. Each ring keeps its own queue (a
request waits in its ring's queue, whoever serves the ring next); what changes is how a
worker learns which of its queues has one:

* a caller publishes to a ring's queue and, in the same script (one round trip, like
  kombu's ``LPUSH``), pushes the queue's name to the doorbell of the member its ring's
  lock names (:func:`~coder_ring.registry.keys.doorbell_key`);
* the worker waits with ``BRPOP`` on its doorbell, its other queues (the no-op's) and the
  few ring queues that served last; a name from the doorbell marks its queue rung, and
  rung queues are popped by one script (from the first that holds a request), which
  also takes the doorbell's next names;
* nothing waits unseen: a queue the worker starts consuming is rung at once (it may hold
  requests rung at the previous holder, or at nobody), and every :data:`SWEEP_SECONDS`
  one ``EXISTS`` over the next thousand of its ring queues finds requests nobody rang
  (given back by kombu after a visibility timeout, rejected by a worker that stopped,
  sent by a publisher without this transport).

A ring's name rung at a worker that does not consume its queue (the ring moved) is
dropped: the request waits in the ring's queue for its holder's first look or sweep.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

from coder_ring.celery.doorbell.channel import Doorbell
from coder_ring.celery.doorbell.scripts import RECENT_QUEUES, SWEEP_SECONDS

__all__ = ["RECENT_QUEUES", "Channel", "SentinelChannel", "SentinelTransport", "Transport"]


class Channel(Doorbell, kombu_redis.Channel):  # type: ignore[misc]
    from_transport_options = (  # type: ignore[assignment]
        *kombu_redis.Channel.from_transport_options,
        "coder_ring_namespace",
    )


class SentinelChannel(Doorbell, kombu_redis.SentinelChannel):  # type: ignore[misc]
    from_transport_options = (  # type: ignore[assignment]
        *kombu_redis.SentinelChannel.from_transport_options,
        "coder_ring_namespace",
    )


class _Sweeping:
    """Runs each doorbell channel's sweep on the event loop."""

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)  # type: ignore[misc]
        cycle = self.cycle  # type: ignore[attr-defined]
        previous = getattr(cycle, "_coder_ring_sweep", None)
        if previous is not None:  # a reconnect registers again (as kombu's own timers)
            previous.cancel()
        cycle._coder_ring_sweep = loop.call_repeatedly(SWEEP_SECONDS, self._sweep)

    def _sweep(self) -> None:
        for channel in list(self.cycle._channels):  # type: ignore[attr-defined]
            if isinstance(channel, Doorbell):
                channel.sweep_rings()


class Transport(_Sweeping, kombu_redis.Transport):
    Channel = Channel


class SentinelTransport(_Sweeping, kombu_redis.SentinelTransport):
    Channel = SentinelChannel


def transport_for(broker_url: str) -> str | None:
    """The transport (``module:class``) coder_ring's apps use for ``broker_url``: the
    doorbell's, for Redis and Sentinel; None (kombu's choice) for anything else."""
    scheme = broker_url.partition("://")[0].lower()
    if scheme in ("redis", "rediss"):
        return f"{__name__}:Transport"
    if scheme == "sentinel":
        return f"{__name__}:SentinelTransport"
    return None
