"""What one fault-injection run is: its rings, extras, workers, callers and timeouts.

Every figure here is printed with the report, so a run can be read (and replayed with
``CODER_RING_FAULT_SEED``) on its own.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from tests.harness import TEST_LOCK_TTL

#: Codes the callers must receive (the CI run; ``make faults-long`` asks for 100,000).
CODES = int(os.environ.get("CODER_RING_FAULT_CODES", "20000"))
#: Codes per second the callers ask for, all together.
RATE = float(os.environ.get("CODER_RING_FAULT_RATE", "500"))
SEED = int(os.environ.get("CODER_RING_FAULT_SEED", "0")) or int(time.time())
RANDOM = random.Random(SEED)

NAMESPACE = "faults"
CALLERS = 6
POOL = 32
#: Two small rings (1,024 codes a cycle): every (ring, extra) wraps every few seconds.
RINGS: dict[str, dict[str, Any]] = {
    "alpha": {"base_length": 2, "pool_size": POOL},
    "beta": {"base_length": 2, "pool_size": POOL},
}
#: Every request picks one; each has its own cycles (and its own pool in the holder).
EXTRAS = ("", "2026-", "hi")
#: Worker name -> (rings it may serve, empty: every ring; started by ``coder-ring
#: worker``, else by ``celery -A workers.app worker``). Three workers may serve each
#: ring: its holder has two standbys.
WORKERS: dict[str, tuple[list[str], bool]] = {
    "w1": ([], True),  # coder-ring worker --all
    "w2": ([], False),  # celery worker, no --rings: every ring
    "w3": (["alpha"], True),  # coder-ring worker alpha
    "w4": (["beta"], False),  # celery worker --rings beta
}

REQUEST_TIMEOUT = 20.0  # every caller's .get(timeout=...): above the visibility timeout + 2
TASK_EXPIRES = 12.0  # a request not started by then is never served (and burns no code)
#: On top of the timeout: ``.delay()`` gives up on an unreachable broker within about
#: 5 s (README), plus room for this busy 2-core machine.
SLACK = 8.0
#: A ring that serves no code this long after a fault never resumed.
RECOVERY_LIMIT = 45.0
#: The README promises a killed holder's rings move within 2x the lock TTL; plus the
#: claim, the pool's first draw and a Celery round trip on a loaded machine.
TAKEOVER_LIMIT = 2 * TEST_LOCK_TTL + 3.0
STEADY_SECONDS = 2.0  # normal service between two faults
PROBE_INTERVAL = 0.25
BURST_SINGLES = 8  # requests sent to a ring's holder just before a fault hits it
BURST_BATCHES = 2
BATCH = (50, 500)  # sizes of get_codes requests
#: A round of faults lasts about this long (used to decide whether another round fits).
ROUND_SECONDS_GUESS = 75.0

#: What a caller may get instead of codes, with the faults that explain it.
CLEAR_ERRORS = {
    "TimeoutError",  # celery: the request or its result was lost with a worker or Redis
    "TaskRevokedError",  # a request sent with Celery's own expires, expired unstarted
    "RequestExpired",  # the request expired (its deadline) before a worker started it
    "StoreUnavailable",  # PostgreSQL was down
    "BrokerUnreachable",  # the broker or result backend was down at .delay()
    "OperationalError",  # kombu: the broker went away while the result was awaited
    "ConnectionError",  # redis: the result backend was down while the caller waited
    "NoWorker",  # Redis came back empty, or every worker lost its database for a TTL
}


def settings_figures() -> dict[str, Any]:
    """The settings, for the report."""
    return {
        "codes_target": CODES,
        "seed": SEED,
        "rate": RATE,
        "callers": CALLERS,
        "lock_ttl": TEST_LOCK_TTL,
        "request_timeout": REQUEST_TIMEOUT,
        "task_expires": TASK_EXPIRES,
        "rings": RINGS,
        "extras": list(EXTRAS),
        "workers": {name: rings or "all" for name, (rings, _) in WORKERS.items()},
    }
