"""Ring definitions, read from the rings file (TOML).

```toml
[rings.widget]          # base_length 4 is the default
profanity_filter = true

[rings.doodad]
base_length = 1
pool_size = 8
```
"""

from __future__ import annotations

import logging
import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coder_ring.alphabet import MAX_BASE_LENGTH, MIN_BASE_LENGTH
from coder_ring.errors import ConfigError, InvalidInput
from coder_ring.validation import MAX_COUNT, check_ring_name, is_int

log = logging.getLogger("coder_ring.config")

DEFAULT_BASE_LENGTH = 4
#: Codes a worker draws ahead per extra: one refill transaction per half of it, so a
#: larger pool costs the serving loop less; a crash loses at most that many codes.
DEFAULT_POOL_SIZE = 256
#: A pool is filled by one draw, so it holds at most one draw's codes.
MAX_POOL_SIZE = MAX_COUNT


@dataclass(frozen=True)
class RingConfig:
    """One ring as configured: its name, code length, filter and worker pool size.

    Checked when built (from the rings file or in Python): a bad value raises
    :class:`~coder_ring.errors.ConfigError` naming it and what is allowed.
    """

    name: str
    base_length: int = DEFAULT_BASE_LENGTH
    profanity_filter: bool = False
    pool_size: int = DEFAULT_POOL_SIZE

    def __post_init__(self) -> None:
        try:
            check_ring_name(self.name)
        except InvalidInput as error:
            raise ConfigError(str(error)) from None
        for key, expected in _KEYS.items():
            value = getattr(self, key)
            # `base_length = true` is refused: is_int leaves bools out.
            if not (is_int(value) if expected is int else isinstance(value, expected)):
                raise ConfigError(
                    f"ring {self.name!r}: key {key!r} must be {expected.__name__}, got {value!r}"
                )
        if not MIN_BASE_LENGTH <= self.base_length <= MAX_BASE_LENGTH:
            raise ConfigError(
                f"ring {self.name!r}: key 'base_length' must be from {MIN_BASE_LENGTH} "
                f"to {MAX_BASE_LENGTH}, got {self.base_length!r}"
            )
        if not 0 <= self.pool_size <= MAX_POOL_SIZE:
            raise ConfigError(
                f"ring {self.name!r}: key 'pool_size' must be from 0 to {MAX_POOL_SIZE:,} "
                f"(a pool is filled by one draw), got {self.pool_size!r}"
            )


_KEYS: dict[str, type] = {"base_length": int, "profanity_filter": bool, "pool_size": int}


def parse_rings(document: Mapping[str, Any], source: str) -> dict[str, RingConfig]:
    """Ring configs from a parsed rings document; ``source`` names it in errors."""
    unknown_top = sorted(set(document) - {"rings"})
    if unknown_top:
        raise ConfigError(f"{source}: unknown top-level key {unknown_top[0]!r}; allowed: 'rings'")
    tables = document.get("rings", {})
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{source}: 'rings' must be a table of ring tables")
    return {name: _parse_ring(name, table, source) for name, table in tables.items()}


def _parse_ring(name: str, table: object, source: str) -> RingConfig:
    try:
        check_ring_name(name)
    except InvalidInput as error:
        raise ConfigError(f"{source}: ring {name!r}: {error}") from None
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: ring {name!r} must be a table, got {table!r}")
    for key in table:
        if key not in _KEYS:
            raise ConfigError(
                f"{source}: ring {name!r}: unknown key {key!r}; allowed: {', '.join(_KEYS)}"
            )
    try:
        return RingConfig(name=name, **table)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def sample_rings() -> str:
    """What ``coder-ring init`` writes: a commented rings file (the repository's
    config/rings.toml; a test keeps the two the same)."""
    return (Path(__file__).parent / "sample_rings.toml").read_text(encoding="utf-8")


def load_rings(path: Path | str) -> dict[str, RingConfig]:
    """Read and check the rings file at ``path``."""
    path = Path(path)
    return _parse_file(path, _read_file(path))


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"cannot read rings file {str(path)!r} ({error.strerror}); set CODER_RING_CONFIG "
            "or --config to your rings file, or write one with `coder-ring init`"
        ) from None


def _parse_file(path: Path, raw: bytes) -> dict[str, RingConfig]:
    try:
        # tomllib refuses duplicate tables and keys, which we want to be errors too.
        document = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    return parse_rings(document, str(path))


class RingsFile:
    """The rings file at ``path``, read again only when it changes (its modification
    time or size differs): a worker notices edits by itself, a caller accepts new rings.

    Thread-safe. :meth:`rings` raises :class:`ConfigError` like :func:`load_rings` (the
    worker reports a bad edit itself and serves on); :meth:`rings_or_last_good` is the
    callers': a bad edit keeps the last good rings, with one warning.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._mutex = threading.Lock()
        # The file's stamp when last read (or marked), and whether it was read at it.
        self._stamp: tuple[int, int] | None = None
        self._read = False
        # The last good rings; the last read's error (its message) while the file is bad.
        self._rings: dict[str, RingConfig] | None = None
        self._error: str | None = None
        # The bad content (and its error) warned about last: one warning per bad edit.
        self._warned: tuple[bytes | None, str] | None = None
        self._bad: bytes | None = None

    def stamp(self) -> tuple[int, int] | None:
        """The file's (modification time in ns, size), or None when it cannot be read."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def rings(self) -> dict[str, RingConfig]:
        """The file's rings, read again if it changed since the last call."""
        with self._mutex:
            self._refresh()
            return self._result()

    def rings_or_last_good(self) -> dict[str, RingConfig]:
        """:meth:`rings`, or after a bad edit the last good rings of this process, with
        one warning (file, ring, key, the problem) per bad content: one typo must not
        take every caller down while the workers serve on. :class:`ConfigError` when
        the file was never good in this process."""
        with self._mutex:
            self._refresh()
            if self._error is None or self._rings is None:
                return self._result()
            seen = (self._bad, self._error)
            if self._warned != seen:
                self._warned = seen
                log.warning(
                    "rings file not reloaded (%s); callers go on with the rings as before: %s",
                    " ".join(self._error.splitlines()),
                    ", ".join(sorted(self._rings)),
                )
            return self._rings

    def _result(self) -> dict[str, RingConfig]:
        if self._error is not None:
            # A new exception each time: one raised again and again would keep growing
            # its traceback in a process that calls on with a bad file.
            raise ConfigError(self._error)
        assert self._rings is not None  # read by _refresh: rings, or an error
        return self._rings

    def _refresh(self) -> None:
        """Read the file if it changed since it was last read (mutex held)."""
        stamp = self.stamp()
        if self._read and stamp == self._stamp:
            return
        self._stamp, self._read, raw = stamp, True, None
        try:
            raw = _read_file(self.path)
            rings = _parse_file(self.path, raw)
        except ConfigError as error:
            self._error, self._bad = str(error), raw
            return
        self._rings, self._error, self._bad, self._warned = rings, None, None, None

    def changed(self) -> bool:
        """True when the file changed since :meth:`rings` last read it (or :meth:`mark`)."""
        return self.stamp() != self._stamp

    def mark(self) -> None:
        """Take the file as it is now as read (after a failed reload: no retry loop)."""
        self._stamp = self.stamp()
