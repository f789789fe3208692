"""The README's Monitoring section shows a worker's log lines for a start, a move, a bad
caller and a Redis outage, in the formats the code logs (the system tests
test_worker_logs.py and test_outage_logs.py check the code's side on real processes)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
LINE = r"^\[[0-9-]+ [0-9:,]+: WARNING/MainProcess\] "
#: What each kind of line looks like.
KINDS = {
    "start": LINE + r"\S+ serves (\d+) rings \(took \1 rings: [^;]*\)$",
    "move": LINE + r"\S+ serves \d+ rings \(gave up (\d+): .* \(\1 to \S+\)\)$",
    "bad caller": LINE + r"ring \S+: refused a caller's get_code request: InvalidInput: .*$",
    "Redis lost": LINE + r"Redis unreachable: .+$",
    "Redis back": LINE + r"Redis reachable again after \d+ s$",
}


def test_the_monitoring_section_shows_each_kind_of_worker_log_line() -> None:
    section = README.read_text().split("\n## Monitoring", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```text\n(.*?)```", section, re.S)
    assert blocks, "no log excerpt in the Monitoring section"
    worker = blocks[0]
    for kind, pattern in KINDS.items():
        assert re.search(pattern, worker, re.M), f"no {kind} line in the README's worker log"
    assert "Traceback" not in worker
    assert len(re.findall(KINDS["Redis lost"], worker, re.M)) == 1
