"""The bad-input catalogue (see ``test_bad_inputs.py``): bad worker settings, workers
refusing to start on a bad configuration, a changed ring shape, an unreachable database,
and edges of the command line. Each must give a clear error and change nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coder_ring import ConfigError, NoWorker, RingMismatch, load_rings
from coder_ring.alphabet import ALPHABET
from coder_ring.celery.cli import build
from coder_ring.settings import WorkerSettings
from tests.harness import (
    BIN,
    ManagedProcess,
    ProcessGroup,
    caller_app,
    free_port,
    wait_until,
    worker_env,
    write_rings,
)
from tests.harness.cli import Cli, ScriptCli, assert_one_line_error, table_rows
from tests.harness.inprocess import running_worker
from tests.system.bad_inputs_catalogue import RESULT_TIMEOUT, RING, RING_KEYS, RINGS_FILES
from tests.system.bad_inputs_support import (
    assert_message,
    database_state,
    get,
    one_ring_settings,
    serving,
    whole_cli,
)

#: Bad worker settings (environment) and the texts their error must show.
BAD_SETTINGS = [
    ("CODER_RING_NAMESPACE", "Bad NS", "CODER_RING_NAMESPACE='Bad NS' is invalid"),
    ("CODER_RING_LOCK_TTL", "abc", "CODER_RING_LOCK_TTL='abc' is invalid"),
    ("CODER_RING_TASK_EXPIRES", "-5", "CODER_RING_TASK_EXPIRES='-5' is invalid"),
    ("CODER_RING_TASK_EVENTS", "maybe", "CODER_RING_TASK_EVENTS='maybe' is invalid"),
    ("CODER_RING_METRICS_PORT", "70000", "CODER_RING_METRICS_PORT='70000' is invalid"),
    ("CODER_RING_LOG_INTERVAL", "soon", "CODER_RING_LOG_INTERVAL='soon' is invalid"),
    # Sentinel: the primary's name is a setting of its own; each sentinel a full URL.
    ("CODER_RING_REDIS_URL", "sentinel://h1:26379", "CODER_RING_SENTINEL_MASTER is not set"),
    (
        "CODER_RING_BROKER_URL",
        "sentinel://u:s3cret@h1:26379;h2:26379",
        "CODER_RING_BROKER_URL='sentinel://u:***@h1:26379;h2:26379' is invalid: 'h2:26379' "
        "is not a sentinel:// URL; expected sentinel://[USER:PASSWORD@]HOST[:PORT][/DB]",
    ),
    ("CODER_RING_SENTINEL_MASTER", "mymaster", "no Redis URL names sentinels"),
]


@pytest.mark.redis
def test_bad_worker_settings_are_one_line_errors(
    tmp_path: Path, redis_url: str, sqlite_url: str
) -> None:
    settings = one_ring_settings(tmp_path, redis_url, sqlite_url)
    whole_cli(settings).ok("migrate")
    for name, value, shown in BAD_SETTINGS:
        env = {**settings.to_env(), name: value}
        with pytest.raises(ConfigError) as refused:
            WorkerSettings.from_env(env)  # so `worker` below cannot start a worker
        assert "s3cret" not in assert_message(refused.value, shown)
        cli = Cli(sqlite_url, settings.engine.config_path, more_env=env, group=build)
        for args in (["get", RING], ["status"], ["workers"], ["worker", RING]):
            assert_one_line_error(cli.run(*args), shown, code=1)
        # The engine's own commands do not need the worker settings.
        assert cli.ok("get", RING, "--direct").stdout.strip() in ALPHABET
    # Through the console script: the error comes before anything else is imported.
    name, value, shown = BAD_SETTINGS[0]
    script = ScriptCli(sqlite_url, settings.engine.config_path, more_env={name: value})
    assert_one_line_error(script.run("status"), shown, code=1)


@pytest.mark.slow
@pytest.mark.redis
def test_workers_refuse_to_start_on_a_bad_configuration(
    tmp_path: Path, redis_url: str, sqlite_url: str
) -> None:
    rings = write_rings(tmp_path / "rings.toml", **{RING: RING_KEYS})
    env = worker_env(redis_url=redis_url, database_url=sqlite_url, rings_file=rings)
    bad_envs: list[tuple[str, dict[str, str], tuple[str, ...]]] = []
    # Every rings file takes the same path (load_rings at start); three of them here.
    for number, bad in enumerate(RINGS_FILES):
        if bad.item in {"base_length 0", "pool_size 20,000", "invalid TOML"}:
            path = tmp_path / f"bad-{number}.toml"
            path.write_text(bad.body, encoding="utf-8")
            bad_envs.append(
                (bad.item, {**env, "CODER_RING_CONFIG": str(path)}, (str(path), *bad.shown))
            )
    for url, shown in (
        ("nonsense", "invalid database URL 'nonsense'"),
        ("postgresql://u:s3cret@h:5x32/db", "port is not a number"),
    ):
        bad_envs.append((url, {**env, "CODER_RING_DATABASE_URL": url}, (shown,)))
    with ProcessGroup(tmp_path / "processes") as group:
        # Celery's own command (celery -A workers.app worker), all at once...
        starts: list[ManagedProcess] = [
            group.worker(f"bad{number}", bad_env, rings=[RING])
            for number, (_, bad_env, _) in enumerate(bad_envs)
        ]
        # ... and ours, also for a bad worker setting (the app module reads it at import:
        # Celery's command shows that as a traceback; ours as one line).
        for item, bad_env, shown in [
            bad_envs[0],
            ("namespace", {**env, "CODER_RING_NAMESPACE": "Bad NS"}, ("'Bad NS'",)),
        ]:
            argv = [str(BIN / "coder-ring"), "worker", RING]
            process = ManagedProcess(f"ours-{item}", argv, bad_env, tmp_path / f"{len(starts)}.log")
            starts.append(group.add(process))
            bad_envs.append((item, bad_env, shown))
        for (item, _, shown), start in zip(bad_envs, starts, strict=True):
            assert start.wait(60) == 1, (item, start.log_text())
            log = start.log_text()
            assert "Traceback" not in log and "s3cret" not in log, log
            line = re.search(r"^error: .*", log, re.MULTILINE)
            assert line is not None, log
            assert_message(Exception(line.group(0)), *shown)
            print(f"{item}: {line.group(0)}")


# --------------------------------------------------------------------------------------
# A changed ring shape, a wrong database URL


@pytest.mark.redis
def test_changed_base_length_and_unreachable_database_change_nothing(
    tmp_path: Path, redis_url: str, sqlite_url: str
) -> None:
    settings = one_ring_settings(tmp_path, redis_url, sqlite_url)
    direct = whole_cli(settings)
    direct.ok("migrate")
    codes = direct.ok("get", RING, "--direct", "-n", "5").stdout.split()
    before = database_state(sqlite_url)

    # The ring's base_length changed in the rings file.
    changed = one_ring_settings(tmp_path, redis_url, sqlite_url, "changed", base_length=2)
    cli = whole_cli(changed)
    shown = ("base_length=1", "base_length=2", "coder-ring rebuild one")
    with serving(changed) as app:
        with pytest.raises(RingMismatch) as caught:
            get(app)
        assert_message(caught.value, *shown)
        for args in (["get", RING, "--timeout", "10"], ["get", RING, "--direct"], ["populate"]):
            assert_one_line_error(cli.run(*args), *shown, code=1)
        print(f"changed base_length: {caught.value}")
    assert database_state(sqlite_url) == before

    # An unreachable database: the worker reports itself unhealthy and is given no ring,
    # so callers fail at once, naming it; direct callers name the database.
    port = free_port()
    dead = one_ring_settings(tmp_path, redis_url, f"postgresql://postgres@127.0.0.1:{port}/x")
    dead_cli = whole_cli(dead)
    with running_worker(dead, RING) as worker_app, caller_app(dead) as app:
        wait_until(
            lambda: any(not m.healthy for m in app.registry.members(fresh=True) or []),
            RESULT_TIMEOUT,
            what="the worker's membership",
        )
        assert worker_app.runtime is not None and not worker_app.runtime.healthy
        with pytest.raises(NoWorker) as nobody:
            get(app)
        assert_message(nobody.value, "no live worker may serve ring 'one'", "database unreachable")
        assert_one_line_error(
            dead_cli.run("get", RING), "no live worker", "database unreachable", code=1
        )
        for args in (["get", RING, "--direct"], ["migrate"]):
            assert_one_line_error(dead_cli.run(*args), f"127.0.0.1:{port}", code=1)
        print(f"unreachable database: {nobody.value}")
    assert database_state(sqlite_url) == before

    # The ring goes on where it was.
    rest = direct.ok("get", RING, "--direct", "-n", "27").stdout.split()
    assert sorted([*codes, *rest]) == sorted(ALPHABET)


# --------------------------------------------------------------------------------------
# Edges of the command line


def test_status_prints_extras_verbatim(tmp_path: Path, sqlite_url: str) -> None:
    rings = write_rings(tmp_path / "rings.toml", **{RING: RING_KEYS})
    cli = Cli(sqlite_url, rings)
    cli.ok("migrate")
    marked = ["[/x]", "[blink]", "[red]"]
    for extra in marked:  # rich markup, which must not be read as such
        assert cli.ok("get", RING, "--direct", "--extra", extra).stdout.startswith(extra)
    table = cli.ok("status")
    assert "MarkupError" not in table.stderr and table.stderr == ""
    rows = table_rows(table.stdout)
    assert [row[3] for row in rows] == list(reversed(marked))  # latest first, verbatim
    assert all(len(row) == 13 and "" not in row for row in rows)
    [state] = cli.status().values()
    assert [extra["extra"] for extra in state["extras"]] == list(reversed(marked))


def test_the_default_rings_path_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    cli = Cli(f"sqlite:///{tmp_path / 'rings.db'}", None)  # CODER_RING_CONFIG unset
    missing = assert_one_line_error(cli.run("status"), code=1)
    for text in ("'config/rings.toml'", "CODER_RING_CONFIG", "coder-ring init"):
        assert text in missing, (text, missing)
    assert "config/rings.toml" in cli.ok("init").stdout
    assert set(load_rings(tmp_path / "config" / "rings.toml")) == {"widget", "doodad"}
    cli.ok("migrate")
    assert "widget" in cli.ok("status").stdout
    assert_one_line_error(cli.run("init"), "exists already", "not overwritten", code=1)
