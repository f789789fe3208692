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
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"cannot read rings file {str(path)!r} ({error.strerror}); set CODER_RING_CONFIG "
            "or --config to your rings file, or write one with `coder-ring init`"
        ) from None
    try:
        # tomllib refuses duplicate tables and keys, which we want to be errors too.
        document = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    return parse_rings(document, str(path))


class RingsFile:
    """The rings file at ``path``, read again only when it changes (its modification
    time or size differs): a worker notices edits by itself, a caller accepts new rings.

    Thread-safe. :meth:`rings` raises :class:`ConfigError` like :func:`load_rings`.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._mutex = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._rings: dict[str, RingConfig] | None = None

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
            stamp = self.stamp()
            if self._rings is None or stamp != self._stamp:
                self._rings = load_rings(self.path)
                self._stamp = stamp
            return self._rings

    def changed(self) -> bool:
        """True when the file changed since :meth:`rings` last read it (or :meth:`mark`)."""
        return self.stamp() != self._stamp

    def mark(self) -> None:
        """Take the file as it is now as read (after a failed reload: no retry loop)."""
        self._stamp = self.stamp()
