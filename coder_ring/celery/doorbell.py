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
  one ``EXISTS`` over its ring queues finds requests nobody rang (given back by kombu
  after a visibility timeout, rejected by a worker that stopped, sent by a publisher
  without this transport).

A ring's name rung at a worker that does not consume its queue (the ring moved) is
dropped: the request waits in the ring's queue for its holder's first look or sweep.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from queue import Empty
from time import monotonic
from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json

from coder_ring.celery.names import ring_queue
from coder_ring.registry.keys import doorbell_key, lock_key

#: Ring queues a worker's ``BRPOP`` names besides its doorbell: those that served last,
#: so a request on a busy ring is taken in one round trip.
RECENT_QUEUES = 8
#: Rung queues one pop tries at most, and doorbell names it takes.
POP_QUEUES = 64
DOORBELL_NAMES = 100
#: How often a worker looks for requests nobody rang.
SWEEP_SECONDS = 0.25
SWEEP_KEYS = 1000
#: A doorbell outlives its last ring this long (a dead worker's is then gone), and holds
#: this many names at most (a worker that stopped looking: the sweep finds the rest).
DOORBELL_TTL_MS = 60_000
DOORBELL_LENGTH = 10_000

log = logging.getLogger("coder_ring.worker")
#: kombu's JSON (its types, as its own transport writes messages); untyped.
_json: Any = kombu_json

