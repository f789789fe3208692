"""Every error coder_ring raises derives from :class:`CoderRingError`.

Callers can catch the root to handle any coder_ring failure; the subclasses say
what went wrong. Messages always name the bad value and what is allowed.
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
    """The ring name is not configured.

    Constructed from the message alone so that it survives Celery's result
    serialization; build it with :meth:`naming`.
    """

    @classmethod
    def naming(cls, name: object, configured: Iterable[str]) -> UnknownRing:
        """The error for ring ``name``, listing the ``configured`` rings."""
        listed = ", ".join(sorted(configured)) or "(none)"
        return cls(f"unknown ring {name!r}; configured rings: {listed}")


class RingNotReady(CoderRingError):
    """The ring's table is not (completely) filled yet; nothing is drawn from it."""


class RingMismatch(CoderRingError):
    """The stored ring was built with another base_length or filter than the config says."""


class SchemaMissing(CoderRingError):
    """The database has no coder_ring schema (run ``coder-ring migrate``)."""


class StoreUnavailable(CoderRingError):
    """The database cannot be reached or failed; the operation was not applied."""


class Fenced(CoderRingError):
    """A write carried an epoch that is no longer the ring's: another holder claimed it.

    Nothing was written. The caller must stop serving the ring.
    """


class Superseded(CoderRingError):
    """A draw expected the ring at a version it is no longer at (something else wrote
    since the caller last saw it). Nothing was written."""
