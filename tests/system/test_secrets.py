"""A password in a URL never shows: not in an error, a warning, a status, a worker's log.

Every URL coder_ring prints goes through :func:`coder_ring.urls.redact_url`. Each test
puts the password ``s3cret`` in a URL on one path that reports it (a URL typo, an
unknown dialect, a bad port, an unreachable database, Redis or broker, a worker that
cannot reach its database) and checks the whole output: the password is absent and
the masked form is there, so the message still says which URL was meant.
"""

from __future__ import annotations

import re
import signal
import traceback
from pathlib import Path

import pytest

from coder_ring.celery.app import create_app
from coder_ring.celery.cli import build
from coder_ring.errors import BrokerUnreachable, ConfigError
from coder_ring.settings import Settings, WorkerSettings
from coder_ring.sql.store import SqlStore
from coder_ring.urls import MASK, redact_url
from tests.harness import ManagedProcess, ProcessGroup, free_port, wait_until, write_rings
from tests.harness.cli import (
    CONSOLE_SCRIPT,
    Cli,
    ScriptCli,
    assert_one_line_error,
    run_many,
)

SECRET = "s3cret"


def assert_hidden(output: str, *masked: str) -> None:
    """``output`` shows no password, and shows each ``masked`` form."""
    assert SECRET not in output, output
    for form in masked:
        assert form in output, (form, output)


# --------------------------------------------------------------------------------------
# The helper


REDACTED = [
    ("postgresql://u:s3cret@h/db", "postgresql://u:***@h/db"),
    ("postgresql+psycopg://u:s3cret@[::1]:5432/db", "postgresql+psycopg://u:***@[::1]:5432/db"),
    ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("rediss://u:s3%40cret@h/0", "rediss://u:***@h/0"),
    ("redis://u:s3cret@with@ats@h:1/0", "redis://u:***@h:1/0"),  # an '@' in the password
    ("postgresql://u@h/db?password=s3cret", "postgresql://u@h/db?password=***"),
    ("redis://h:1/0?db=2&Password=s3cret", "redis://h:1/0?db=2&Password=***"),
    # Malformed: masked all the same.
    ("postgresql//user:s3cret@host/db", "postgresql//user:***@host/db"),
    ("postgresql://u:s3cret@h:5x32/db", "postgresql://u:***@h:5x32/db"),
    ("u:s3cret@host", "u:***@host"),
    # Nothing to mask: unchanged.
    ("postgresql://u@h:5432/db?sslmode=require", "postgresql://u@h:5432/db?sslmode=require"),
    ("sqlite:///relative/rings.db", "sqlite:///relative/rings.db"),
    ("nonsense", "nonsense"),
]


@pytest.mark.parametrize(("url", "shown"), REDACTED)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_url(redact_url(url)) == shown  # masking twice changes nothing more
    assert SECRET not in shown


def test_the_store_names_its_database_masked() -> None:
    store = SqlStore("postgresql://u:s3cret@127.0.0.1:1/db?password=s3cret")
    try:
        assert store.where == f"postgresql+psycopg://u:{MASK}@127.0.0.1:1/db?password={MASK}"
    finally:
        store.dispose()
    for url in ("postgresql//user:s3cret@host/db", "mysql://u:s3cret@h/db", "pg://u:s3cret@h"):
        with pytest.raises(ConfigError) as refused:
            SqlStore(url)
        assert_hidden(str(refused.value), MASK)


# --------------------------------------------------------------------------------------
# The command line