# KEYS[1]: a ring's queue, KEYS[2]: the ring's lock. ARGV[1]: the message, ARGV[2]: the
# prefix of a member's doorbell, ARGV[3]: its TTL (ms), ARGV[4]: its names at most.
_PUBLISH = """
redis.call('lpush', KEYS[1], ARGV[1])
local holder = redis.call('get', KEYS[2])
if holder then
  local bell = ARGV[2] .. holder
  if redis.call('llen', bell) < tonumber(ARGV[4]) then redis.call('lpush', bell, KEYS[1]) end
  redis.call('pexpire', bell, ARGV[3])
end
return 1
"""
# KEYS[1..n-1]: queues to pop from, in order; KEYS[n]: the doorbell. ARGV[1]: names to
# take off the doorbell. Returns {index of the queue popped or 0, message, names}.
_POP = """
local names = redis.call('rpop', KEYS[#KEYS], ARGV[1]) or {}
for index = 1, #KEYS - 1 do
  local message = redis.call('rpop', KEYS[index])
  if message then return {index, message, names} end
end
return {0, '', names}
"""
#: Scripts go by their digest (EVALSHA): the ACL rules grant no EVAL (README, Redis ACL).
_POP_SHA = hashlib.sha1(_POP.encode()).hexdigest()
# KEYS: ring queues. Returns the indexes of those holding a request (idle: one EXISTS).
_SWEEP = """
if redis.call('exists', unpack(KEYS)) == 0 then return {} end
local found = {}
for index = 1, #KEYS do
  if redis.call('exists', KEYS[index]) == 1 then found[#found + 1] = index end
end
return found
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class _Doorbell:
    """What the doorbell adds to kombu's Redis channel (mixed into the plain and the
    Sentinel channel). Everything but :meth:`_put` runs on the worker's event loop."""

    #: Set by the app (transport options): rings' queues are told by their prefix.
    coder_ring_namespace: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: The doorbell this channel's consumer waits on (:meth:`use_doorbell`).
        self.doorbell: str | None = None
        self._rings: set[str] = set()  # ring queues consumed
        self._others: dict[str, None] = {}  # other queues consumed (not fanout)
        self._rung: dict[str, None] = {}  # ring queues that may hold a request, in turn
        self._recent: dict[str, None] = {}
        self._active: list[str] | None = None
        self._sent: list[str] | None = None  # keys of the command in flight
        self._popping = False  # that command is the pop script, not BRPOP
        self._woken = False
        self._others_first = False
        super().__init__(*args, **kwargs)

    # -- publishing (callers) --------------------------------------------------------

    def _ring_prefix(self) -> str | None:
        if self.coder_ring_namespace is None or self.global_keyprefix:  # type: ignore[attr-defined]
            return None
        if list(self.priority_steps) != [0]:  # type: ignore[attr-defined]
            return None  # a message may go to another list than its queue's name
        return ring_queue(self.coder_ring_namespace, "")

    def _is_ring_queue(self, queue: str) -> bool:
        prefix = self._ring_prefix()
        return prefix is not None and queue.startswith(prefix) and len(queue) > len(prefix)

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        # A batch (kombu's publish_batch; Celery sends none) is a pipeline that cannot
        # load a script: its requests go plainly, and the sweep finds them.
        batched = "_publish_batch" in kwargs
        if batched or not self._is_ring_queue(queue) or queue in self._expires:  # type: ignore[attr-defined]
            super()._put(queue, message, **kwargs)  # type: ignore[misc]
            return
        namespace = self.coder_ring_namespace
        assert namespace is not None  # _is_ring_queue
        ring = queue[len(ring_queue(namespace, "")) :]
        keys = [queue, lock_key(namespace, ring)]
        args = [_json.dumps(message), doorbell_key(namespace, ""), DOORBELL_TTL_MS]
        args.append(DOORBELL_LENGTH)
        with self.conn_or_acquire() as client:  # type: ignore[attr-defined]
            client.register_script(_PUBLISH)(keys=keys, args=args)

    # -- consuming (workers) ---------------------------------------------------------

    def use_doorbell(self, key: str) -> bool:
        """Wait on the doorbell at ``key`` (a ring worker's own) from the next poll on.
        False: this channel cannot (no namespace, priorities, a key prefix)."""
        if self._ring_prefix() is None:
            return False
        self.doorbell = key
        return True

    @property
    def active_queues(self) -> list[str]:
        # kombu builds this list at every poll (twice a message): O(queues) each time.
        if self._active is None:
            self._active = super().active_queues  # type: ignore[misc]
        return self._active

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        result = super().basic_consume(queue, *args, **kwargs)  # type: ignore[misc]
        self._active = None
        if queue not in self.active_fanout_queues:  # type: ignore[attr-defined]
            if self._is_ring_queue(queue):
                self._rings.add(queue)
                self._rung[queue] = None  # it may hold requests rung elsewhere
                self._wake()
            else:
                self._others[queue] = None
        return result

    def _basic_cancel(self, consumer_tag: str) -> Any:
        queue = self._tag_to_queue.get(consumer_tag)  # type: ignore[attr-defined]
        result = super()._basic_cancel(consumer_tag)  # type: ignore[misc]
        self._active = None
        if queue is not None and queue not in self._active_queues:  # type: ignore[attr-defined]
            self._rings.discard(queue)
            for kept in (self._others, self._rung, self._recent):
                kept.pop(queue, None)
        return result

    def _update_queue_cycle(self) -> None:
        if self.doorbell is None:  # kombu's round robin, O(queues) a change: unused here
            super()._update_queue_cycle()  # type: ignore[misc]

    def _brpop_start(self, timeout: float | None = None) -> None:
        if self.doorbell is None:
            self._sent = None
            super()._brpop_start(timeout)  # type: ignore[misc]
            return
        others = list(self._others)
        # Rings and the no-op's queue go first in turn: neither stream starves the other.
        self._others_first = not self._others_first
        if self._rung:
            tried = list(itertools.islice(self._rung, POP_QUEUES))
            if self._others_first:
                self._sent = [*others, *tried, self.doorbell]
            else:
                self._sent = [*tried, *others, self.doorbell]
            command: list[Any] = ["EVALSHA", _POP_SHA, len(self._sent), *self._sent]
            command.append(DOORBELL_NAMES)
            self._popping = True
        else:
            if self._others_first:
                self._sent = [*others, self.doorbell, *self._recent]
            else:
                self._sent = [self.doorbell, *self._recent, *others]
            wait = self.brpop_timeout if timeout is None else timeout  # type: ignore[attr-defined]
            command = ["BRPOP", *self._sent, wait or 0]
            self._popping = False
        client = self.client  # type: ignore[attr-defined]
        self._in_poll = client.connection
        self._brpop_sent_at = monotonic()
        self._woken = False
        client.connection.send_command(*command)

    def _brpop_read(self, **options: Any) -> bool:
        sent = self._sent
        if sent is None:
            return bool(super()._brpop_read(**options))  # type: ignore[misc]
        client = self.client  # type: ignore[attr-defined]
        try:
            try:
                reply = client.parse_response(
                    client.connection, "EVALSHA" if self._popping else "BRPOP", **options
                )
            except redis.exceptions.NoScriptError:  # a new or restarted server: load it
                with self.conn_or_acquire() as loader:  # type: ignore[attr-defined]
                    loader.script_load(_POP)
                raise Empty() from None
            except redis.exceptions.ResponseError as error:  # refused: serve on, slower
                self._give_up_doorbell(error)
                raise Empty() from None
            except self.connection_errors:  # type: ignore[attr-defined]
                client.connection.disconnect()  # the next poll reconnects
                raise
            return self._popped(sent, reply) if self._popping else self._waited(reply)
        finally:
            self._sent = None
            self._in_poll = None
            self._flush_brpop_reauth()  # type: ignore[attr-defined]

    def _give_up_doorbell(self, error: Exception) -> None:
        log.error(
            "the doorbell's script was refused (%s): this worker now waits on every ring "
            "queue it consumes, as kombu does (slower with many rings); give the Redis "
            "user the README's ACL rules",
            error,
        )
        self.doorbell = None
        super()._update_queue_cycle()  # type: ignore[misc]

    def _waited(self, reply: Any) -> bool:
        if not reply:
            raise Empty()
        key, item = _text(reply[0]), reply[1]
        if key != self.doorbell:
            return self._hand_over(key, item)
        self._mark_rung(_text(item))
        raise Empty()  # the next poll pops the rung queue

    def _popped(self, sent: list[str], reply: Any) -> bool:
        index, item, names = int(reply[0]), reply[1], reply[2]
        for name in names:
            self._mark_rung(_text(name))
        # Every queue tried before the one popped was empty after the names were taken:
        # a request sent to it since has rung again.
        for queue in sent[: index - 1 if index else len(sent)]:
            self._rung.pop(queue, None)
        if not index:
            raise Empty()
        queue = sent[index - 1]
        if queue in self._rung:  # to the back: the other rung queues come first
            del self._rung[queue]
            self._rung[queue] = None
        return self._hand_over(queue, item)

    def _mark_rung(self, queue: str) -> None:
        if queue in self._rings:  # else not ours (any more): its holder will look
            self._rung[queue] = None

    def _hand_over(self, queue: str, item: Any) -> bool:
        if queue in self._rings:
            self._recent.pop(queue, None)
            self._recent[queue] = None
            if len(self._recent) > RECENT_QUEUES:
                del self._recent[next(iter(self._recent))]
        self.connection._deliver(_json.loads(_text(item)), queue)  # type: ignore[attr-defined]
        return True

    def _wake(self) -> None:
        """End a BRPOP in flight (it does not name the rung queues) with an empty name."""
        if self.doorbell is None or not self._in_poll or self._popping or self._woken:
            return
        self._woken = True
        try:
            with (
                self.conn_or_acquire() as client,  # type: ignore[attr-defined]
                client.pipeline(transaction=False) as pipe,
            ):
                pipe.lpush(self.doorbell, "")
                pipe.pexpire(self.doorbell, DOORBELL_TTL_MS)
                pipe.execute()
        except self.connection_errors:  # type: ignore[attr-defined]
            pass  # the BRPOP ends by its timeout (a second)

    def sweep_rings(self) -> None:
        """Ring the consumed ring queues that hold a request nobody rang."""
        if self.doorbell is None:
            return
        unrung = sorted(self._rings - self._rung.keys())
        found: list[str] = []
        try:
            with self.conn_or_acquire() as client:  # type: ignore[attr-defined]
                for start in range(0, len(unrung), SWEEP_KEYS):
                    chunk = unrung[start : start + SWEEP_KEYS]
                    indexes = client.register_script(_SWEEP)(keys=chunk)
                    found += [chunk[int(index) - 1] for index in indexes]
        except redis.exceptions.ResponseError as error:
            self._give_up_doorbell(error)
            return
        except self.connection_errors:  # type: ignore[attr-defined]
            return  # the next sweep
        for queue in found:
            self._mark_rung(queue)
        if found:
            self._wake()


class Channel(_Doorbell, kombu_redis.Channel):  # type: ignore[misc]
    from_transport_options = (  # type: ignore[assignment]
        *kombu_redis.Channel.from_transport_options,
        "coder_ring_namespace",
    )


class SentinelChannel(_Doorbell, kombu_redis.SentinelChannel):  # type: ignore[misc]
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
            if isinstance(channel, _Doorbell):
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
