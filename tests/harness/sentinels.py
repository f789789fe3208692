"""A Redis behind Sentinel that a test starts itself: one primary, one replica and three
sentinels (``redis-server CONF --sentinel``: there is no separate binary), each a
:class:`~tests.servers.PrivateRedis` on a free port of 127.0.0.1 with its own directory.

The sentinels notice a dead primary after :data:`DOWN_AFTER_MS` and, two of three
agreeing, promote the replica. :meth:`SentinelRedis.url` is the
``sentinel://...;sentinel://...`` URL of the service and :data:`MASTER_NAME` the
primary's name (``CODER_RING_SENTINEL_MASTER``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.harness.calls import wait_until
from tests.servers import PrivateRedis

MASTER_NAME = "coder-ring-ha"
#: How long a primary may not answer before a sentinel calls it down (ms).
DOWN_AFTER_MS = 1000
#: Sentinels that must agree the primary is down before one fails over.
QUORUM = 2


class ReplicaRedis(PrivateRedis):
    """A :class:`PrivateRedis` replicating ``primary``."""

    def __init__(self, primary: PrivateRedis) -> None:
        super().__init__()
        self.process.argv += ["--replicaof", "127.0.0.1", str(primary.port)]


class SentinelServer(PrivateRedis):
    """``redis-server sentinel.conf --sentinel`` watching ``primary`` (the sentinel
    rewrites its configuration file as it learns: it lives in its own directory)."""

    def __init__(self, primary: PrivateRedis) -> None:
        super().__init__()
        conf = Path(self.workdir) / "sentinel.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {self.workdir}",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary.port} {QUORUM}",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER_NAME} 10000",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                    "",
                ]
            ),
            encoding="utf-8",
        )
        self.process.argv = [self.binary, str(conf), "--sentinel"]

    def primary_port(self) -> int | None:
        """The port of the primary this sentinel names now (None: it names none)."""
        client = self.client()
        try:
            address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)
        finally:
            client.close()
        return None if not address else int(address[1])


class SentinelRedis:
    """The primary, its replica and three sentinels, started together by :meth:`start`
    (each server is made once the one before it listens: a private port is free until
    its server takes it)."""

    def __init__(self) -> None:
        self.servers: list[PrivateRedis] = []

    @property
    def primary(self) -> PrivateRedis:
        return self.servers[0]

    @property
    def replica(self) -> PrivateRedis:
        return self.servers[1]

    @property
    def sentinels(self) -> list[SentinelServer]:
        return [s for s in self.servers if isinstance(s, SentinelServer)]

    @property
    def url(self) -> str:
        """``sentinel://127.0.0.1:P1/0;sentinel://127.0.0.1:P2;...``: every sentinel."""
        parts = [f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels]
        return f"{parts[0]}/0;" + ";".join(parts[1:])

    def start(self, timeout: float = 20.0) -> SentinelRedis:
        """Start them all; wait until the replica is in sync and every sentinel knows the
        replica and the other two sentinels (a failover needs both)."""
        self._add(PrivateRedis())
        self._add(ReplicaRedis(self.primary))
        for _ in range(3):
            self._add(SentinelServer(self.primary))
        replica = self.replica.client()
        try:
            wait_until(
                lambda: replica.info("replication").get("master_link_status") == "up",
                timeout,
                what="the replica to sync with the primary",
            )
        finally:
            replica.close()
        for sentinel in self.sentinels:
            wait_until(lambda s=sentinel: self._knows_all(s), timeout, what="sentinels to meet")
        return self

    def _add(self, server: PrivateRedis) -> None:
        self.servers.append(server)
        server.start()

    def _knows_all(self, sentinel: SentinelServer) -> bool:
        client = sentinel.client()
        try:
            state = client.sentinel_master(MASTER_NAME)
            return bool(
                int(state["num-slaves"]) >= 1
                and int(state["num-other-sentinels"]) >= len(self.sentinels) - 1
            )
        except redis.RedisError:
            return False
        finally:
            client.close()

    def promoted(self) -> bool:
        """True once the replica says it is a primary and every sentinel names it."""
        client = self.replica.client()
        try:
            role = client.execute_command("ROLE")[0]
        except redis.RedisError:
            return False
        finally:
            client.close()
        ports = {sentinel.primary_port() for sentinel in self.sentinels}
        return role in {b"master", "master"} and ports == {self.replica.port}

    def close(self) -> None:
        """Stop every server and remove its directory."""
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.close()


@contextlib.contextmanager
def sentinel_redis() -> Iterator[SentinelRedis]:
    """A started :class:`SentinelRedis`, closed afterwards whatever happened."""
    service = SentinelRedis()
    try:
        yield service.start()
    finally:
        service.close()
