"""The ``coder-ring`` command: the engine's commands (:mod:`coder_ring.cli`) plus those
that need Celery: ``worker``, ``beat``, ``demo``, and ``get``/``status``
through the workers. This module only parses and calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import redis

from coder_ring import cli as engine_cli
from coder_ring.cli import AppContext, CliError, StatusExtras, cli
from coder_ring.errors import CoderRingError, StoreUnavailable
from coder_ring.service import RingStatus
from workers.settings import WorkerSettings

#: Seconds ``get`` waits for a worker when --timeout is not given.
DEFAULT_GET_TIMEOUT = 30.0
#: Seconds ``status`` waits for a ring's worker to report its pool.
STATUS_TIMEOUT = 3.0


def worker_settings(app: AppContext) -> WorkerSettings:
    """Worker settings from the environment, with the group's --database-url/--config."""
    return dataclasses.replace(WorkerSettings.from_env(), engine=app.settings)


def celery_app(app: AppContext) -> Any:
    """The Celery app for this invocation (tasks registered, nothing connected yet)."""
    from workers.app import create_app

    celery = create_app(worker_settings(app))
    import workers.tasks  # noqa: F401 - registers the tasks with the app

    return celery


def get_through_celery(
    app: AppContext,
    ring: str,
    count: int,
    *,
    extra: str,
    bump: bool,
    timeout: float | None,
) -> Sequence[str]:
    """``coder-ring get`` without --direct: ask the worker serving ``ring``."""
    from celery.exceptions import TimeoutError as CeleryTimeout
    from kombu.exceptions import OperationalError
    from kombu.utils.url import maybe_sanitize_url

    from workers.tasks import BrokerUnreachable, get_code, get_codes

    celery = celery_app(app)
    wait = timeout or DEFAULT_GET_TIMEOUT
    pending: list[Any] = []

    def ask(task: Any, *args: Any, **kwargs: Any) -> Any:
        result = task.delay(*args, **kwargs)
        pending.append(result)
        return result.get(timeout=wait)

    try:
        codes: list[str] = []
        if bump:
            codes.append(ask(get_code, ring, extra=extra, bump=True))
            count -= 1
        if count == 1:
            codes.append(ask(get_code, ring, extra=extra))
        elif count > 1:
            codes += ask(get_codes, ring, count, extra=extra)
        return codes
    except CeleryTimeout:
        raise CliError(
            f"no worker answered for ring {ring!r} within {wait:g} s; is one running? "
            f"(coder-ring worker {ring})"
        ) from None
    except BrokerUnreachable as error:  # names the broker or result backend already
        raise StoreUnavailable(str(error)) from None
    except OperationalError as error:
        raise StoreUnavailable(
            f"cannot reach the broker {maybe_sanitize_url(celery.conf.broker_url)}: {error}"
        ) from None
    except RuntimeError as error:
        # The Redis result backend lost while waiting (it gave up reconnecting).
        if not isinstance(error.__cause__, celery.backend.connection_errors):
            raise
        raise StoreUnavailable(
            f"lost the result backend {maybe_sanitize_url(celery.conf.result_backend)} "
            f"while waiting for ring {ring!r}: {error.__cause__}"
        ) from None
    finally:
        # Stop waiting for results now: left to the garbage collector, an unanswered
        # result unsubscribes while the interpreter shuts down and prints a traceback.
        for result in pending:
            with contextlib.suppress(Exception):
                result.backend.remove_pending_result(result)
            result.backend = None
        celery.close()


def status_extras(app: AppContext, statuses: Sequence[RingStatus]) -> Mapping[str, StatusExtras]:
    """Lock holder (from Redis) and pool (from the holder) of each ring."""
    from workers.lease import current_holder

    settings = worker_settings(app)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        holders = {status.ring: current_holder(client, status.ring) for status in statuses}
    except redis.RedisError as error:
        raise StoreUnavailable(f"cannot reach Redis at {settings.redis_url}: {error}") from None
    finally:
        client.close()
    extras: dict[str, StatusExtras] = {}
    pending = {}
    if any(holders.values()):
        from workers.tasks import status as status_task

        celery_app(app)
        for ring, holder in holders.items():
            if holder:
                pending[ring] = status_task.apply_async((ring,), expires=STATUS_TIMEOUT)
    for ring, holder in holders.items():
        pool: int | str | None = None
        if ring in pending:
            try:
                pool = int(pending[ring].get(timeout=STATUS_TIMEOUT)["pool_size"])
            except Exception:  # noqa: BLE001 - a busy or dying worker: show "?"
                pool = "?"
        extras[ring] = StatusExtras(lock_holder=holder, pool=pool)
    return extras


@cli.command()
@click.argument("rings", nargs=-1, metavar="[RING]...")
@click.option("--all", "all_rings", is_flag=True, help="Serve every configured ring.")
@click.option("-n", "--hostname", default=None, help="Worker node name (default celery@HOST).")
@click.option("--loglevel", default="INFO", show_default=True, help="Celery log level.")
@click.pass_context
def worker(
    ctx: click.Context, rings: tuple[str, ...], all_rings: bool, hostname: str | None, loglevel: str
) -> None:
    """Run a ring worker: it serves each RING (or --all) whose lock it wins, and stands
    by for the others. Same as:

    celery -A workers.app worker --pool threads --concurrency 1 --rings RING,...
    """
    app = engine_cli.app_context(ctx)
    if bool(rings) == all_rings:
        raise CliError("name the rings to serve, or pass --all (not both)")
    service = app.service()
    for ring in rings:
        service.ring(ring)  # UnknownRing names the configured rings
    from celery.utils.nodenames import default_nodename, host_format

    # Started in-process rather than through Celery's command line, which loads every
    # command plugin (flower, click-repl...): about 17 MB less resident memory.
    worker_process = celery_app(app).Worker(
        pool="threads",
        concurrency=1,
        loglevel=loglevel,
        hostname=host_format(default_nodename(hostname)),
        rings=",".join(rings) or "all",
    )
    worker_process.start()
    raise SystemExit(worker_process.exitcode)


@cli.command()
@click.option("--loglevel", default="INFO", show_default=True, help="Celery log level.")
@click.option(
    "--schedule",
    type=click.Path(dir_okay=False),
    default=None,
    help="Beat's schedule file (default: in a temporary directory).",
)
@click.pass_context
def beat(ctx: click.Context, loglevel: str, schedule: str | None) -> None:
    """Run Celery beat: sends `refill` to every configured ring each
    CODER_RING_REFILL_INTERVAL seconds. Same as: celery -A workers.app beat
    """
    app = engine_cli.app_context(ctx)
    app.service()  # the rings file must be valid before beat starts
    path = schedule or str(Path(tempfile.mkdtemp(prefix="coder_ring_beat_")) / "schedule")
    celery_app(app).start(["beat", f"--loglevel={loglevel}", f"--schedule={path}"])


@cli.command()
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the demo keeps its SQLite file and rings file (default: a temp dir).",
)
@click.pass_context
def demo(ctx: click.Context, workdir: str | None) -> None:
    """Everything in one command: an embedded SQLite file, a Redis (started here when
    none answers), migrate, populate, a worker and beat; prints codes and the status,
    then stops all it started."""
    from workers.demo.run import run_demo

    run_demo(Path(workdir) if workdir else None)


def main() -> None:
    """Entry point of the ``coder-ring`` console script."""
    engine_cli.CELERY_GET = get_through_celery
    engine_cli.STATUS_EXTRAS = status_extras
    try:
        engine_cli.main()
    except CoderRingError as error:  # raised outside a command (e.g. by Celery's own CLI)
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
