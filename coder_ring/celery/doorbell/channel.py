"""What the doorbell adds to kombu's Redis channel: a caller's publish rings the ring's
holder; a worker waits on its doorbell and pops the queues it was rung for, looks at each
queue it starts consuming, and sweeps its ring queues for requests nobody rang
(:mod:`coder_ring.celery.doorbell`)."""

from __future__ import annotations

import itertools
import logging
from queue import Empty
from time import monotonic
from typing import Any

import redis
from kombu.utils import json as kombu_json

from coder_ring.celery.doorbell.scripts import (
    DOORBELL_LENGTH,
    DOORBELL_NAMES,
    DOORBELL_TTL_MS,
    PAUSE_SECONDS,
    POP,
    POP_QUEUES,
    POP_SHA,
    PUBLISH,
    RECENT_QUEUES,
    SWEEP,
    SWEEP_KEYS,
    SWEEP_MAX_WAIT,
    SWEEP_SHARE,
)
from coder_ring.celery.names import ring_queue
from coder_ring.registry.keys import doorbell_key, lock_key

log = logging.getLogger("coder_ring.worker")
#: Refusals that last: the user's ACL rules (a script's own command refused says the
#: second), a Redis older than 6.2 (RPOP with a count).
_LASTING = ("noperm", "can't run this command", "unknown command", "wrong number of arguments")
#: kombu's JSON (its types, as its own transport writes messages); untyped.
_json: Any = kombu_json


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Doorbell:
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
        self._sweep_order: list[str] | None = None  # the ring queues, in sweep order
        self._sweep_next = 0
        self._paused_until = 0.0
        self._sweep_after = 0.0
        self._sent: list[str] | None = None  # keys of the command in flight
        self._bell_sent = ""  # the doorbell it waits on
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
        if self.connection is None:  # type: ignore[attr-defined]
            # Closed after a lost connection (beat keeps its producer across an outage).
            # Celery's declare used to meet the closed channel first, as an error that
            # makes the publish reconnect and retry; callers no longer declare ring
            # queues, so say it here the same way (kombu's own _put raises AttributeError).
            raise redis.exceptions.ConnectionError("the channel was closed (connection lost)")
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
            client.register_script(PUBLISH)(keys=keys, args=args)

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
        # Kept only while the doorbell is in use: kombu's round robin reads it while
        # consume and cancel change it.
        if self.doorbell is None:
            return list(super().active_queues)  # type: ignore[misc]
        if self._active is None:
            self._active = super().active_queues  # type: ignore[misc]
        return self._active

    def basic_consume(self, queue: str, *args: Any, **kwargs: Any) -> Any:
        self._active = None
        result = super().basic_consume(queue, *args, **kwargs)  # type: ignore[misc]
        self._active = None
        if queue not in self.active_fanout_queues:  # type: ignore[attr-defined]
            if self._is_ring_queue(queue):
                self._rings.add(queue)
                self._sweep_order = None
                self._rung[queue] = None  # it may hold requests rung elsewhere
                self._wake()
            else:
                self._others[queue] = None
        return result

    def _basic_cancel(self, consumer_tag: str) -> Any:
        queue = self._tag_to_queue.get(consumer_tag)  # type: ignore[attr-defined]
        self._active = None
        result = super()._basic_cancel(consumer_tag)  # type: ignore[misc]
        self._active = None
        if queue is not None and queue not in self._active_queues:  # type: ignore[attr-defined]
            self._rings.discard(queue)
            self._sweep_order = None
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
        if monotonic() < self._paused_until:
            return  # nothing in flight: the loop polls again at its next timer
        self._bell_sent = self.doorbell
        others = list(self._others)
        # Rings and the no-op's queue go first in turn: neither stream starves the other.
        self._others_first = not self._others_first
        if self._rung:
            tried = list(itertools.islice(self._rung, POP_QUEUES))
            if self._others_first:
                self._sent = [*others, *tried, self.doorbell]
            else:
                self._sent = [*tried, *others, self.doorbell]
            command: list[Any] = ["EVALSHA", POP_SHA, len(self._sent), *self._sent]
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
                    loader.script_load(POP)
                raise Empty() from None
            except redis.exceptions.ResponseError as error:
                self._refused(error)
                raise Empty() from None
            except self.connection_errors:  # type: ignore[attr-defined]
                client.connection.disconnect()  # the next poll reconnects
                raise
            if self._popping:
                return self._popped(sent, reply)
            return self._waited(reply, self._bell_sent)
        finally:
            self._sent = None
            self._in_poll = None
            self._flush_brpop_reauth()  # type: ignore[attr-defined]

    def _refused(self, error: redis.exceptions.ResponseError) -> None:
        """A refusal for good (the user's ACL rules, a Redis without ``RPOP`` counts)
        gives the doorbell up: kombu's waits from now on. Any other (BUSY, UNBLOCKED,
        READONLY...) pauses the waits for a moment."""
        text = str(error).lower()
        lasting = any(words in text for words in _LASTING)
        if not isinstance(error, redis.exceptions.NoPermissionError) and not lasting:
            log.warning("redis refused the doorbell for now (%s): trying again", error)
            self._paused_until = monotonic() + PAUSE_SECONDS
            return
        log.error(
            "the doorbell's script was refused (%s): this worker now waits on every ring "
            "queue it consumes, as kombu does (slower with many rings); give the Redis "
            "user the README's ACL rules",
            error,
        )
        self.doorbell = None
        self._active = None
        super()._update_queue_cycle()  # type: ignore[misc]

    def _waited(self, reply: Any, bell: str) -> bool:
        if not reply:
            raise Empty()
        key, item = _text(reply[0]), reply[1]
        if key == bell:
            self._mark_rung(_text(item))
            raise Empty()  # the next poll pops the rung queue
        # Its caller's name is on the doorbell still: the next poll (a pop) takes it with
        # any other, instead of a wait that would return at once for it.
        self._mark_rung(key)
        return self._hand_over(key, item)

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
        except (redis.RedisError, *self.connection_errors):  # type: ignore[attr-defined]
            pass  # the BRPOP ends by its timeout (a second)

    def sweep_rings(self) -> None:
        """Ring the consumed ring queues that hold a request nobody rang: the next
        :data:`SWEEP_KEYS` of them, in turn."""
        began = monotonic()
        if self.doorbell is None or began < max(self._paused_until, self._sweep_after):
            return
        if self._sweep_order is None:
            self._sweep_order, self._sweep_next = sorted(self._rings), 0
        order, start = self._sweep_order, self._sweep_next
        chunk = [queue for queue in order[start : start + SWEEP_KEYS] if queue not in self._rung]
        self._sweep_next = 0 if start + SWEEP_KEYS >= len(order) else start + SWEEP_KEYS
        if not chunk:
            return
        try:
            with self.conn_or_acquire() as client:  # type: ignore[attr-defined]
                indexes = client.register_script(SWEEP)(keys=chunk)
        except redis.exceptions.ResponseError as error:
            self._refused(error)
            return
        except self.connection_errors:  # type: ignore[attr-defined]
            return  # the next sweep
        finally:
            # The sweep waits for its reply on the event loop: over a slow link it would
            # hold the loop most of the time (a worker giving its rings up then stopped
            # consuming their queues seconds late). It takes a tenth of the loop at most.
            took = monotonic() - began
            self._sweep_after = monotonic() + min(SWEEP_SHARE * took, SWEEP_MAX_WAIT)
        for index in indexes:
            self._mark_rung(chunk[int(index) - 1])
        if indexes:
            self._wake()
