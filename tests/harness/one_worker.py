"""One ``coder-ring worker`` serving a few small rings on a private Redis of its own."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.harness.calls import wait_until
from tests.harness.config import worker_env, write_rings
from tests.servers import PrivateRedis, private_redis


@contextmanager
def one_worker_serving(
    tmp_path: Path, pg_url: str, group: Any, rings: Sequence[str], timeout: float = 30.0
) -> Iterator[tuple[PrivateRedis, dict[str, str], Any]]:
    """(server, env, worker): a private Redis, and worker ``a`` of ``group`` holding every
    ring of ``rings`` (base_length 2, pool_size 8) on ``pg_url``."""
    rings_file = write_rings(
        tmp_path / "rings.toml", **{ring: {"base_length": 2, "pool_size": 8} for ring in rings}
    )
    with private_redis() as server:
        env = worker_env(redis_url=server.url, database_url=pg_url, rings_file=rings_file)
        worker = group.worker("a", env)
        worker.wait_ready()
        wait_until(lambda: all(worker.holds(ring) for ring in rings), timeout, 0.2)
        yield server, env, worker
