"""Where ``coder-ring metrics`` listens: on 127.0.0.1 by default (it printed a
127.0.0.1 URL while it listened on every interface), elsewhere only when ``--host``
says so; a host it cannot listen on is a clear error."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.harness import ProcessGroup, run_cli, wait_until, worker_env, write_rings
from tests.harness.config import private_port
from tests.system.metrics_scrape import CLI, MetricsProcess, scrape

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on TCP ``port`` (from /proc/net)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            if len(raw) == 4:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:  # four 32-bit words, each in host (little-endian) order
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def env_for(tmp_path: Path, redis_url: str) -> dict[str, str]:
    return worker_env(
        redis_url=redis_url,
        database_url=f"sqlite:///{tmp_path / 'rings.db'}",
        rings_file=write_rings(tmp_path / "rings.toml", one={}),
    )


def test_metrics_listen_on_loopback_by_default_and_on_the_host_given(
    tmp_path: Path, redis_url: str
) -> None:
    env = env_for(tmp_path, redis_url)
    assert run_cli(env, "migrate").returncode == 0
    with ProcessGroup(tmp_path / "processes") as group:
        port = private_port()
        default = group.add(MetricsProcess(env, tmp_path / "default.log", port))
        default.wait_for_log(rf"on http://127\.0\.0\.1:{port}/metrics", 30)
        assert "coder_ring_codes_per_cycle" in scrape(f"http://127.0.0.1:{port}/metrics", default)
        assert listening_addresses(port) == {"127.0.0.1"}
        default.stop()

        port = private_port()
        argv = [*CLI, "metrics", "--port", str(port), "--host", "0.0.0.0"]
        every = group.add(MetricsProcess(env, tmp_path / "every.log", port, argv))
        every.wait_for_log(rf"on http://127\.0\.0\.1:{port}/metrics", 30)
        wait_until(lambda: listening_addresses(port), 10, what="the listening socket")
        assert listening_addresses(port) == {"0.0.0.0"}


def test_a_host_it_cannot_listen_on_is_a_clear_error(tmp_path: Path, redis_url: str) -> None:
    env = env_for(tmp_path, redis_url)
    assert run_cli(env, "migrate").returncode == 0
    port = private_port()
    for host, why in (
        ("no-such-host.invalid", "Name or service not known"),
        ("192.0.2.1", "Cannot assign requested address"),  # TEST-NET-1: not this machine
    ):
        result = run_cli(env, "metrics", "--port", str(port), "--host", host, timeout=30)
        assert result.returncode != 0, result.stdout + result.stderr
        message = result.stderr.strip().splitlines()[-1]
        assert f"cannot listen on --host {host!r} --port {port}: {why}" in message, message
        assert "e.g. 127.0.0.1, or 0.0.0.0 for every interface" in message, message
        assert "Traceback" not in result.stderr
        assert listening_addresses(port) == set()
