"""Which rings a worker serves, said at the default log level: one line when it first
holds rings and one on each change, however many rings change.

Celery's default level (and ``coder-ring worker``'s) is WARNING, where the per-ring
"lock won" lines (INFO) are not shown; so the summary is a WARNING, one line per
change with counts and a few names (``took 1000 rings: a, b, c, d, e and 995 more``),
never one line per ring.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from coder_ring.registry.lease import holder_name

if TYPE_CHECKING:
    from coder_ring.celery.seat import RingSeat

log = logging.getLogger("coder_ring.worker.serving")

#: Ring names shown per line, at most.
NAMES_SHOWN = 5
#: A change is logged once the rings held have not changed for this long (a rebalance
#: moves rings over several quick rounds: one line for all of it)...
SETTLE_SECONDS = 1.0
#: ...or once it has been pending this long (rings that keep moving are still told).
PENDING_SECONDS = 10.0


def names(rings: Iterable[str]) -> str:
    """``a, b, c, d, e and 995 more`` (sorted)."""
    ordered = sorted(rings)
    shown = ", ".join(ordered[:NAMES_SHOWN])
    rest = len(ordered) - NAMES_SHOWN
    return f"{shown} and {rest} more" if rest > 0 else shown


class ServingLog:
    """Compares the rings held after each round of the lease thread with those of the
    last line it logged; logs one line when they differ."""

    def __init__(self, node: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self._clock = clock
        #: The rings of the last line (None: nothing logged yet).
        self.serving: frozenset[str] | None = None
        self._seen: frozenset[str] | None = None  # the rings of the last round
        self._changed_at = 0.0
        self._pending_since: float | None = None

    def round(self, seats: Iterable[RingSeat], assignment: Mapping[str, str]) -> str | None:
        """After a round: ``seats`` of this worker (those holding their lock and not
        handing off are served), ``assignment`` ring -> member id the coordinator assigned.
        Returns the line logged, if any."""
        now = frozenset(s.ring for s in seats if s.has_lock() and not s.handing_off)
        when = self._clock()
        if now != self._seen:
            self._seen, self._changed_at = now, when
        before = self.serving
        if now == before or (before is None and not now):
            self._pending_since = None
            return None
        if self._pending_since is None:
            self._pending_since = when
        settled = when - self._changed_at >= SETTLE_SECONDS
        if not settled and when - self._pending_since < PENDING_SECONDS:
            return None
        self._pending_since = None
        self.serving = now
        took = now - (before or frozenset())
        gave = (before or frozenset()) - now
        parts = []
        if took:
            parts.append(f"took {len(took)} ring{'s' * (len(took) != 1)}: {names(took)}")
        if gave:
            parts.append(f"gave up {len(gave)}: {names(gave)}{self._to(gave, assignment)}")
        line = f"{self.node} serves {len(now)} ring{'s' * (len(now) != 1)} ({'; '.join(parts)})"
        log.warning("%s", line)
        return line

    def _to(self, gave: frozenset[str], assignment: Mapping[str, str]) -> str:
        """`` (3 to b@host, 1 unassigned)`` from the coordinator's assignment."""
        to = Counter(holder_name(assignment.get(ring)) or "" for ring in gave)
        shown = [f"{n} to {name}" for name, n in to.most_common() if name and name != self.node]
        if unassigned := to.get("", 0) + to.get(self.node, 0):
            shown.append(f"{unassigned} not assigned elsewhere")
        return f" ({', '.join(shown)})"
