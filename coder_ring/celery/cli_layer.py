"""The CLI's serving layer (:class:`~coder_ring.cli_support.ServingLayer` through Celery
and Redis): ``coder-ring get`` through a worker, the holder and pool columns of
``status``, and telling the serving worker about a reset or rebuild."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import redis

from coder_ring.cli_support import AppContext, CliError
from coder_ring.errors import CoderRingError, Unreachable
from coder_ring.registry import notices
from coder_ring.registry.client import registry_client
from coder_ring.registry.keys import lock_key
from coder_ring.registry.lease import holder_name, lock_holders
from coder_ring.registry.membership import live_members
from coder_ring.status import RingStatus
from coder_ring.store import RingRecord
from coder_ring.urls import redact_url

if TYPE_CHECKING:
    # Imported when first used: Celery takes a fifth of a second to import, which the
    # engine's commands (get --direct, migrate...) need not pay.
    from coder_ring.celery.app import CoderRingApp

#: Seconds ``get`` waits for a worker when --timeout is not given.
DEFAULT_GET_TIMEOUT = 30.0
#: Seconds ``status`` waits for a ring's worker to report its pool.
STATUS_TIMEOUT = 3.0


@contextmanager
def celery_app(app: AppContext) -> Iterator[CoderRingApp]:
    """A coder_ring Celery app for this invocation, closed afterwards."""
    from coder_ring.celery.app import create_app

    celery = create_app(app.worker_settings())
    try:
        yield celery
    finally:
        celery.close()


def _forget(results: Sequence[Any]) -> None:
    # Stop waiting for results now: left to the garbage collector, an unanswered result
    # unsubscribes while the interpreter shuts down and prints a traceback.
    for result in results:
        with contextlib.suppress(Exception):
            result.backend.remove_pending_result(result)
        result.backend = None


class CeleryLayer:
    """:class:`~coder_ring.cli_support.ServingLayer` through Celery and Redis."""

    def get_codes(
        self,
        app: AppContext,
        ring: str,
        count: int,
        *,
        extra: str,
        bump: bool,
        timeout: float | None,
    ) -> Sequence[str]:
        from celery.exceptions import TimeoutError as CeleryTimeout

        wait = timeout or DEFAULT_GET_TIMEOUT
        pending: list[Any] = []
        with celery_app(app) as celery:
            tasks = celery.ring_tasks
            try:
                if count == 1:
                    result = tasks.get_code.delay(ring, extra=extra, bump=bump)
                    pending.append(result)
                    return [result.get(timeout=wait)]
                result = tasks.get_codes.delay(ring, count, extra=extra, bump=bump)
                pending.append(result)
                codes: list[str] = result.get(timeout=wait)
                return codes
            except CeleryTimeout:
                raise CliError(
                    f"no worker answered for ring {ring!r} within {wait:g} s (the request "
                    "expires unserved); see `coder-ring workers`"
                ) from None
            except RuntimeError as error:
                # The Redis result backend lost while waiting (it gave up reconnecting).
                if not isinstance(error.__cause__, celery.backend.connection_errors):
                    raise
                raise Unreachable(
                    f"lost the result backend {redact_url(celery.conf.result_backend)} "
                    f"while waiting for ring {ring!r}: {error.__cause__}"
                ) from None
            finally:
                _forget(pending)

    def served(self, app: AppContext, statuses: Sequence[RingStatus]) -> list[RingStatus]:
        settings = app.worker_settings()
        client = registry_client(settings, 2.0)
        try:
            members = {member.id: member for member in live_members(client, settings.namespace)}
            tokens = lock_holders(client, settings.namespace, [s.ring for s in statuses])
        except redis.RedisError as error:
            import click

            click.echo(
                f"warning: holders and pools unavailable: cannot reach Redis at "
                f"{redact_url(settings.redis_url)}: {error}",
                err=True,
            )
            return list(statuses)
        finally:
            client.close()
        ours = redact_url(settings.engine.database_url)
        result: list[RingStatus] = []
        pending: dict[str, Any] = {}
        with celery_app(app) as celery:
            for state in statuses:
                token = tokens.get(state.ring)
                member = members.get(token) if token else None
                if token and member is not None and member.database != ours:
                    # Same namespace, another database: its pool says nothing about ours.
                    holder = f"{holder_name(token)} (database {member.database})"
                    result.append(state.served_by(holder, None))
                    continue
                if token:
                    with contextlib.suppress(CoderRingError):
                        pending[state.ring] = celery.ring_tasks.status.apply_async(
                            (state.ring,), expires=STATUS_TIMEOUT
                        )
                result.append(state.served_by(holder_name(token), None))
            try:
                for index, state in enumerate(result):
                    asked = pending.get(state.ring)
                    if asked is None:
                        continue
                    with contextlib.suppress(Exception):  # a busy or dying worker: "-"
                        report = RingStatus.from_dict(asked.get(timeout=STATUS_TIMEOUT))
                        result[index] = report
            finally:
                _forget(list(pending.values()))
        return result

    def changed(self, app: AppContext, ring: str, record: RingRecord) -> str:
        settings = app.worker_settings()
        client = registry_client(settings, 2.0)
        store = app.store()
        try:
            notices.publish(client, settings.namespace, notices.CHANGED, ring)
            key = lock_key(settings.namespace, ring)
            holder = holder_name(client.get(key))
            if holder is None:
                return f"no worker serves ring {ring!r} now: the next one starts from the new state"
            deadline = time.monotonic() + max(2 * settings.lock_ttl, 3.0)
            while time.monotonic() < deadline:
                stored = store.ring_record(ring)
                if stored is not None and stored.epoch > record.epoch:
                    return (
                        f"the serving worker {holder} dropped its pool and serves the new "
                        f"state (epoch {stored.epoch})"
                    )
                if client.get(key) is None:
                    return f"the serving worker {holder} let ring {ring!r} go"
                time.sleep(0.05)
        except redis.RedisError as error:
            return (
                f"warning: cannot reach Redis at {redact_url(settings.redis_url)} ({error}); "
                "the serving worker notices the change within its lease round"
            )
        finally:
            client.close()
        return (
            f"warning: the serving worker {holder} has not taken the change up yet; it does "
            f"within {settings.lock_ttl / 3:.1f} s (its next lease round)"
        )
