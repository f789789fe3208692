"""Every error coder_ring raises derives from :class:`CoderRingError`.

Callers can catch the root to handle any coder_ring failure; the subclasses say
what went wrong. Messages always name the bad value and what is allowed. Every
error is built from its message alone, so it survives Celery's result
serialization and reaches a caller in another process as the same class.
"""

from __future__ import annotations

from collections.abc import Iterable


class CoderRingError(Exception):
    """Root of every error raised by coder_ring."""


class ConfigError(CoderRingError):
    """The settings or the rings file are invalid."""


class InvalidInput(CoderRingError, ValueError):
    """An argument (extra, count, bump, ring name...) is not allowed. Nothing was changed."""


class UnknownRing(InvalidInput):
    """The ring name is not configured. Build it with :meth:`naming`."""

    @classmethod
    def naming(cls, name: object, configured: Iterable[str]) -> UnknownRing:
        """The error for ring ``name``, listing the ``configured`` rings."""
        listed = ", ".join(sorted(configured)) or "(none)"
        return cls(f"unknown ring {name!r}; configured rings: {listed}")


class ExtraConflict(InvalidInput):
    """An extra could produce another extra's codes (it extends, or is extended by, an
    extra the ring has used with alphabet characters only). Nothing was changed."""


class RingMismatch(CoderRingError):
    """The stored ring has another base_length or filter than the rings file says."""


class SchemaMissing(CoderRingError):
    """The database has no coder_ring schema (run ``coder-ring migrate``)."""


class Unreachable(CoderRingError):
    """A server coder_ring needs (the database, the broker, Redis) cannot be reached or
    failed; nothing was applied or sent. Catch the subclasses to tell which."""


class StoreUnavailable(Unreachable):
    """The database cannot be reached or failed; the operation was not applied."""


class BrokerUnreachable(Unreachable):
    """The Celery broker or result backend cannot be reached; nothing was sent. Not a
    :class:`StoreUnavailable`: the database may be fine."""


class Fenced(CoderRingError):
    """A write carried an epoch that is no longer the ring's: another holder claimed it,
    or an operator reset or rebuilt the ring. Nothing was written; stop serving it."""


class NotHolding(CoderRingError):
    """This server does not hold its ring (not activated yet, or it lost the ring)."""


class RequestExpired(CoderRingError):
    """A request reached a worker after its deadline (its caller gave up): it was not
    served, and no code was drawn for it."""


class NoWorker(CoderRingError):
    """No live worker may serve the ring, so a request would wait for nothing."""
