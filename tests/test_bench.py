"""The benchmark: its quick mode end to end (real PostgreSQL, Redis and a real worker),
and its small helpers. No timing is asserted: the benchmark reports, it does not judge."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import redis
from rich.console import Console
from sqlalchemy import create_engine, text

from bench.celery_figures import percentile
from bench.report import FIGURES, JSON_NAME, PLOT_NAME, TARGETS
from bench.resources import BENCH_DATABASE
from bench.run import BENCH_REDIS_DB, bench_redis_url, run_bench
from coder_ring.settings import Settings
from tests.conftest import PG_ADMIN_URL, REDIS_TEST_URL, require
from workers.names import lock_key, ring_queue
from workers.settings import WorkerSettings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/12"),
        ("redis://:secret@redis.example:6380", "redis://:secret@redis.example:6380/12"),
        (
            "rediss://user:pw@host/3?ssl_cert_reqs=none",
            "rediss://user:pw@host/12?ssl_cert_reqs=none",
        ),
        ("amqp://guest@localhost//", "amqp://guest@localhost//"),
    ],
)
def test_bench_redis_url_uses_the_bench_database(url: str, expected: str) -> None:
    assert bench_redis_url(url, 12) == expected


def test_percentile_interpolates() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(map(float, range(101))), 99) == 99.0


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_quick_bench_end_to_end(pg_admin: object, tmp_path: Path) -> None:
    client = redis.Redis.from_url(bench_redis_url(REDIS_TEST_URL, BENCH_REDIS_DB))
    try:
        client.ping()
    except redis.RedisError as error:
        require("Redis", error)
    settings = WorkerSettings(
        engine=Settings(database_url=PG_ADMIN_URL, config_path=tmp_path / "unused.toml"),
        broker_url=REDIS_TEST_URL,
        result_backend=REDIS_TEST_URL,
        redis_url=REDIS_TEST_URL,
    )
    out = io.StringIO()
    output_dir = tmp_path / "results"

    result = run_bench(
        quick=True,
        output_dir=output_dir,
        settings=settings,
        console=Console(file=out, width=140),
    )

    document = json.loads((output_dir / JSON_NAME).read_text(encoding="utf-8"))
    figures = document["figures"]
    for figure in FIGURES:
        value = figures[figure.key]
        assert isinstance(value, int | float), figure.key
        assert math.isfinite(value), figure.key
        assert value > 0, figure.key
    assert [target["figure"] for target in document["targets"]] == [t.key for t in TARGETS]
    assert all(isinstance(target["passed"], bool) for target in document["targets"])
    assert document["meta"]["quick"] is True
    assert set(document["samples_ms"]) == {"noop", "get_code"}
    assert all(document["samples_ms"]["get_code"])
    assert result["figures"] == figures

    plot = output_dir / PLOT_NAME
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    printed = out.getvalue()
    assert "get_code p50 / no-op p50" in printed
    assert "PASS" in printed or "MISS" in printed

    # Everything the run started or created is gone: worker, schema, Redis keys.
    meta = document["meta"]
    assert not Path(f"/proc/{meta['worker_pid']}").exists()
    ring = meta["ring"]
    assert client.exists(lock_key(ring), ring_queue(ring)) == 0
    client.close()
    engine = create_engine(
        pg_admin.url.set(database=BENCH_DATABASE)  # type: ignore[attr-defined]
    )
    with engine.connect() as conn:
        schemas = conn.execute(
            text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :name"),
            {"name": f"bench_{meta['run_id']}"},
        ).scalar_one()
    engine.dispose()
    assert schemas == 0
