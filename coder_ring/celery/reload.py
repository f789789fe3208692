"""A worker's seats follow its rings file.

Each lease round, :meth:`RingsReload.round`:

1. reads the rings file again if it changed since the last reload that applied (an
   invalid file is logged once and changes nothing: the rings are served as before);
2. makes the seats match the configured rings this worker may serve, whether or not the
   file changed: a ring added gets a seat; a ring removed is handed off, and its seat
   goes once the handoff ended; a ring added back while its handoff still runs keeps
   its seat (the handoff still gives the pool back and releases the lock, then the seat
   claims the ring again like any ring it may serve);
3. claims again, with its new settings, each ring held whose pool server runs with
   settings the file no longer gives.

Each step compares what is with what should be, so it may run any number of times: a
round that failed halfway (one ring's exception is logged and the other rings go on) is
finished by the next one, and the file counts as applied only once a round applied it
whole.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Protocol

from coder_ring.celery.seat import RingSeat
from coder_ring.config import RingConfig, RingsFile
from coder_ring.errors import ConfigError
from coder_ring.service import RingService

log = logging.getLogger("coder_ring.worker")

#: A rings file's (modification time in ns, size); None while it cannot be read.
Stamp = tuple[int, int] | None


class SeatHost(Protocol):
    """What the reload needs of the worker (:class:`coder_ring.celery.runtime.WorkerRuntime`)."""

    service: RingService
    #: Rings named on the command line (empty: every configured ring).
    restriction: frozenset[str]
    seats: dict[str, RingSeat]

    def new_seat(self, ring: str) -> RingSeat:
        """A seat for ``ring``, not held."""

    def hand_off(self, seat: RingSeat, why: str) -> None:
        """Start handing ``seat`` off (its lock is released once its pool is home)."""

    def reclaim(self, seat: RingSeat) -> Future[None]:
        """Give ``seat``'s pool back and claim the ring again with its current settings."""


class RingsReload:
    """The rings file as ``host`` last applied it, and the seats that follow it."""

    def __init__(self, host: SeatHost, rings_file: RingsFile, seen: Stamp) -> None:
        self.host = host
        self.file = rings_file
        #: The file's stamp when its content was last applied (``seen``: the stamp taken
        #: before the service read it, so an edit made since is applied).
        self._applied = seen
        #: Guards ``host.seats`` between a round and a handoff ending on another thread:
        #: a ring added back just as its handoff ends keeps a seat either way.
        self._mutex = threading.Lock()
        #: Reclaims queued or running, by ring: one at a time per ring.
        self._reclaims: dict[str, Future[None]] = {}

    def round(self) -> None:
        """Reload the file if it changed, then make the seats match the rings (above)."""
        stamp = self.file.stamp()
        before: dict[str, RingConfig] | None = None
        if stamp != self._applied:
            try:
                rings = self.file.rings()
            except ConfigError as error:
                # The same error until the file changes again: said once, not every round.
                self._applied = stamp
                log.error("rings file not reloaded (%s); serving the rings as before", error)
            else:
                before = self.host.service.rings
                self.host.service.reload(rings)
        added, removed, whole = self.sync()
        if before is None:
            return
        after = self.host.service.rings
        changed = [
            name
            for name in self.host.seats
            if name in after and name in before and after[name] != before[name]
        ]
        log.info(
            "rings file reloaded: %d added, %d removed, %d changed",
            len(added),
            len(removed),
            len(changed),
        )
        if whole:
            self._applied = stamp
        else:
            log.warning("rings file reload not applied to every ring; retried next round")

    def sync(self) -> tuple[list[str], list[str], bool]:
        """Make the seats match the configured rings; (rings added, rings removed, whether
        every ring's change applied)."""
        configured = self.host.service.rings
        restriction = self.host.restriction
        wanted = configured.keys() & restriction if restriction else set(configured)
        added: list[str] = []
        removed: list[str] = []
        whole = True
        with self._mutex:
            for name in sorted(wanted | self.host.seats.keys()):
                try:
                    if name in wanted:
                        if self._keep(name, configured[name]):
                            added.append(name)
                    elif self._drop(name):
                        removed.append(name)
                except Exception:  # one ring's failure must not skip the others
                    log.exception("ring %s: rings file change not applied", name)
                    whole = False
        return added, removed, whole

    def handed_off(self, seat: RingSeat) -> None:
        """``seat``'s handoff ended: its seat goes if its ring left the rings file (and
        was not added back meanwhile)."""
        with self._mutex:
            if seat.closed and self.host.seats.get(seat.ring) is seat:
                del self.host.seats[seat.ring]
                self._reclaims.pop(seat.ring, None)

    # ----------------------------------------------------------------------------------

    def _keep(self, name: str, config: RingConfig) -> bool:
        """Seat ``name`` (configured); True if it was not seated before."""
        seat = self.host.seats.get(name)
        if seat is None:
            self.host.seats[name] = self.host.new_seat(name)
            return True
        if seat.closed:
            # Added back while its handoff runs (a request in flight holds it up). That
            # handoff still releases the lock: this seat claims the ring again afterwards.
            # (A new seat would share this worker's lock token with the old one, and the
            # old one's release would drop the lock under it.)
            seat.closed = False
            return True
        self._reclaim_if_changed(seat, config)
        return False

    def _drop(self, name: str) -> bool:
        """Let ``name`` go (no longer configured); True if it was open before."""
        seat = self.host.seats[name]
        was_open = not seat.closed
        seat.closed = True
        if not seat.has_lock():
            del self.host.seats[name]
            self._reclaims.pop(name, None)
        elif not seat.handing_off:
            # (Again each round while it fails: the seat is closed, held and not moving.)
            self.host.hand_off(seat, "removed from the rings file")
        return was_open

    def _reclaim_if_changed(self, seat: RingSeat, config: RingConfig) -> None:
        # Compared with what the server claimed with, not with the previous file: a
        # change a failed round left behind, or a claim that began before the reload,
        # is caught up next round.
        pending = self._reclaims.get(seat.ring)
        if pending is not None:
            if not pending.done():
                return
            error = pending.exception()
            if error is not None:  # tried again below if still needed
                log.error("ring %s: not claimed again", seat.ring, exc_info=error)
        server = seat.server
        if (
            seat.has_lock()
            and not seat.handing_off
            and server.epoch is not None
            and server.config != config
        ):
            self._reclaims[seat.ring] = self.host.reclaim(seat)
        else:
            self._reclaims.pop(seat.ring, None)
