"""Beat's scheduler: the configured schedule plus one ``refill`` per ring."""

from __future__ import annotations

from typing import Any

from celery.beat import PersistentScheduler

from workers.names import TASK_REFILL


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
