"""Beat's scheduler: the configured schedule plus one ``refill`` per ring."""

from __future__ import annotations

import logging
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry

from coder_ring.celery.names import TASK_REFILL
from coder_ring.errors import NoWorker

log = logging.getLogger("coder_ring.beat")


class RingRefillScheduler(PersistentScheduler):  # type: ignore[misc]
    """Sends ``coder_ring.refill`` to every configured ring every refill interval."""

    def setup_schedule(self) -> None:
        super().setup_schedule()
        settings = self.app.settings
        interval = settings.refill_interval
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
        (there is no pool to top up), not logged as an error every interval."""
        if entry.task == TASK_REFILL and entry.args:
            try:
                self.app.registry.ensure_served(entry.args[0])
            except NoWorker:
                log.debug("no worker serves ring %s yet: refill skipped", entry.args[0])
                return
        super().apply_entry(entry, producer)
