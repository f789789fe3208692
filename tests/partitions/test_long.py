"""The long mode of the partition tests (``make faults-long``; collected only with
``CODER_RING_PARTITIONS_LONG=1``, so never a skip): all six faults of issue 20, each
:data:`REPEATS` times, on one cluster under load, every request a ``get_codes`` of
:data:`COUNT` codes (100,000+ codes in all), with the figures of
:func:`tests.partitions.scenario.check`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.netns import Network
from tests.partitions.scenario import Fault, check, run_faults
from tests.partitions.test_degraded_links import LATE, LONGER, SHORT, SLOW

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.long,  # deselected unless CODER_RING_PARTITIONS_LONG=1 (tests/conftest.py)
]
REPEATS = 3
COUNT = 10
FAULTS = [
    Fault("full partition", Network.cut, 10.0),
    Fault("Redis cut", lambda net, host: net.cut(host, "redis"), 9.0),
    Fault("database cut", lambda net, host: net.cut(host, "postgres"), 9.0),
    SLOW,
    SHORT,
    LONGER,
    LATE,
]


@pytest.mark.timeout(1800)
def test_every_fault_again_and_again(network: Network, tmp_path: Path) -> None:
    figures = run_faults(network, tmp_path, FAULTS * REPEATS, count=COUNT)
    check(figures)
    assert figures.received >= 100_000, figures.received
