"""The ring tasks. Thin: check the call, find this worker's seat, call the engine.

Callers: ``get_code.delay("widget").get(timeout=10)``; from another service by name:
``app.send_task("coder_ring.get_code", args=["widget"], queue="coder_ring.widget")``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task, shared_task
from celery.exceptions import Reject
from kombu.exceptions import OperationalError
from kombu.utils.url import maybe_sanitize_url

from coder_ring.errors import Fenced, UnknownRing
from coder_ring.pool import NotHolding, RingServer
from coder_ring.validation import check_bump, check_count, check_extra
from workers.app import configured_rings
from workers.lease import current_holder
from workers.names import (
    TASK_GET_CODE,
    TASK_GET_CODES,
    TASK_NOOP,
    TASK_REFILL,
    TASK_RESET,
    TASK_STATUS,
    ring_queue,
)
from workers.runtime import WorkerRuntime

T = TypeVar("T")


class RingTask(Task):  # type: ignore[misc]
    """A task that belongs to a ring: checked in the caller, routed to the ring's queue,
    and expiring (a request whose caller gave up is never served and burns no code)."""

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        signature = self.__dict__.get("_call_signature")
        if signature is None:  # once per task: inspect.signature is slow for a hot path
            signature = self.__dict__["_call_signature"] = inspect.signature(self.run)
        try:
            call = signature.bind(*(args or ()), **(kwargs or {}))
        except TypeError as error:
            raise TypeError(f"{self.name}: {error}") from None
        arguments = call.arguments
        ring = arguments["ring"]
        rings = configured_rings(self.app)
        if not isinstance(ring, str) or ring not in rings:
            raise UnknownRing.naming(ring, rings)
        if "extra" in arguments:
            check_extra(arguments["extra"])
        if "bump" in arguments:
            check_bump(arguments["bump"])
        if "count" in arguments:
            check_count(arguments["count"])
        options.setdefault("queue", ring_queue(ring))
        options.setdefault("expires", self.app.coder_ring_settings.task_expires)
        try:
            return super().apply_async(args, kwargs, **options)
        except OperationalError as error:
            raise BrokerUnreachable(
                f"cannot reach the broker {_url(self.app.conf.broker_url)} "
                f"(nothing was sent): {error}"
            ) from error
        except RuntimeError as error:
            # The Redis result backend subscribes before the message is published; when
            # it cannot connect within its retry policy it raises a bare RuntimeError
            # ("the Celery application must be restarted", which is not so: the next
            # call connects again). Report it as the connection error it is.
            cause = error.__cause__
            if cause is None or not isinstance(cause, self.backend.connection_errors):
                raise
            raise BrokerUnreachable(
                f"cannot reach the result backend {_url(self.app.conf.result_backend)} "
                f"(nothing was sent): {cause}"
            ) from cause


class BrokerUnreachable(OperationalError):
    """A ring task could not be sent: the broker or the result backend is unreachable.
    The message names which, by URL (without password)."""


def _url(url: object) -> str:
    """``url`` without its password, for error messages."""
    return str(maybe_sanitize_url(str(url)))


def _runtime(task: Task) -> WorkerRuntime:
    runtime: WorkerRuntime | None = task.app.coder_ring_runtime
    if runtime is None:
        raise RuntimeError("this process is not a coder_ring worker (no ring seats)")
    return runtime


def serve(task: Task, ring: str, action: Callable[[RingServer], T]) -> T:
    """Run ``action`` on this worker's server of ``ring`` if it holds the ring; else put
    the request back on the ring's queue for the holder."""
    runtime = _runtime(task)
    seat = runtime.seat(ring)
    if not seat.holding():
        raise Reject(f"ring {ring!r} is not held by this worker", requeue=True)
    try:
        seat.ensure_active()
        return action(seat.server)
    except (Fenced, NotHolding):
        # Fenced by an operator's reset/rebuild while we still hold the lock: claim
        # again. Fenced by another holder: we lost the ring; the holder gets the request.
        if seat.recheck():
            seat.ensure_active()
            return action(seat.server)
        runtime.lose(seat)
        raise Reject(f"ring {ring!r} was taken over", requeue=True) from None


class ServingTask(RingTask):
    """A ring task that hands out codes. The pool is topped up after the result was
    sent (Celery runs ``after_return`` after storing it), so no caller waits for it."""

    def after_return(  # noqa: PLR0917 - Celery's signature
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        runtime: WorkerRuntime | None = self.app.coder_ring_runtime
        ring = args[0] if args else (kwargs or {}).get("ring")
        if runtime is not None and ring in runtime.seats:
            runtime.seats[ring].server.top_up_if_low()


@shared_task(base=ServingTask, bind=True, name=TASK_GET_CODE)  # type: ignore[untyped-decorator]
def get_code(self: Task, ring: str, extra: str = "", bump: bool = False) -> str:
    """One code of ``ring`` (``extra`` prefix; ``bump`` starts a new cycle)."""
    return serve(self, ring, lambda server: server.get_code(extra, bump, top_up=False))


@shared_task(base=ServingTask, bind=True, name=TASK_GET_CODES)  # type: ignore[untyped-decorator]
def get_codes(self: Task, ring: str, count: int, extra: str = "") -> list[str]:
    """``count`` codes (1 to 10,000) of ``ring``, in one database transaction at most."""
    return serve(self, ring, lambda server: server.get_codes(count, extra, top_up=False))


@shared_task(base=RingTask, bind=True, name=TASK_RESET)  # type: ignore[untyped-decorator]
def reset(self: Task, ring: str) -> None:
    """Start ``ring`` over: first cycle, no extra. May repeat codes issued before."""
    serve(self, ring, lambda server: server.reset())


@shared_task(base=RingTask, bind=True, name=TASK_REFILL, ignore_result=True)  # type: ignore[untyped-decorator]
def refill(self: Task, ring: str) -> int:
    """Top ``ring``'s pool up (sent by beat)."""
    return serve(self, ring, lambda server: server.refill())


@shared_task(base=RingTask, bind=True, name=TASK_STATUS)  # type: ignore[untyped-decorator]
def status(self: Task, ring: str) -> dict[str, Any]:
    """Where ``ring`` stands, with the serving worker's pool and the lock holder."""
    runtime = _runtime(self)

    def report(server: RingServer) -> dict[str, Any]:
        server.settle()  # a top-up in flight lands first: the figures hold still
        state = runtime.service.status(ring)
        pooled = server.pooled
        return {
            **state.as_dict(),
            # Drawn-ahead codes are not handed out yet: still remaining for callers.
            "remaining_in_cycle": state.remaining_in_cycle + pooled,
            "pool_size": pooled,
            "worker": current_holder(runtime.redis, ring),
        }

    return serve(self, ring, report)


@shared_task(name=TASK_NOOP)  # type: ignore[untyped-decorator]
def noop() -> None:
    """Does nothing: the benchmark's floor for a Celery round trip."""
