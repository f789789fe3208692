"""Serve a web example as the README does and load it over HTTP with ``wrk`` (Debian's
package; ``.ci/run`` installs it), then read what it saw: requests/s and latency
percentiles from its report, every response's status and body from the files its Lua
script writes (one per wrk thread). The bench (bench/web.py) uses it too.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from coder_ring.celery.demo.processes import Process

_BIN = Path(sys.executable).parent
#: The examples' servers as the README starts them, before the app; ``{port}``: where.
GUNICORN = [str(_BIN / "gunicorn"), "--worker-class", "gthread", "--workers", "2", "--threads"]
GUNICORN += ["8", "--bind", "127.0.0.1:{port}"]
UVICORN = [str(_BIN / "uvicorn"), "--host", "127.0.0.1", "--port", "{port}", "--no-access-log"]

#: Each wrk thread writes "STATUS BODY" per response to PREFIX-N.txt (line-buffered).
SCRIPT = """
local count = 0
function setup(thread)
  thread:set("id", count)
  count = count + 1
end
function init(args)
  out = io.open(args[1] .. "-" .. id .. ".txt", "w")
  out:setvbuf("line")
end
wrk.method = "POST"
function response(status, headers, body)
  out:write(status, " ", (body:gsub("\\n", " ")), "\\n")
end
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


@dataclass
class Load:
    """What one wrk run saw."""

    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    socket_errors: int
    codes: list[str]
    failures: list[str]

    def line(self) -> str:
        return (
            f"{self.name}: {self.requests_per_s:.0f} requests/s, p50 {self.p50_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms, {len(self.codes)} codes, "
            f"{len(self.failures)} failed responses, {self.socket_errors} socket errors"
        )


def wait_listening(port: int, server: Process, timeout: float = 30.0) -> None:
    """Return once ``server`` accepts connections on ``port`` (RuntimeError if it exits,
    TimeoutError after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{server.name} not listening on {port} after {timeout:g} s")


def first_answer(url: str, timeout: float = 30.0) -> None:
    """POST ``url`` once and wait for its answer: a server listens before its processes
    have loaded the app (gunicorn's arbiter binds first)."""
    request = urllib.request.Request(url, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


def wrk_path() -> str:
    """The ``wrk`` binary; AssertionError when it is missing (``.ci/run`` installs it)."""
    path = shutil.which("wrk")
    assert path, "wrk is not installed: apt-get install wrk (.ci/run does)"
    return path


def run_wrk(
    name: str,
    url: str,
    directory: Path,
    *,
    seconds: float,
    connections: int,
    threads: int = 2,
    timeout: float = 10.0,
) -> Load:
    """POST ``url`` from ``connections`` connections for ``seconds``; what it saw."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "record.lua"
    script.write_text(SCRIPT, encoding="utf-8")
    prefix = directory / name
    argv = [wrk_path(), "--latency", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s"]
    argv += [f"--timeout={timeout:g}s", "-s", str(script), url, "--", str(prefix)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    report = done.stdout
    assert done.returncode == 0, f"wrk failed ({done.returncode}): {done.stderr}\n{report}"
    rate = re.search(r"Requests/sec:\s+([\d.]+)", report)
    p50 = re.search(r"^\s+50%\s+(\S+)", report, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", report, re.M)
    assert rate and p50 and p99, f"unexpected wrk report:\n{report}"
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report
    )
    codes: list[str] = []
    failures: list[str] = []
    for path in sorted(directory.glob(f"{name}-*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            status, _, body = line.partition(" ")
            if status == "200":
                codes.append(json.loads(body)["code"])
            else:
                failures.append(line)
    return Load(
        name=name,
        requests_per_s=float(rate.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        codes=codes,
        failures=failures,
    )
