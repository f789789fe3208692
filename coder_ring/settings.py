"""Engine settings, read explicitly from the environment and passed in.

Nothing here connects to anything: building a :class:`Settings` only reads values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from coder_ring.config import RingConfig, load_rings

DATABASE_URL_ENV = "CODER_RING_DATABASE_URL"
CONFIG_PATH_ENV = "CODER_RING_CONFIG"
DEFAULT_DATABASE_URL = "sqlite:///coder_ring.db"
DEFAULT_CONFIG_PATH = "config/rings.toml"


@dataclass(frozen=True)
class Settings:
    """Where the rings live (``database_url``) and where they are defined (``config_path``)."""

    database_url: str = DEFAULT_DATABASE_URL
    config_path: Path = Path(DEFAULT_CONFIG_PATH)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``CODER_RING_DATABASE_URL`` and ``CODER_RING_CONFIG``."""
        env = os.environ if environ is None else environ
        return cls(
            database_url=env.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL,
            config_path=Path(env.get(CONFIG_PATH_ENV) or DEFAULT_CONFIG_PATH),
        )

    def load_rings(self) -> dict[str, RingConfig]:
        """The ring definitions of :attr:`config_path`."""
        return load_rings(self.config_path)
