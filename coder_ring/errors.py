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


class InvalidInput(CoderRingError, ValueError):  # noqa: N818 - reads better at call sites
    """An argument (extra, count, bump, ring name...) is not allowed. Nothing was changed."""


class UnknownRing(InvalidInput):  # noqa: N818
    """The ring name is not configured."""

    def __init__(self, name: object, configured: Iterable[str]) -> None:
        self.name = name
        self.configured = sorted(configured)
        listed = ", ".join(self.configured) or "(none)"
        super().__init__(f"unknown ring {name!r}; configured rings: {listed}")


class RingNotReady(CoderRingError):
    """The ring's table is not (completely) filled yet; nothing is drawn from it."""


class RingMismatch(CoderRingError):
    """The stored ring was built with another base_length or filter than the config says."""


class SchemaMissing(CoderRingError):
    """The database has no coder_ring schema (run ``coder-ring migrate``)."""


class StoreUnavailable(CoderRingError):
    """The database cannot be reached or failed; the operation was not applied."""


class Fenced(CoderRingError):  # noqa: N818
    """A write carried an epoch that is no longer the ring's: another holder claimed it.

    Nothing was written. The caller must stop serving the ring.
    """
