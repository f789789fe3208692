"""Beat's scheduler: the configured schedule plus one ``refill`` per ring.

While the broker's Redis cannot be reached, beat says so in one line, tries again
after 1, 2, 4... seconds (at most a refill interval apart; the entries due meanwhile
are skipped: the next interval sends them again) and says when it is back. Celery's
own scheduler logged a ~150-line traceback for every entry due during an outage.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery.beat import PersistentScheduler, ScheduleEntry
from kombu.exceptions import OperationalError

from coder_ring.celery.names import TASK_REFILL
from coder_ring.errors import NoWorker, Unreachable
from coder_ring.registry.reachability import Reachability

log = logging.getLogger("coder_ring.beat")

#: Errors that say the broker (or the result backend) cannot be reached.
UNREACHABLE = (Unreachable, OperationalError, redis.ConnectionError, redis.TimeoutError)


def unreachable_cause(error: BaseException) -> BaseException | None:
    """The error in ``error``'s chain that says a server cannot be reached, if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, UNREACHABLE):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class RingRefillScheduler(PersistentScheduler):  # type: ignore[misc]
    """Sends ``coder_ring.refill`` to every configured ring every refill interval."""

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        settings = app.settings
        #: The broker's state: one line when it is lost and one when it is back.
        self.broker = Reachability(
            log, max_wait=settings.refill_interval, server=_server(settings.broker_url)
        )
        super().__init__(app, *args, **kwargs)

    def setup_schedule(self) -> None:
        super().setup_schedule()
        interval = self.app.settings.refill_interval
        entries: dict[str, dict[str, Any]] = {
            f"coder_ring.refill.{ring}": {
                "task": TASK_REFILL,
                "schedule": interval,
                "args": (ring,),
                # A refill nobody took within one interval is superseded by the next one.
                "options": {"expires": interval},
            }
            for ring in self.app.configured_rings()
        }
        self.update_from_dict(entries)

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        """Send ``entry``; a refill for a ring no worker serves yet is skipped quietly
        (there is no pool to top up), not logged as an error every interval; so is every
        entry while the broker is unreachable and no retry is due."""
        if not self.broker.due():
            log.debug("%s unreachable: %s skipped", self.broker.server, entry.name)
            return
        if entry.task == TASK_REFILL and entry.args:
            try:
                self.app.registry.ensure_served(entry.args[0])
            except NoWorker:
                log.debug("no worker serves ring %s yet: refill skipped", entry.args[0])
                return
        log.info("Scheduler: Sending due task %s (%s)", entry.name, entry.task)
        try:
            self.apply_async(entry, producer=producer, advance=False)
        except Exception as error:
            cause = unreachable_cause(error)
            if cause is None:  # not an outage: a bug or a bad entry, with its traceback
                log.exception("could not send %s", entry.name)
                return
            self.broker.failed(cause)
            return
        self.broker.reached()


def _server(broker_url: str) -> str:
    """What beat's outage lines call the broker."""
    return "Redis" if broker_url.startswith(("redis://", "rediss://", "unix://")) else "the broker"
