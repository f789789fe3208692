"""The ring tasks, bound to one :class:`~coder_ring.celery.app.CoderRingApp`. Thin: check the call
once in the caller, find this worker's seat, call the engine.

The caller's side (:meth:`RingTask.apply_async`) checks the arguments, refuses
``countdown``/``eta`` (a delayed request would be redelivered by the broker's
visibility timeout and burn codes on each delivery), fails fast when no worker may
serve the ring, and picks the ring's queue. The worker's side checks arguments again
only where they enter the engine (a request sent by name was never checked).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from celery import Task
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from coder_ring.celery.caller_errors import CALLER_ERRORS
from coder_ring.celery.names import (
    TASK_GET_CODE,
    TASK_GET_CODES,
    TASK_NOOP,
    TASK_REFILL,
    TASK_RESET,
    TASK_STATUS,
    ring_queue,
)
from coder_ring.celery.seat import NotServedHere
from coder_ring.errors import (
    BrokerUnreachable,
    CoderRingError,
    ConfigError,
    InvalidInput,
    RequestExpired,
    StoreUnavailable,
    UnknownRing,
)
from coder_ring.ring_server import RingServer
from coder_ring.urls import redact_url
from coder_ring.validation import check_bump, check_count, check_extra

if TYPE_CHECKING:
    from coder_ring.celery.app import CoderRingApp
    from coder_ring.celery.runtime import WorkerRuntime

T = TypeVar("T")
#: The header carrying a request's deadline (Unix time): past it, the request is not served.
DEADLINE_HEADER = "coder_ring_deadline"
#: Options that route a request through an exchange (its binding), not by queue name.
ROUTING_OPTIONS = ("exchange", "routing_key", "exchange_type")
#: Options that would delay a ring request (see the module doc).
DELAY_OPTIONS = ("countdown", "eta")
_CHECKS: dict[str, Callable[[object], object]] = {
    "extra": check_extra,
    "count": check_count,
    "bump": check_bump,
}


class RingTask(Task):  # type: ignore[misc]
    """A task that belongs to a ring: checked in the caller, sent to the ring's queue, and
    expiring (a request whose caller gave up is never served and burns no code)."""

    #: A caller's bad request: Celery logs it at INFO without a traceback, and
    #: :meth:`serve` logs one WARNING line per ring and kind per interval.
    throws = CALLER_ERRORS

    @cached_property
    def signature_of_run(self) -> inspect.Signature:
        """The parameters of the task's function (``self`` left out)."""
        return inspect.signature(self.run)

    def bind_call(self, args: Any, kwargs: Any) -> dict[str, Any]:
        """The call's arguments by name, defaults filled in; TypeError naming the task for
        a call that does not fit its function."""
        try:
            bound = self.signature_of_run.bind(*(args or ()), **(kwargs or {}))
        except TypeError as error:
            raise TypeError(f"{self.name}: {error}") from None
        bound.apply_defaults()
        return bound.arguments

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        app: CoderRingApp = self.app
        call = self.bind_call(args, kwargs)
        ring = call["ring"]
        rings = app.configured_rings()
        if not isinstance(ring, str) or ring not in rings:
            raise UnknownRing.naming(ring, rings)
        for name, check in _CHECKS.items():
            if name in call:
                check(call[name])
        for name in DELAY_OPTIONS:
            if options.get(name) is not None:
                raise InvalidInput(
                    f"invalid option {name}={options[name]!r} for {self.name}: ring requests "
                    "cannot be delayed (the broker would deliver a delayed request again "
                    "and again, each delivery burning codes); send it when it is due"
                )
        app.registry.ensure_served(ring)
        options["queue"] = ring_queue(app.settings.namespace, ring)
        routed = {name: options[name] for name in ROUTING_OPTIONS if options.get(name)}
        if routed and "declare" in options and not options["declare"]:
            # Red team 8: through an exchange nothing is bound to, the broker drops the
            # request without a word and the caller waits its whole timeout.
            raise InvalidInput(
                f"invalid option declare={options['declare']!r} with {routed} for "
                f"{self.name}: a request routed through an exchange needs the ring's queue "
                "declared and bound, else the broker drops it; leave declare out"
            )
        if app.publishes_by_name and not routed:
            # The request goes to the ring's list by its name (Celery's anonymous
            # exchange), which needs no binding. Celery would first declare and bind the
            # queue: two round trips per ring on each connection's first request, and an
            # entry kept for good per ring. At 10,000 rings nearly every request paid them
            # (issue 19). The workers declare the queues they consume. A request routed
            # through an exchange is looked up in the bindings: it keeps the declare (red
            # team 6: before any worker consumed the queue, kombu dropped it).
            options.setdefault("declare", ())
        # The request's deadline travels as a plain number in a header, checked by the
        # worker before it serves: Celery's own `expires` costs a datetime with its time
        # zone on both sides, about a tenth of a no-op's round trip (README, Performance).
        headers = dict(options.get("headers") or {})
        headers.setdefault(DEADLINE_HEADER, time.time() + app.settings.task_expires)
        options["headers"] = headers
        try:
            return super().apply_async(args, kwargs, **options)
        except OperationalError as error:
            where = redact_url(app.conf.broker_url)
            if refused(error):
                raise ConfigError(
                    f"the broker {where} refused its user (nothing was sent): {error}; give "
                    "the user the namespace's ACL rules (README, Redis ACL)"
                ) from error
            raise BrokerUnreachable(
                f"cannot reach the broker {where} (nothing was sent): {error}"
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
                f"cannot reach the result backend {redact_url(app.conf.result_backend)} "
                f"(nothing was sent): {cause}"
            ) from cause

    def runtime(self) -> WorkerRuntime:
        """This worker's ring seats."""
        runtime: WorkerRuntime | None = self.app.runtime
        if runtime is None:
            raise CoderRingError(
                f"{self.name} ran in a process that is not a ring worker "
                "(start one with `coder-ring worker`)"
            )
        return runtime

    def serve(self, ring: str, action: Callable[[RingServer], T], extra: str = "") -> T:
        """Run ``action`` on this worker's server of ``ring``, counted and timed for the
        metrics; a request this worker does not serve now goes back to the ring's queue
        for the worker that does.

        Metering lives here, not in an overridden ``__call__``: Celery runs a task
        without ``__call__`` of its own on its fast path (no extra request context).
        """
        deadline = getattr(self.request, DEADLINE_HEADER, None)
        if isinstance(deadline, int | float) and time.time() > deadline:
            raise RequestExpired(
                f"request {self.request.id} for ring {ring!r} expired "
                f"{time.time() - deadline:.1f} s before a worker took it; nothing was drawn"
            )
        runtime = self.runtime()
        metrics = runtime.metrics
        task = self.name.rpartition(".")[2]
        try:
            seat = runtime.seat(ring)
        except UnknownRing as error:  # sent by name: not a metrics label (any text)
            self.app.caller_errors.report(task, ring, error)
            raise
        started = time.perf_counter()
        try:
            result = seat.serve(action)
        except NotServedHere as error:
            metrics.requeued(ring)
            raise Reject(str(error), requeue=True) from None
        except Exception as error:
            if isinstance(error, StoreUnavailable):
                runtime.store_failed()
            if isinstance(error, CALLER_ERRORS):
                self.app.caller_errors.report(task, ring, error)
            metrics.failed(task, ring, error)
            raise
        runtime.store_ok()
        metrics.finished(task, ring, extra, result, time.perf_counter() - started)
        # after_return tops this pool up once the result is stored.
        self.request.coder_ring_served = (seat, extra)
        return result


