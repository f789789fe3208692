"""How long a web request waits for its code, derived from the deployment's settings.

A request held by a worker that is killed goes back to the ring's queue and is served by
the next holder after ``CODER_RING_VISIBILITY_TIMEOUT`` (README, "From Celery callers"):
wait longer than that plus 2 s, so such a request is still answered, not failed.
"""

from __future__ import annotations

from coder_ring.celery import get_code
from coder_ring.errors import InvalidInput, NoWorker, RequestExpired, Unreachable

#: Seconds beyond the visibility timeout the README asks callers to wait at least.
REDELIVERY_MARGIN = 2.0
#: A little more on top: the next holder still has to draw the code.
SERVE_MARGIN = 1.0


def code_timeout() -> float:
    """Seconds to wait for a code: the visibility timeout of the environment's settings
    plus 2 s (the README's floor) plus 1 s to serve it."""
    visibility: float = get_code.app.settings.visibility_timeout
    return visibility + REDELIVERY_MARGIN + SERVE_MARGIN


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
