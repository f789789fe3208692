"""Redis behind Sentinel: the URL form kombu and Celery accept, read and checked once.

``sentinel://[USER:PASSWORD@]HOST[:PORT][/DB];sentinel://HOST2[:PORT];...`` names the
sentinels (``;`` between them, each a full URL, port 26379 by default). The user,
password and database number are those of the primary; kombu and Celery read them
from the first URL, so this module does too and refuses a later URL that names others.
The primary's name (Sentinel's ``master_name``) is a setting of its own
(``CODER_RING_SENTINEL_MASTER``): kombu and Celery take it from their transport
options, not from the URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from coder_ring.urls import redact_url

SCHEME = "sentinel"
DEFAULT_SENTINEL_PORT = 26379
SEPARATOR = ";"
FORM = "sentinel://[USER:PASSWORD@]HOST[:PORT][/DB], one per sentinel, separated by ';'"


@dataclass(frozen=True)
class SentinelTarget:
    """The sentinels of a URL and what the primary is reached with."""

    sentinels: tuple[tuple[str, int], ...]
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel(url: str) -> bool:
    """True when ``url`` names sentinels (its scheme is ``sentinel``)."""
    return url.strip().lower().startswith(f"{SCHEME}:")


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The sentinels, database and credentials of ``url``; ValueError saying what is
    wrong and the form allowed (its text never shows the password)."""
    chunks = [chunk.strip() for chunk in url.split(SEPARATOR)]
    if not all(chunks):
        raise ValueError(f"an empty sentinel between ';' separators; expected {FORM}")
    sentinels: list[tuple[str, int]] = []
    first: tuple[int | None, str | None, str | None] | None = None
    for chunk in chunks:
        host, port, db, username, password = _sentinel(chunk)
        sentinels.append((host, port))
        named = (db, username, password)
        if first is None:
            first = named
        elif (db is not None and db != first[0]) or (username, password) not in {
            (None, None),
            first[1:],
        }:
            raise ValueError(
                f"{redact_url(chunk)!r} names another database or user than the first "
                "sentinel; kombu and Celery use the first one's: put them there only"
            )
    assert first is not None  # at least one chunk: split always gives one
    db, username, password = first
    return SentinelTarget(tuple(sentinels), db or 0, username, password)


def _sentinel(chunk: str) -> tuple[str, int, int | None, str | None, str | None]:
    """(host, port, db or None, user, password) of one ``sentinel://`` URL."""
    shown = redact_url(chunk)
    try:
        parts = urlsplit(chunk)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"{shown!r} does not parse ({error}); expected {FORM}") from None
    if parts.scheme.lower() != SCHEME or not chunk.lower().startswith(f"{SCHEME}://"):
        raise ValueError(f"{shown!r} is not a sentinel:// URL; expected {FORM}")
    if not parts.hostname:
        raise ValueError(f"{shown!r} names no host; expected {FORM}")
    if parts.query or parts.fragment:
        raise ValueError(
            f"{shown!r} has a query or fragment; expected {FORM} (the primary's name is "
            "CODER_RING_SENTINEL_MASTER)"
        )
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"{shown!r}: database {path!r} is not a number; expected {FORM}")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    db = int(path) if path else None
    return parts.hostname, port or DEFAULT_SENTINEL_PORT, db, username, password
