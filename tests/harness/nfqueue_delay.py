"""A user-space delayer for packets that an ``NFQUEUE`` rule hands over: it holds each
packet for ``delay ± jitter`` milliseconds (uniform, so packets may be reordered, as
with netem's jitter) and drops a share ``loss`` of them.

This kernel has no ``sch_netem`` (no ``tc netem``) and no ``nft_queue`` expression, but
it has ``nfnetlink_queue`` and iptables' ``NFQUEUE`` target: the harness
(:mod:`tests.harness.netns`) adds ``-j NFQUEUE --queue-num Q --queue-bypass`` rules in
a test's namespace and runs this script there::

    ip netns exec NS python tests/harness/nfqueue_delay.py --queue 0 --delay 200 \
        --jitter 50 --loss 0.05 --seed 1

It speaks the nfnetlink_queue protocol over a raw netlink socket with the standard
library only, so nothing is compiled or installed for it (``netfilterqueue`` from PyPI
builds against libnetfilter-queue-dev; it would make every ``make venv`` depend on an
apt package). It only needs each packet's id (``NFQNL_COPY_META``): what to delay is
chosen by the iptables rule, never here.

It prints ``ready`` once bound (the harness waits for that line) and, on SIGTERM or
SIGINT, one line of counts: ``queued N accepted N dropped N``. It is run by its path,
not as a module, so that it imports nothing of the project (it starts fast).
"""

from __future__ import annotations

import argparse
import errno
import heapq
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NF_DROP = 0
NF_ACCEPT = 1
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
QUEUE_MAXLEN = 4096  # packets held at once; a full queue drops (the rule bypasses none)
NLMSG_HEADER = struct.Struct("=IHHII")  # len, type, flags, seq, pid: host byte order


def attribute(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def message(kind: int, queue: int, attributes: bytes, flags: int, seq: int) -> bytes:
    """An nfnetlink message of the queue subsystem: nlmsghdr, nfgenmsg, attributes.
    nfgenmsg's res_id (the queue number) is big-endian; the header is host order."""
    body = struct.pack("=BB", socket.AF_UNSPEC, 0) + struct.pack("!H", queue) + attributes
    msg_type = (NFNL_SUBSYS_QUEUE << 8) | kind
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), msg_type, flags, seq, 0) + body


def parse(data: bytes) -> list[tuple[int, bytes]]:
    """(type, payload after nlmsghdr) of every netlink message in ``data``."""
    found = []
    offset = 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, kind, _flags, _seq, _pid = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size:
            break
        found.append((kind, data[offset + NLMSG_HEADER.size : offset + length]))
        offset += (length + 3) & ~3
    return found


def packet_id(payload: bytes) -> int | None:
    """The id in NFQA_PACKET_HDR of a packet message's payload (after its nfgenmsg)."""
    offset = 4
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            return None
        if kind & NLA_TYPE_MASK == NFQA_PACKET_HDR:
            return int(struct.unpack_from("!I", payload, offset + 4)[0])
        offset += (length + 3) & ~3
    return None


class Delayer:
    """Holds queued packets and gives their verdicts when due."""

    def __init__(self, queue: int, delay: float, jitter: float, loss: float, seed: int):
        self.queue = queue
        self.delay, self.jitter, self.loss = delay, jitter, loss
        self.random = random.Random(seed)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        # Many packets may arrive while we sleep: a big buffer, and no ENOBUFS error
        # when it overflows anyway (the kernel then drops the packet: loss, not a crash).
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self.sock.bind((0, 0))
        self.seq = 0
        self.due: list[tuple[float, int]] = []  # (when, packet id): a heap
        self.counts = {"queued": 0, "accepted": 0, "dropped": 0}

    def request(self, kind: int, attributes: bytes) -> None:
        """Send a config request and check its acknowledgement."""
        self.seq += 1
        flags = NLM_F_REQUEST | NLM_F_ACK
        self.sock.send(message(kind, self.queue, attributes, flags, self.seq))
        for msg_type, payload in parse(self.sock.recv(65536)):
            if msg_type == NLMSG_ERROR:
                code = -struct.unpack_from("=i", payload)[0]
                if code:
                    raise OSError(code, f"nfqueue config: {errno.errorcode.get(code, code)}")

    def bind(self) -> None:
        cmd = struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)
        self.request(NFQNL_MSG_CONFIG, attribute(NFQA_CFG_CMD, cmd))
        params = struct.pack("!IB", 0, NFQNL_COPY_META)
        self.request(NFQNL_MSG_CONFIG, attribute(NFQA_CFG_PARAMS, params))
        maxlen = struct.pack("!I", QUEUE_MAXLEN)
        self.request(NFQNL_MSG_CONFIG, attribute(NFQA_CFG_QUEUE_MAXLEN, maxlen))
        self.sock.setblocking(False)

    def verdict(self, packet: int, verdict: int) -> None:
        self.seq += 1
        payload = attribute(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet))
        self.sock.send(message(NFQNL_MSG_VERDICT, self.queue, payload, NLM_F_REQUEST, self.seq))
        self.counts["accepted" if verdict == NF_ACCEPT else "dropped"] += 1

    def receive(self) -> None:
        """Take every packet waiting on the socket: drop some now, schedule the rest."""
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return
            for msg_type, payload in parse(data):
                if msg_type != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    continue
                packet = packet_id(payload)
                if packet is None:
                    continue
                self.counts["queued"] += 1
                if self.random.random() < self.loss:
                    self.verdict(packet, NF_DROP)
                    continue
                hold = self.random.uniform(self.delay - self.jitter, self.delay + self.jitter)
                heapq.heappush(self.due, (time.monotonic() + max(0.0, hold) / 1000, packet))

    def release(self) -> float | None:
        """Accept the packets that are due; seconds until the next one (None: none)."""
        now = time.monotonic()
        while self.due and self.due[0][0] <= now:
            _, packet = heapq.heappop(self.due)
            self.verdict(packet, NF_ACCEPT)
        return self.due[0][0] - now if self.due else None

    def run(self, stopping: list[bool]) -> None:
        while not stopping:
            wait = self.release()
            # At most 0.1 s: select() resumes after a signal (PEP 475), so a SIGTERM is
            # seen at the next wake-up.
            timeout = 0.1 if wait is None else min(wait, 0.1)
            readable, _, _ = select.select([self.sock], [], [], timeout)
            if readable:
                self.receive()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queue", type=int, default=0)
    parser.add_argument("--delay", type=float, required=True, help="milliseconds")
    parser.add_argument("--jitter", type=float, default=0.0, help="milliseconds, ±")
    parser.add_argument("--loss", type=float, default=0.0, help="share dropped, 0..1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stopping: list[bool] = []

    def stop(_signum: int, _frame: object) -> None:
        stopping.append(True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delayer = Delayer(args.queue, args.delay, args.jitter, args.loss, args.seed)
    delayer.bind()
    print("ready", flush=True)
    try:
        delayer.run(stopping)
    finally:
        # Closing the socket unbinds the queue: the kernel drops what is still held,
        # and the rule's --queue-bypass lets later packets through undelayed.
        counts = delayer.counts
        print(" ".join(f"{name} {n}" for name, n in counts.items()), flush=True)
        delayer.sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