class ServingTask(RingTask):
    """A ring task that hands out codes. The pool is topped up after the result was sent
    (Celery runs ``after_return`` after storing it), so no caller waits for it."""

    def after_return(  # noqa: PLR0917 - Celery's signature
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        served = getattr(self.request, "coder_ring_served", None)
        if served is not None:
            seat, extra = served
            if seat.can_serve():
                seat.server.top_up_if_low(extra)


@dataclass(frozen=True)
class RingTasks:
    """The tasks of one app."""

    get_code: Task
    get_codes: Task
    reset: Task
    status: Task
    refill: Task
    noop: Task


def register(app: CoderRingApp) -> RingTasks:
    """Define the ring tasks on ``app`` (and only there: not shared with other apps)."""

    @app.task(base=ServingTask, bind=True, name=TASK_GET_CODE, shared=False)  # type: ignore[untyped-decorator]
    def get_code(self: RingTask, ring: str, extra: str = "", bump: bool = False) -> str:
        """One code of ``ring`` (``extra``: a prefix with its own cycle; ``bump``: start
        the next cycle of that extra first)."""
        return self.serve(ring, lambda server: server.get_code(extra, bump), extra)

    @app.task(base=ServingTask, bind=True, name=TASK_GET_CODES, shared=False)  # type: ignore[untyped-decorator]
    def get_codes(
        self: RingTask, ring: str, count: int, extra: str = "", bump: bool = False
    ) -> list[str]:
        """``count`` codes (1 to 10,000) of ``ring``, in one database transaction at most."""
        return self.serve(ring, lambda server: server.get_codes(count, extra, bump), extra)

    @app.task(base=RingTask, bind=True, name=TASK_RESET, shared=False)  # type: ignore[untyped-decorator]
    def reset(self: RingTask, ring: str) -> int:
        """Start every extra of ``ring`` over; returns the ring's epoch. May repeat codes."""
        return self.serve(ring, lambda server: server.reset().epoch)

    @app.task(  # type: ignore[untyped-decorator]
        base=RingTask,
        bind=True,
        name=TASK_REFILL,
        shared=False,
        ignore_result=True,
        # Beat sends one per ring every interval: no task events, so flower's task list
        # shows callers' requests, not this housekeeping.
        send_events=False,
    )
    def refill(self: RingTask, ring: str) -> int:
        """Top ``ring``'s pools up (sent by beat)."""
        return self.serve(ring, lambda server: server.refill())

    @app.task(base=RingTask, bind=True, name=TASK_STATUS, shared=False)  # type: ignore[untyped-decorator]
    def status(self: RingTask, ring: str) -> dict[str, Any]:
        """Where ``ring`` stands, with this worker as its holder and its pools."""
        runtime = self.runtime()

        def report(server: RingServer) -> dict[str, Any]:
            server.settle()  # a top-up in flight lands first: the figures hold still
            state = runtime.service.status(ring)
            return state.served_by(runtime.node, server.pooled_by_extra()).as_dict()

        return self.serve(ring, report)

    @app.task(name=TASK_NOOP, shared=False)  # type: ignore[untyped-decorator]
    def noop() -> None:
        """Does nothing: the benchmark's floor for a round trip through this app."""

    return RingTasks(get_code, get_codes, reset, status, refill, noop)


def refused(error: BaseException) -> bool:
    """Whether Redis refused ``error``'s call for want of a permission (ACL): the user's
    rules must change, trying again will not help."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, redis.exceptions.NoPermissionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
