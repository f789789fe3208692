"""How long a web request waits for its code, derived from the deployment's settings.

A request held by a worker that is killed or cut off goes back to the ring's queue and
is served by the next holder after ``CODER_RING_VISIBILITY_TIMEOUT``; a request sent
while its ring moves (a failover, a partition, a worker whose link turned slow) waits
up to two lock TTLs for the next holder (README, "From Celery callers"). Wait for both,
2 s more (kombu's restore scan runs every second), and 1 s to serve, so such a request is
still answered, not failed.
"""

from __future__ import annotations

from coder_ring.celery import get_code
from coder_ring.errors import InvalidInput, NoWorker, RequestExpired, Unreachable

#: Seconds beyond the visibility timeout and two lock TTLs the README asks callers to
#: wait at least.
REDELIVERY_MARGIN = 2.0
#: A little more on top: the next holder still has to draw the code.
SERVE_MARGIN = 1.0


def timeout_for(visibility_timeout: float, lock_ttl: float) -> float:
    """The README's floor (the visibility timeout, two lock TTLs and 2 s) plus 1 s."""
    return visibility_timeout + 2 * lock_ttl + REDELIVERY_MARGIN + SERVE_MARGIN


def code_timeout() -> float:
    """Seconds to wait for a code, from the environment's settings (:func:`timeout_for`):
    23 s with the defaults."""
    settings = get_code.app.settings
    return timeout_for(settings.visibility_timeout, settings.lock_ttl)


def http_status(error: Exception) -> int:
    """The HTTP status of a failed call: 400 for the caller's bad input, 503 when nothing
    can serve the ring now, 504 when the code did not come in time."""
    if isinstance(error, InvalidInput):
        return 400
    if isinstance(error, NoWorker | Unreachable | RequestExpired):
        return 503
    if isinstance(error, TimeoutError):
        return 504
    return 500
