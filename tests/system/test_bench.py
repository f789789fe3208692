"""The benchmark: its quick mode end to end (real PostgreSQL, Redis, a default Celery
worker, coder_ring worker processes and caller processes), and its small helpers.
No timing is asserted: the benchmark reports, it does not judge."""

from __future__ import annotations

import io
import json
import math
import multiprocessing
import runpy
from pathlib import Path

import pytest
import redis
from rich.console import Console
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL

from bench.calls import DuplicateCode, check_unique, percentile
from bench.figures import FIGURES, TARGETED, Figure
from bench.report import JSON_NAME, PLOT_NAME, render_table, write_report
from bench.resources import BENCH_DATABASE, BENCH_REDIS_DB, bench_redis_url, postgres_server_url
from bench.run import run_bench
from coder_ring.settings import Settings, WorkerSettings
from tests.harness.shared import PG_ADMIN_URL, REDIS_TEST_URL, require


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


def test_the_entry_point_runs_only_as_the_main_module() -> None:
    # Caller processes are spawned: each imports `python -m bench`'s module again, as
    # __mp_main__, which must not start another benchmark.
    namespace = runpy.run_module("bench.__main__", run_name="__mp_main__")
    assert callable(namespace["main"])


def test_percentile_interpolates() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.5
    assert percentile([5.0], 99) == 5.0
    assert percentile(list(map(float, range(101))), 99) == 99.0


def test_a_code_issued_twice_by_one_ring_fails_the_run() -> None:
    # The same code from two rings is fine: each ring has its own codes.
    assert check_unique({"a": ["2222", "2223"], "b": ["2222"]}) == 3
    with pytest.raises(DuplicateCode, match="'a' issued code '2222' twice"):
        check_unique({"a": ["2222", "2223", "2222"]})


def test_targets_compare_as_the_issues_state_them() -> None:
    ratio, ms = Figure("r", "r", "x", "<= 1.15"), Figure("m", "m", "ms", "< 50")
    assert ratio.check(1.15) and not ratio.check(1.16)
    assert ms.check(49.9) and not ms.check(50)
    floor = Figure("f", "f", "codes/s", ">= 40223")
    assert floor.check(40_223) and not floor.check(40_222.9)
    assert floor.describe() == ">= 40,223 codes/s" and ratio.describe() == "<= 1.15x"
    assert len({figure.key for figure in FIGURES}) == len(FIGURES)
    assert len(TARGETED) == 32  # issues 11, 12 and 13


def test_the_report_needs_every_figure(tmp_path: Path) -> None:
    figures = {figure.key: 1.0 for figure in FIGURES[1:]}
    with pytest.raises(ValueError, match=FIGURES[0].key):
        write_report(tmp_path, figures, {}, {"quick": True}, Console(file=io.StringIO()))
    assert not (tmp_path / JSON_NAME).exists()


def test_the_table_shows_every_figure_with_its_target() -> None:
    figures = {figure.key: 2.0 for figure in FIGURES}
    verdicts = [
        {"figure": f.key, "value": 2.0, "target": f.describe(), "passed": f.check(2.0)}
        for f in TARGETED
    ]
    out = io.StringIO()
    Console(file=out, width=120).print(render_table(figures, verdicts, quick=False))
    printed = out.getvalue()
    for figure in FIGURES:
        assert figure.label.strip() in printed, figure.label
    assert "get_code p50 / anchor p50" in printed and "<= 1.15x" in printed
    assert printed.count("PASS") + printed.count("MISS") == len(TARGETED)


def schema_exists(database: URL, schema: str) -> bool:
    engine = create_engine(database)
    try:
        with engine.connect() as conn:
            query = "SELECT count(*) FROM information_schema.schemata WHERE schema_name = :n"
            return bool(conn.execute(text(query), {"n": schema}).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_quick_bench_end_to_end(pg_admin: Engine, tmp_path: Path) -> None:
    client: redis.Redis = redis.Redis.from_url(bench_redis_url(REDIS_TEST_URL, BENCH_REDIS_DB))
    try:
        client.ping()
    except redis.RedisError as error:
        require("Redis", error)
    results_before = set(client.scan_iter(match="celery-task-meta-*", count=1000))
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
        console=Console(file=out, width=120),
    )

    document = json.loads((output_dir / JSON_NAME).read_text(encoding="utf-8"))
    figures = document["figures"]
    for figure in FIGURES:
        value = figures[figure.key]
        assert isinstance(value, int | float), figure.key
        assert math.isfinite(value), figure.key
        # Every web example's request was answered with a code (or the anchor's id).
        assert value == 0 if figure.key.endswith(".errors") else value > 0, figure.key
    assert {f"web.{server}.get_code.per_s" for server in ("flask", "fastapi")} <= set(figures)
    assert [target["figure"] for target in document["targets"]] == [f.key for f in TARGETED]
    assert all(isinstance(target["passed"], bool) for target in document["targets"])
    meta = document["meta"]
    assert meta["quick"] is True
    assert meta["machine"]["cores"] >= 1
    for part in ("python", "celery", "redis_server", "postgresql", "sqlite"):
        assert meta["machine"][part], part
    assert set(document["samples_ms"]) == {
        "anchor",
        "noop",
        "get_code",
        "get_code, task events on",
    }
    assert all(document["samples_ms"]["get_code"])
    assert meta["notes"]["codes_checked"] > 0
    assert result["figures"] == figures
    assert (output_dir / PLOT_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    printed = out.getvalue()
    assert "machine: " in printed and "Celery 5." in printed
    assert "get_code p50 / anchor p50" in printed and "coder_ring no-op p50 / anchor" in printed
    assert "PASS" in printed or "MISS" in printed
    assert "Flask example under gunicorn gthread 2x8" in printed and "FastAPI example" in printed

    # Nothing the run started or made is left: processes, schemas, Redis keys.
    assert len(meta["worker_pids"]) == 8  # the anchor, five coder_ring workers, two web servers
    for pid in meta["worker_pids"]:
        assert not Path(f"/proc/{pid}").exists(), pid
    assert multiprocessing.active_children() == []
    run_id = meta["run_id"]
    assert list(client.scan_iter(match=f"*{run_id}*", count=1000)) == []
    assert set(client.scan_iter(match="celery-task-meta-*", count=1000)) <= results_before
    client.close()
    database = postgres_server_url(PG_ADMIN_URL).set(database=BENCH_DATABASE)
    assert meta["schemas"] == [f"bench_{run_id}_celery", f"bench_{run_id}_engine"]
    for schema in meta["schemas"]:
        assert not schema_exists(database, schema), schema
