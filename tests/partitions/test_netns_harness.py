"""The harness tests itself: a cut blocks exactly what it names and a heal restores it,
the delayer adds the delay and drops the share it is given, and nothing is left
behind -- after a normal end, an exception, or a SIGKILL of the test process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import REPO, netns, wait_until
from tests.harness.netns import SUBNET, VETH_PREFIX, Network, leftovers, prune_stale, run
from tests.harness.netns_probe import (
    connect_ms,
    host_socket,
    redis_pings_ms,
    summary,
    tcp_reaches,
    udp_delivered,
    udp_echo,
)
from tests.harness.netns_servers import VethRedis

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def veth_redis(network: Network) -> Iterator[int]:
    """A private Redis on the network's hosts, as its ``"redis"`` service; its port."""
    server = VethRedis(network.addresses())
    try:
        server.start()
        network.services["redis"] = server.port
        yield server.port
    finally:
        server.close()


@contextlib.contextmanager
def listener(address: str) -> Iterator[int]:
    """A TCP socket listening on ``address`` (the kernel completes the handshakes)."""
    with socket.socket() as server:
        server.bind((address, 0))
        server.listen(64)
        yield int(server.getsockname()[1])


def test_a_cut_blocks_only_what_it_names_and_a_heal_restores_it(network: Network) -> None:
    host, other = network.add_hosts(2)
    root_rules = run("iptables", "-S")
    with veth_redis(network) as port, listener(host.root_ip) as echo:
        established = host_socket(host)
        established.settimeout(1)
        established.connect((host.root_ip, port))
        established.sendall(b"PING\r\n")
        assert established.recv(64) == b"+PONG\r\n"

        network.cut(host, "redis")
        assert not tcp_reaches(host, host.root_ip, port, timeout=1)
        established.sendall(b"PING\r\n")  # an open connection hangs too, no reset
        with pytest.raises(TimeoutError):
            established.recv(64)
        assert tcp_reaches(host, host.root_ip, echo)  # other ports of the host still pass
        assert tcp_reaches(other, other.root_ip, port)  # other hosts still reach Redis
        assert f"--dport {port} -j DROP" in network.rules(host)

        network.heal(host)
        assert tcp_reaches(host, host.root_ip, port)
        established.settimeout(10)  # TCP retransmits the PING: the reply comes late
        assert established.recv(64) == b"+PONG\r\n"
        established.close()

        network.cut(host)  # everything on the host's veth
        assert not tcp_reaches(host, host.root_ip, echo, timeout=0.5)
        assert not tcp_reaches(host, host.root_ip, port, timeout=0.5)
        network.heal(host)
        assert tcp_reaches(host, host.root_ip, echo)
        assert "DROP" not in network.rules(host)
    assert run("iptables", "-S") == root_rules  # the root namespace's firewall: untouched


def test_a_slow_link_delays_and_drops_what_it_is_told(network: Network) -> None:
    # The slow link: 200 ms ± 50 ms and 5 % loss, on the host's way out (like
    # netem on its interface: once per round trip).
    host = network.add_host("h1")
    with veth_redis(network) as port, udp_echo(host.root_ip) as udp:
        before = redis_pings_ms(host, host.root_ip, port, 10)
        network.slow(host, 200, 50, 0.05, seed=7)
        during = redis_pings_ms(host, host.root_ip, port, 12)
        delivered = udp_delivered(host, host.root_ip, udp, 600, wait=0.6)
        network.heal(host)
        after = redis_pings_ms(host, host.root_ip, port, 10)
    counts = network.delayer_counts[-1]
    print(f"\nRedis PING before: {summary(before)}")
    print(f"  during 200±50 ms, 5 % loss: {summary(during)}\n  after the heal: {summary(after)}")
    print(f"UDP echoes delivered during: {delivered:.3f} (delayer: {counts})")
    assert statistics.median(before) < 30
    assert 150 <= statistics.median(during) <= 290
    assert min(during) >= 145  # no packet skips the queue (timer slack aside)
    assert 0.90 <= delivered <= 0.99  # 5 % of the datagrams out, ± 4 sigma
    assert statistics.median(after) < 30


def test_an_asymmetric_delay_hits_only_the_redis_traffic(network: Network) -> None:
    # Fault 6's shape: the host's requests to Redis (heartbeats, renewals) arrive late;
    # everything else, and Redis's replies, is as fast as ever.
    host = network.add_host("h1")
    with veth_redis(network) as port, listener(host.root_ip) as other:
        network.slow(host, 300, target="redis", direction="out")
        pings = redis_pings_ms(host, host.root_ip, port, 5)
        others = [connect_ms(host, host.root_ip, other) for _ in range(5)]
    print(f"\nRedis PING: {summary(pings)}; connect to another port: {summary(others)}")
    assert 280 <= statistics.median(pings) <= 420
    assert statistics.median(others) < 30


# A test process of its own. It loads netns.py by its path: the tests.harness package
# would import Celery and the workers first, for seconds.
CHILD = """
import importlib.util, json, subprocess, sys, time
from pathlib import Path
spec = importlib.util.spec_from_file_location("netns", sys.argv[3])
netns = sys.modules["netns"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(netns)
net = netns.Network(Path(sys.argv[1]))
host = net.add_host("h1")
delayer = net.slow(host, 50)
sleeper = subprocess.Popen(host.argv(["sleep", "60"]))
print(json.dumps({"delayer": delayer.popen.pid, "sleeper": sleeper.pid}), flush=True)
if sys.argv[2] == "raise":
    raise RuntimeError("a test failed without closing its network")
time.sleep(60)
"""


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def run_child(tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], dict[str, int]]:
    argv = [sys.executable, "-c", CHILD, str(tmp_path / how), how, netns.__file__]
    child = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stderr is not None
    line = child.stdout.readline()
    assert line, f"the child failed (exit {child.wait()}): {child.stderr.read()}"
    return child, json.loads(line)


def test_nothing_is_left_behind(network: Network, tmp_path: Path) -> None:
    # A normal end (the fixture's network, closed here by hand).
    hosts = network.add_hosts(2)
    delayer = network.slow(hosts[0], 10)
    sleeper = subprocess.Popen(hosts[1].argv(["sleep", "60"]))
    assert leftovers(os.getpid())
    network.close()
    assert leftovers(os.getpid()) == []
    assert delayer.popen.poll() is not None
    assert sleeper.wait(5) == -signal.SIGKILL

    # A test process that raised: its atexit finalizer cleans up.
    child, pids = run_child(tmp_path, "raise")
    assert child.wait(30) == 1
    assert child.stderr is not None
    assert "RuntimeError: a test failed" in child.stderr.read()
    assert leftovers(child.pid) == []
    wait_until(lambda: gone(pids["delayer"]) and gone(pids["sleeper"]), 5, what="no process")

    # A test process killed outright: the next network (or prune_stale) cleans up.
    child, pids = run_child(tmp_path, "kill")
    child.kill()
    child.wait(10)
    assert len(leftovers(child.pid)) == 2  # the namespace and its veth
    pruned = prune_stale()
    assert leftovers(child.pid) == [], pruned
    wait_until(lambda: gone(pids["sleeper"]), 5, what="the sleeper to go")
    # The delayer lived in the namespace too; the kill of its namespace's processes
    # took it with the sleeper.
    wait_until(lambda: gone(pids["delayer"]), 5, what="the delayer to go")
    if not any(name.startswith(VETH_PREFIX) for name in run("ip", "-o", "link").split()):
        assert str(SUBNET) not in run("ip", "route")  # the guard route went with them
