"""coder_ring: short, human-readable codes that never repeat.

The engine (this package's top-level modules and ``sql/``) keeps rings in a database
and draws codes one incremental Fisher-Yates step at a time, each (ring, extra) in its
own cycle. It does not import Celery. The service on Celery lives in
:mod:`coder_ring.celery` (callers: ``from coder_ring.celery import get_code``), over the
Celery-free registry (:mod:`coder_ring.registry`) and metrics (:mod:`coder_ring.metrics`).
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
    NoWorker,
    RequestExpired,
    RingMismatch,
    SchemaMissing,
    StoreUnavailable,
    UnknownRing,
    Unreachable,
)
from coder_ring.memory_store import MemoryStore
from coder_ring.service import RingService
from coder_ring.settings import Settings
from coder_ring.sql.store import SqlStore
from coder_ring.status import ExtraStatus, RingStatus
from coder_ring.store import Store

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
    "RequestExpired",
    "RingConfig",
    "RingMismatch",
    "RingService",
    "RingStatus",
    "SchemaMissing",
    "Settings",
    "SqlStore",
    "Store",
    "StoreUnavailable",
    "UnknownRing",
    "Unreachable",
    "load_rings",
    "uniquizer",
]
__version__ = "0.2.0"
