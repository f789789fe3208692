"""coder_ring: short, human-readable codes that never repeat.

The engine (this package) keeps rings in a database and draws codes one incremental
Fisher-Yates step at a time, each (ring, extra) in its own cycle. It does not import
Celery; the Celery service lives in the ``workers`` package.
"""

from coder_ring.alphabet import ALPHABET, uniquizer
from coder_ring.config import RingConfig, load_rings
from coder_ring.errors import (
    BrokerUnreachable,
    CoderRingError,
    ConfigError,
    ExtraConflict,
    Fenced,
    InvalidInput,
    NotHolding,
    NoWorker,
    RequestExpired,
    RingMismatch,
    SchemaMissing,
    StoreUnavailable,
    UnknownRing,
)
from coder_ring.memory_store import MemoryStore
from coder_ring.service import RingService
from coder_ring.settings import Settings
from coder_ring.sql.store import SqlStore
from coder_ring.status import ExtraStatus, RingStatus

__all__ = [
    "ALPHABET",
    "BrokerUnreachable",
    "CoderRingError",
    "ConfigError",
    "ExtraConflict",
    "ExtraStatus",
    "Fenced",
    "InvalidInput",
    "MemoryStore",
    "NoWorker",
    "NotHolding",
    "RequestExpired",
    "RingConfig",
    "RingMismatch",
    "RingService",
    "RingStatus",
    "SchemaMissing",
    "Settings",
    "SqlStore",
    "StoreUnavailable",
    "UnknownRing",
    "load_rings",
    "uniquizer",
]
__version__ = "0.2.0"
