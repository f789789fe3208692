"""Private Redis and PostgreSQL servers that the hosts of a :class:`~tests.harness.netns.
Network` reach through their veths, and ``coder-ring worker`` processes run inside a
host.

The servers are :mod:`tests.servers`' private ones (the shared servers on 5432 and 6379
are never touched), listening on 127.0.0.1 -- for the test and its callers, which stay
in the root namespace and are never cut off -- and on every host's root-side address.
A worker on a host reaches them at its own ``root_ip``, so a cut inside that host's
namespace cuts that worker alone.

The workers are started by the ``coder-ring`` console script (what users run), as
``ip netns exec NS coder-ring worker --all``; ``ip netns exec`` keeps the pid, so the
lock tokens still name the process the test started.
"""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from coder_ring.settings import DATABASE_URL_ENV
from tests.harness.config import BIN, CODER_RING
from tests.harness.netns import Host, Network
from tests.harness.processes import WorkerProcess
from tests.servers import PrivatePostgres, PrivateRedis, _as_postgres, _pg_bin

LOOPBACK = "127.0.0.1"
COMMAND = str(BIN / "coder-ring")


def at(url: str, address: str) -> str:
    """``url`` (of 127.0.0.1) with ``address`` as its host."""
    return url.replace(f"@{LOOPBACK}:", f"@{address}:").replace(f"//{LOOPBACK}:", f"//{address}:")


class VethRedis(PrivateRedis):
    """A :class:`PrivateRedis` that also listens on ``addresses``. Protected mode is off:
    it refuses clients of other addresses without a password, and the hosts are such
    clients (only the test's namespaces can reach these addresses)."""

    def __init__(self, addresses: Sequence[str]) -> None:
        super().__init__()
        argv = self.process.argv
        bind = argv.index("--bind")
        argv[bind + 1 : bind + 2] = [LOOPBACK, *addresses]
        argv += ["--protected-mode", "no"]


class VethPostgres(PrivatePostgres):
    """A :class:`PrivatePostgres` that also listens on ``addresses`` and trusts each
    address's /30 (the host at its other end)."""

    def __init__(self, addresses: Sequence[str], settings: Mapping[str, str] | None = None) -> None:
        super().__init__(settings)
        self.addresses = list(addresses)
        with (self.datadir / "pg_hba.conf").open("a", encoding="utf-8") as hba:
            for address in self.addresses:
                network = ipaddress.ip_interface(f"{address}/30").network
                hba.write(f"host all all {network} trust\n")

    def start(self, timeout: float = 30.0) -> None:
        """Start (again) on the same port and addresses; wait until it accepts."""
        # tests.servers starts it on 127.0.0.1 only (a command-line -c beats the conf).
        listen = ",".join([LOOPBACK, *self.addresses])
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses={listen} -c fsync=off"
        argv = [_pg_bin("pg_ctl"), "-D", str(self.datadir), "-l", str(self.workdir / "log")]
        argv += ["-o", options, "-w", "-t", str(int(timeout)), "start"]
        subprocess.run(_as_postgres(argv), check=True, capture_output=True)


@contextlib.contextmanager
def veth_servers(network: Network) -> Iterator[tuple[VethRedis, VethPostgres]]:
    """A started :class:`VethRedis` and :class:`VethPostgres` for every host the network
    has now (add the hosts first), registered as its ``"redis"`` and ``"postgres"``
    services; both closed at the end. Close them before the network: no connection to a
    host then outlives its veth."""
    with contextlib.ExitStack() as stack:
        redis_server = VethRedis(network.addresses())
        stack.callback(redis_server.close)
        redis_server.start()
        pg_server = VethPostgres(network.addresses())
        stack.callback(pg_server.close)
        pg_server.start()
        network.services.update(redis=redis_server.port, postgres=pg_server.port)
        yield redis_server, pg_server


class NetnsWorker(WorkerProcess):
    """``coder-ring worker RING... | --all`` inside ``host`` (its env should name the
    servers at ``host.root_ip``: :func:`host_env`)."""

    def __init__(
        self, host: Host, name: str, env: Mapping[str, str], log_path: Path, **kwargs: Any
    ) -> None:
        super().__init__(name, env, log_path, cli=True, **kwargs)
        self.host = host
        # WorkerProcess builds `python -m coder_ring.celery.cli worker ...`; run the console
        # script (the same command, on the namespace's PATH).
        self.argv = host.argv([COMMAND, *self.argv[len(CODER_RING) :]])


def host_env(env: Mapping[str, str], host: Host) -> dict[str, str]:
    """``env`` (``CODER_RING_*`` of 127.0.0.1 servers) as seen from ``host``."""
    keys = {"CODER_RING_BROKER_URL", "CODER_RING_RESULT_BACKEND", "CODER_RING_REDIS_URL"}
    keys.add(DATABASE_URL_ENV)
    return {k: at(v, host.root_ip) if k in keys else v for k, v in env.items()}
