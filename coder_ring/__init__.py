"""coder_ring: short, human-readable codes that never repeat within a cycle.

The engine (this package) keeps rings in a database and draws codes one
incremental Fisher-Yates step at a time. It does not import Celery; the Celery
service lives in the ``workers`` package.
"""

from coder_ring.alphabet import ALPHABET, uniquizer
from coder_ring.config import RingConfig, load_rings
from coder_ring.errors import (
    CoderRingError,
    ConfigError,
    Fenced,
    InvalidInput,
    RingMismatch,
    RingNotReady,
    SchemaMissing,
    StoreUnavailable,
    Superseded,
    UnknownRing,
)
from coder_ring.service import RingService, RingStatus
from coder_ring.settings import Settings
from coder_ring.sql.store import SqlStore

__all__ = [
    "ALPHABET",
    "CoderRingError",
    "ConfigError",
    "Fenced",
    "InvalidInput",
    "RingConfig",
    "RingMismatch",
    "RingNotReady",
    "RingService",
    "RingStatus",
    "SchemaMissing",
    "Settings",
    "SqlStore",
    "StoreUnavailable",
    "Superseded",
    "UnknownRing",
    "load_rings",
    "uniquizer",
]
__version__ = "0.1.0"
