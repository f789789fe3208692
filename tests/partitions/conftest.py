"""Fixtures of the partition tests: a :class:`~tests.harness.netns.Network` per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.netns import Network, netns_problem
from tests.harness.shared import require


@pytest.fixture(scope="session")
def netns_ready() -> None:
    """Namespaces, veths and iptables work here (else: skip locally, fail in CI)."""
    problem = netns_problem()
    if problem is not None:
        require("network namespaces (root, ip netns, veth, iptables)", RuntimeError(problem))


@pytest.fixture
def network(netns_ready: None, tmp_path: Path) -> Iterator[Network]:
    """The test's hosts, deleted at the end whatever happened (and at exit, at worst)."""
    with Network(tmp_path / "network") as net:
        yield net
