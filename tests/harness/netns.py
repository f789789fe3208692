"""Simulated hosts for partition tests: Linux network namespaces joined to the root
namespace by veth pairs, and the network faults dealt to them.

Each :class:`Host` is a namespace ``crnet-<pid>-<i>`` with ``lo`` up and one veth
pair: ``crv<pid>x<i>`` in the root namespace with ``10.77.<k>.1/30``, ``eth0`` in
the namespace with ``10.77.<k>.2/30``. ``10.77.0.0/16`` is used only on these veths
(the namespaces get no default route, so nothing in them reaches any other address);
``k`` is the lowest one no veth of any run uses, picked under a file lock, so parallel
runs don't clash. The private Redis and PostgreSQL of a test listen on the root-side
addresses (:mod:`tests.harness.netns_servers`); workers run inside the namespaces.

Faults are iptables rules *inside* a host's namespace only (nothing is added to the
root namespace's firewall): :meth:`Network.cut` drops its traffic to a server's port,
or all of it; :meth:`Network.slow` hands it to an ``NFQUEUE`` whose user-space
delayer (:mod:`tests.harness.nfqueue_delay`, run in the namespace) holds and drops
packets, since this kernel has no ``sch_netem``; :meth:`Network.heal` removes every
rule and delayer of a host.

:meth:`Network.close` (the ``with`` block's end, and an ``atexit`` finalizer for a run
that never gets there) kills every process left in the namespaces and every delayer,
and deletes the namespaces and veths. A run killed outright (SIGKILL) leaves them
behind: the next :class:`Network` deletes those whose process is gone.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: The /16 of the veths. Not routed anywhere here; no test uses it for anything else.
SUBNET = ipaddress.ip_network("10.77.0.0/16")
NETNS_PREFIX = "crnet"
VETH_PREFIX = "crv"
INSIDE = "eth0"  # the namespace's end of its veth
DELAYER = Path(__file__).with_name("nfqueue_delay.py")
#: Serialises address picking (and stale clean-up) between test runs on this machine.
LOCK_FILE = Path("/run/lock/coder_ring_netns.lock")
TARGET_ALL = "all"
DIRECTIONS = ("out", "in", "both")
_NETNS_NAME = re.compile(rf"^{NETNS_PREFIX}-(\d+)-(\d+)\b")
_VETH_NAME = re.compile(rf"^\d+: ({VETH_PREFIX}(\d+)x\d+)[@:]")


class NetnsError(RuntimeError):
    """A namespace, veth or rule command failed."""


def run(*argv: str, check: bool = True) -> str:
    """Run a command of ``ip``/``iptables``; its stdout. NetnsError (with stderr) when it
    fails and ``check``."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def netns_problem() -> str | None:
    """Why namespaces cannot be used here (None: they can): root, ``ip netns``, veth and
    iptables inside a namespace are all tried."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs iptables)"
    probe = f"{NETNS_PREFIX}-{os.getpid()}-probe"
    try:
        run("ip", "netns", "add", probe)
        run("ip", "-n", probe, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
        run("ip", "netns", "exec", probe, "iptables", "-w", "-S")
    except (NetnsError, OSError, subprocess.SubprocessError) as error:
        return str(error)
    finally:
        run("ip", "netns", "del", probe, check=False)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_names() -> list[str]:
    return [line.split()[0] for line in run("ip", "netns", "list").splitlines() if line.strip()]


def _veth_names() -> list[tuple[str, int]]:
    """(name, pid of the run that made it) of every root-side veth of any run."""
    found = []
    for line in run("ip", "-o", "link", "show").splitlines():
        match = _VETH_NAME.match(line)
        if match:
            found.append((match.group(1), int(match.group(2))))
    return found


def kill_inside(netns: str) -> None:
    """SIGKILL every process still in ``netns`` (only a test's own namespaces come here)."""
    for _ in range(50):
        pids = [int(p) for p in run("ip", "netns", "pids", netns, check=False).split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _delete(netns: str, veth: str | None) -> None:
    kill_inside(netns)
    if veth is not None:
        run("ip", "link", "del", veth, check=False)  # deletes both ends
    run("ip", "netns", "del", netns, check=False)


def prune_stale() -> list[str]:
    """Delete the namespaces and veths of runs whose process is gone (a SIGKILLed test
    run); what was deleted."""
    with _machine_lock():
        pruned = _prune_stale()
        _guard_subnet(False)
    return pruned


def _prune_stale() -> list[str]:
    pruned = []
    for name in _netns_names():
        match = _NETNS_NAME.match(name)
        if match and not _alive(int(match.group(1))):
            _delete(name, None)
            pruned.append(name)
    for veth, pid in _veth_names():
        if not _alive(pid):
            run("ip", "link", "del", veth, check=False)
            pruned.append(veth)
    return pruned


def leftovers(pid: int) -> list[str]:
    """Namespaces and veths that the run of process ``pid`` still has."""
    names = [n for n in _netns_names() if n.startswith(f"{NETNS_PREFIX}-{pid}-")]
    return names + [veth for veth, owner in _veth_names() if owner == pid]


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _used_blocks() -> set[int]:
    used = set()
    for line in run("ip", "-4", "-o", "addr", "show").splitlines():
        match = re.search(r"inet (10\.77\.(\d+)\.\d+)/", line)
        if match:
            used.add(int(match.group(2)))
    return used


def _guard_subnet(present: bool) -> None:
    """While a run has veths, ``10.77.0.0/16`` is unreachable except through them: a
    packet for a host being deleted fails here instead of taking the default route out
    of the machine. Removed with the last veth of any run (under the lock)."""
    if present:
        run("ip", "route", "replace", "unreachable", str(SUBNET))
    elif not _veth_names():
        run("ip", "route", "del", "unreachable", str(SUBNET), check=False)


@dataclass(frozen=True)
class Host:
    """One simulated host: a namespace and its veth pair."""

    name: str
    netns: str
    veth: str  # root side
    block: int  # the k of 10.77.<k>.0/30

    @property
    def root_ip(self) -> str:
        """The root namespace's end (where the servers listen for this host)."""
        return str(SUBNET.network_address + (self.block << 8) + 1)

    @property
    def ip(self) -> str:
        """The host's own address."""
        return str(SUBNET.network_address + (self.block << 8) + 2)

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the host (``ip netns exec`` keeps the pid)."""
        return ["ip", "netns", "exec", self.netns, *argv]


@dataclass
class Delayer:
    """A running :mod:`~tests.harness.nfqueue_delay` of one host and its queue."""

    host: Host
    queue: int
    popen: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> str:
        """SIGTERM (it prints its counts), SIGKILL if it hangs; its log."""
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass(eq=False)
class Network:
    """The hosts of one test and the faults dealt to them; use as a context manager.

    ``services`` maps a name (``"redis"``, ``"postgres"``...) to the TCP port that a
    server listens on at every host's :attr:`Host.root_ip`: :meth:`cut` and :meth:`slow`
    take such a name as ``target`` (or ``"all"``: everything on the host's veth).
    """

    directory: Path
    hosts: dict[str, Host] = field(default_factory=dict)
    services: dict[str, int] = field(default_factory=dict)
    delayers: list[Delayer] = field(default_factory=list)
    #: Each finished delayer's last log line (``queued N accepted N dropped N``).
    delayer_counts: list[str] = field(default_factory=list)
    closed: bool = False

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        atexit.register(self.close)  # a run that never reaches __exit__

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hosts ------------------------------------------------------------------------

    def add_host(self, name: str) -> Host:
        """A new host named ``name`` (any label the test likes), up and reachable."""
        assert name not in self.hosts, f"host {name!r} exists"
        with _machine_lock():
            _prune_stale()
            # The pid keeps runs apart; the index, networks of one process (if nested).
            taken = set(_netns_names())
            index = next(i for i in itertools.count(1) if self._netns(i) not in taken)
            netns, veth = self._netns(index), f"{VETH_PREFIX}{os.getpid()}x{index}"
            block = min(set(range(1, 255)) - _used_blocks())
            host = Host(name, netns, veth, block)
            self.hosts[name] = host  # from here on close() deletes it
            _guard_subnet(True)
            run("ip", "netns", "add", netns)
            run("ip", "link", "add", veth, "type", "veth", "peer", "name", INSIDE, "netns", netns)
            run("ip", "addr", "add", f"{host.root_ip}/30", "dev", veth)
            run("ip", "link", "set", veth, "up")
        run("ip", "-n", netns, "link", "set", "lo", "up")
        run("ip", "-n", netns, "addr", "add", f"{host.ip}/30", "dev", INSIDE)
        run("ip", "-n", netns, "link", "set", INSIDE, "up")
        return host

    @staticmethod
    def _netns(index: int) -> str:
        return f"{NETNS_PREFIX}-{os.getpid()}-{index}"

    def add_hosts(self, count: int, prefix: str = "h") -> list[Host]:
        return [self.add_host(f"{prefix}{i + 1}") for i in range(count)]

    def addresses(self) -> list[str]:
        """The root-side addresses: where servers listen for the hosts."""
        return [host.root_ip for host in self.hosts.values()]

    # -- faults -----------------------------------------------------------------------

    def _matches(self, host: Host, target: str, direction: str) -> list[list[str]]:
        """iptables chain + match of ``host``'s traffic with ``target``, per direction."""
        assert direction in DIRECTIONS, direction
        if target == TARGET_ALL:
            out, back = ["-o", INSIDE], ["-i", INSIDE]
        else:
            port = str(self.services[target])
            out = ["-d", host.root_ip, "-p", "tcp", "--dport", port]
            back = ["-s", host.root_ip, "-p", "tcp", "--sport", port]
        chains = []
        if direction in {"out", "both"}:
            chains.append(["OUTPUT", *out])
        if direction in {"in", "both"}:
            chains.append(["INPUT", *back])
        return chains

    def iptables(self, host: Host, *args: str) -> str:
        """iptables inside ``host`` (never in the root namespace)."""
        return run(*host.argv(["iptables", "-w", *args]))

    def cut(self, host: Host, target: str = TARGET_ALL, direction: str = "both") -> None:
        """Drop ``host``'s packets to/from ``target`` (silently: like a pulled cable, so
        connections hang rather than fail)."""
        for chain, *match in self._matches(host, target, direction):
            self.iptables(host, "-I", chain, "1", *match, "-j", "DROP")

    def slow(
        self,
        host: Host,
        delay_ms: float,
        jitter_ms: float = 0.0,
        loss: float = 0.0,
        *,
        target: str = TARGET_ALL,
        direction: str = "out",
        seed: int = 0,
    ) -> Delayer:
        """Delay ``host``'s packets to (``out``), from (``in``) or both ways of
        ``target`` by ``delay_ms ± jitter_ms`` (uniform) and drop a share ``loss``, each
        direction on its own (``out``, like netem on the host's interface, adds the
        delay once to a round trip; ``both`` twice)."""
        queue = sum(1 for d in self.delayers if d.host == host)
        log_path = self.directory / f"delayer-{host.name}-{queue}.log"
        argv = [sys.executable, str(DELAYER), f"--queue={queue}", f"--delay={delay_ms}"]
        argv += [f"--jitter={jitter_ms}", f"--loss={loss}", f"--seed={seed}"]
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                host.argv(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        delayer = Delayer(host, queue, popen, log_path)
        self.delayers.append(delayer)
        deadline = time.monotonic() + 15
        while "ready" not in log_path.read_text(encoding="utf-8", errors="replace"):
            if popen.poll() is not None or time.monotonic() > deadline:
                raise NetnsError(f"delayer did not start:\n{delayer.stop()}")
            time.sleep(0.02)
        # --queue-bypass: should the delayer die, packets pass instead of vanishing.
        queue_to = ["-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"]
        for chain, *match in self._matches(host, target, direction):
            self.iptables(host, "-A", chain, *match, *queue_to)
        return delayer

    def heal(self, host: Host) -> None:
        """Remove every cut and delay of ``host``: rules first (so that no packet is
        queued to a delayer that is gone), then its delayers."""
        self.iptables(host, "-F", "OUTPUT")
        self.iptables(host, "-F", "INPUT")
        for delayer in [d for d in self.delayers if d.host == host]:
            self.delayer_counts.append(delayer.stop().strip().splitlines()[-1])
            self.delayers.remove(delayer)

    def rules(self, host: Host) -> str:
        """``iptables -S`` inside ``host``."""
        return self.iptables(host, "-S")

    # -- clean-up ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop every delayer, kill every process left in the hosts, delete the hosts
        (their rules go with their namespaces). Idempotent; never raises for a part
        already gone."""
        if self.closed:
            return
        self.closed = True
        atexit.unregister(self.close)
        for delayer in self.delayers:
            with contextlib.suppress(Exception):
                delayer.stop()
        with _machine_lock():
            for host in self.hosts.values():
                _delete(host.netns, host.veth)
            _guard_subnet(False)