@pytest.mark.redis
def test_no_command_prints_a_password(tmp_path: Path, redis_url: str) -> None:
    rings = write_rings(tmp_path / "rings.toml", one={"base_length": 1})
    sqlite = f"sqlite:///{tmp_path / 'rings.db'}"
    port = free_port()  # nothing listens there
    dead_redis = f"redis://:{SECRET}@127.0.0.1:{port}/0"

    def script(database_url: str = sqlite, **env: str) -> ScriptCli:
        return ScriptCli(database_url, rings, more_env=env)

    def in_process(database_url: str = sqlite, **env: str) -> Cli:
        return Cli(database_url, rings, more_env=env, group=build)

    in_process().ok("migrate")
    dead_pg = f"postgresql://u:{SECRET}@127.0.0.1:{port}/db"
    # (cli, args, exit code, texts the output must show). The console script shows the
    # whole output of the process (logging and warnings included); the group run in this
    # process is quicker, for the paths that only print the command's own lines.
    cases: list[tuple[Cli, list[str], int, list[str]]] = [
        (
            script(CODER_RING_REDIS_URL=dead_redis),
            ["status"],
            0,
            ["warning: holders and pools unavailable: cannot reach Redis at "
             f"redis://:***@127.0.0.1:{port}/0"],
        ),
        (
            script(
                CODER_RING_BROKER_URL=dead_redis,
                CODER_RING_REDIS_URL=dead_redis,
                CODER_RING_RESULT_BACKEND=redis_url,
            ),
            ["get", "one", "--timeout", "5"],
            1,
            ["cannot reach the broker", f"redis://:***@127.0.0.1:{port}/0", "nothing was sent"],
        ),
        (in_process(dead_pg), ["migrate"], 1, [f"database postgresql+psycopg://u:***@127.0.0.1:{port}/db"]),
        (
            in_process(f"postgresql://u@127.0.0.1:{port}/db?password={SECRET}"),
            ["get", "one", "--direct"],
            1,
            ["?password=***", "failed"],
        ),
        (
            in_process(CODER_RING_REDIS_URL=dead_redis),
            ["workers"],
            1,
            [f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0"],
        ),
        (
            in_process("postgresql//user:s3cret@host/db"),
            ["status"],
            1,
            ["invalid database URL 'postgresql//user:***@host/db'"],
        ),
        (
            in_process("mysql://u:s3cret@h/db"),
            ["migrate"],
            1,
            ["unsupported database URL 'mysql://u:***@h/db'"],
        ),
        (
            in_process("postgresql://u:s3cret@h:5x32/db"),
            ["get", "one", "--direct"],
            1,
            ["'postgresql://u:***@h:5x32/db'", "port is not a number"],
        ),
    ]  # fmt: skip
    scripts = [(runner, args) for runner, args, _, _ in cases if isinstance(runner, ScriptCli)]
    results = run_many(scripts)
    results += [runner.run(*args) for runner, args, _, _ in cases[len(scripts) :]]
    for (_, args, code, shown), done in zip(cases, results, strict=True):
        output = done.stdout + done.stderr
        print(f"{args}: {done.stderr.strip()}")
        assert_hidden(output, *shown)
        assert "Traceback" not in output
        if code:
            assert_one_line_error(done, code=code)
        else:
            assert done.returncode == 0, done.stderr
            assert "one" in done.stdout  # the engine's columns are shown all the same


# --------------------------------------------------------------------------------------
# A caller


@pytest.mark.redis
def test_delay_with_the_broker_down_never_shows_the_password(
    tmp_path: Path, redis_url: str
) -> None:
    rings = write_rings(tmp_path / "rings.toml", one={"base_length": 1})
    dead = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    settings = WorkerSettings(
        engine=Settings(f"sqlite:///{tmp_path / 'rings.db'}", rings),
        broker_url=dead,
        result_backend=redis_url,
        redis_url=dead,  # no registry to read: the request is sent, and the broker fails
    )
    app = create_app(settings)
    try:
        with pytest.raises(BrokerUnreachable) as caught:
            app.ring_tasks.get_code.delay("one")
    finally:
        app.close()
    # The whole chain, as a traceback would print it.
    printed = "".join(traceback.format_exception(caught.value))
    assert_hidden(printed, "cannot reach the broker", redact_url(dead))
    assert_hidden(str(caught.value), redact_url(dead), "nothing was sent")


# --------------------------------------------------------------------------------------
# A worker


@pytest.mark.slow
@pytest.mark.redis
def test_a_worker_without_its_database_never_logs_the_password(
    tmp_path: Path, redis_url: str, group: ProcessGroup
) -> None:
    rings = write_rings(tmp_path / "rings.toml", one={"base_length": 1})
    port = free_port()
    settings = WorkerSettings(
        engine=Settings(f"postgresql://u:{SECRET}@127.0.0.1:{port}/db", rings),
        broker_url=redis_url,
        result_backend=redis_url,
        redis_url=redis_url,
        namespace="secrets",
        lock_ttl=1.0,
    )
    env = settings.to_env()
    argv = [str(CONSOLE_SCRIPT), "worker", "--all", "--loglevel", "INFO"]
    worker = ManagedProcess("nodb", argv, env, tmp_path / "nodb.log")
    group.add(worker)
    masked = f"postgresql+psycopg://u:***@127.0.0.1:{port}/db"
    worker.wait_for_log(r"database not usable \(.*\); next try in", timeout=30)
    # The worker registered (unhealthy); `coder-ring workers` shows its database masked.
    listing = ScriptCli(settings.engine.database_url, rings, more_env=env)
    wait_until(
        lambda: "unreachable" in listing.ok("workers").stdout, 10, what="the worker's listing"
    )
    shown = listing.ok("workers", "--json")
    assert_hidden(shown.stdout + shown.stderr, f"postgresql://u:***@127.0.0.1:{port}/db")
    assert worker.stop() == 0
    log = worker.log_text()
    assert_hidden(log, masked)
    assert re.search(rf"database not usable \(database {re.escape(masked)} failed", log), log
    assert worker.popen is not None and worker.popen.returncode != -signal.SIGKILL
