"""Sockets inside a simulated host, opened by the test process itself, to measure what a
cut or a slow link does: TCP reachability, Redis PING round trips, UDP loss.

A socket belongs to the network namespace of the thread that created it, for life; so a
short-lived thread joins the host's namespace (``setns(2)``, which changes only the
calling thread) and makes the socket, and the test uses it from any thread. No process
is started per probe: the figures are not blurred by interpreter start-ups.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import statistics
import threading
import time
from collections.abc import Iterator

from tests.harness.netns import Host

CLONE_NEWNET = 0x40000000


def _setns(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def host_socket(host: Host, kind: int = socket.SOCK_STREAM) -> socket.socket:
    """A new IPv4 socket in ``host``'s namespace."""
    made: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            _setns(f"/var/run/netns/{host.netns}")
            made.append(socket.socket(socket.AF_INET, kind))
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            made.append(error)

    # A thread of its own: it ends in the host's namespace and is never reused.
    thread = threading.Thread(target=make, name=f"setns-{host.name}")
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


def tcp_reaches(host: Host, address: str, port: int, timeout: float = 1.0) -> bool:
    """True when a TCP connection from ``host`` to ``address:port`` opens in time."""
    with contextlib.closing(host_socket(host)) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
        except OSError:
            return False
        return True


def connect_ms(host: Host, address: str, port: int, timeout: float = 5.0) -> float:
    """Milliseconds a TCP connect (one round trip) from ``host`` takes."""
    with contextlib.closing(host_socket(host)) as sock:
        sock.settimeout(timeout)
        started = time.monotonic()
        sock.connect((address, port))
        return (time.monotonic() - started) * 1000


def redis_pings_ms(host: Host, address: str, port: int, count: int) -> list[float]:
    """Round trips (ms) of ``count`` Redis PINGs from ``host`` on one connection (the
    connect is not counted), in plain RESP: no client library in between."""
    with contextlib.closing(host_socket(host)) as sock:
        sock.settimeout(10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect((address, port))
        times = []
        for _ in range(count):
            started = time.monotonic()
            sock.sendall(b"PING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(64)
                if not chunk:
                    raise ConnectionError("Redis closed the connection")
                reply += chunk
            times.append((time.monotonic() - started) * 1000)
            assert reply == b"+PONG\r\n", reply
        return times


@contextlib.contextmanager
def udp_echo(address: str) -> Iterator[int]:
    """A UDP echo server of the root namespace on ``address`` (a thread); its port."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((address, 0))
    server.settimeout(0.1)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                data, peer = server.recvfrom(64)
            except TimeoutError:
                continue
            server.sendto(data, peer)

    thread = threading.Thread(target=serve, name="udp-echo", daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stopping.set()
        thread.join(2)
        server.close()


def udp_delivered(host: Host, address: str, port: int, count: int, wait: float = 1.0) -> float:
    """Share of ``count`` datagrams from ``host`` whose echo came back (within ``wait``
    seconds of the last one sent); sent 2 ms apart, so no buffer overflows."""
    with contextlib.closing(host_socket(host, socket.SOCK_DGRAM)) as sock:
        sock.setblocking(False)
        seen: set[int] = set()

        def drain() -> None:
            with contextlib.suppress(BlockingIOError):
                while True:
                    seen.add(int.from_bytes(sock.recv(64), "big"))

        for number in range(count):
            sock.sendto(number.to_bytes(4, "big"), (address, port))
            time.sleep(0.002)
            drain()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and len(seen) < count:
            time.sleep(0.02)
            drain()
        return len(seen) / count


def summary(times: list[float]) -> str:
    """``median X ms (min Y, max Z)``."""
    return (
        f"median {statistics.median(times):.0f} ms "
        f"(min {min(times):.0f}, max {max(times):.0f}, n {len(times)})"
    )
