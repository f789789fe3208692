"""Private PostgreSQL and Redis servers for tests that stop or restart a server.

Each runs on its own free port in a temp directory; the shared servers on 5432 and
6379 are never touched. Both can be stopped and started again on the same port (and,
for PostgreSQL, the same data), so a test can cut a worker off and let it recover.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import redis
from sqlalchemy import create_engine, text

from coder_ring.celery.demo.local_redis import LocalRedis
from tests.harness.config import private_port

PG_USER = "postgres"  # PostgreSQL refuses to run as root; tests run its tools as this user


def _pg_bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {tool} not found under /usr/lib/postgresql/*/bin")
    return found[-1]


def _as_postgres(argv: list[str]) -> list[str]:
    return argv if os.geteuid() != 0 else ["runuser", "-u", PG_USER, "--", *argv]


#: Holds Redis for ARGV[1] microseconds: past busy-reply-threshold, every other client's
#: command is answered "-BUSY Redis is busy running a script".
_BUSY = """
local start = redis.call('time')
while true do
  local now = redis.call('time')
  if (now[1] - start[1]) * 1000000 + (now[2] - start[2]) > tonumber(ARGV[1]) then return 1 end
end
"""


def keep_busy(url: str, micros: int) -> None:
    """Hold the Redis at ``url`` with a script for ``micros`` microseconds."""
    client = redis.Redis.from_url(url)
    try:
        client.eval(_BUSY, 0, micros)
    finally:
        client.close()


class PrivateRedis(LocalRedis):
    """A redis-server of our own (no persistence) that a test can crash and restart:
    :meth:`stop` kills it, :meth:`start` runs it again on the same port, empty."""

    def __init__(self, binary: str | None = None, port: int | None = None) -> None:
        super().__init__(binary, port or private_port())

    def stop(self) -> None:
        """Kill the server, like a crash (it keeps nothing on disk)."""
        self.process.destroy()

    def client(self) -> redis.Redis:
        """A client on db 0."""
        return redis.Redis.from_url(self.url)


class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temp dir: stop() and start() keep its data.

    ``settings`` go into its ``postgresql.conf`` (server-wide defaults, as an operator
    tuning the server would set them).
    """

    def __init__(self, settings: Mapping[str, str] | None = None) -> None:
        self.port = private_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="coder_ring_test_pg_"))
        self.datadir = self.workdir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.workdir, user=PG_USER)
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        if settings:
            with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
                conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())

    @property
    def url(self) -> str:
        """URL of the ``postgres`` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 30.0) -> None:
        """Start (again) on the same port and wait until it accepts connections."""
        subprocess.run(
            _as_postgres(
                [
                    _pg_bin("pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.workdir / "log"),
                    "-o",
                    f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server (``immediate``: like a crash; ``fast``: clean)."""
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop"]),
            check=False,
            capture_output=True,
        )

    def answers(self) -> bool:
        """True when the server accepts a query."""
        engine = create_engine(self.url, connect_args={"connect_timeout": 1})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False
        finally:
            engine.dispose()

    def close(self) -> None:
        """Stop and remove the cluster."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """A started :class:`PrivateRedis`, closed afterwards."""
    server = PrivateRedis()
    try:
        server.start()
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started :class:`PrivatePostgres`, closed afterwards."""
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()
