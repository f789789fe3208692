"""The bad-input catalogue: every bad argument, bad rings file, bad setting and broken
dependency, tried through the public interfaces: the Celery tasks (``.delay()`` in the
caller, and sent by name straight to a worker, which skips the caller's checks), the
``coder-ring`` command line (through a worker and ``--direct``), worker start-up, the
rings file and the engine's Python API.

Each item must give a clear error naming the bad value or the problem, and change
nothing: the ring's row and its extras' rows are identical (no write at all, not even a
version bump), the worker's status is identical, and the codes drawn before plus the
rest of the cycle are exactly the 32 codes of the base_length 1 ring. The broken
dependencies (broker, Redis, database) must fail with a clear error and, at the worker,
heal by themselves.

The worker is a real Celery worker running in this process (see
``tests/unit/test_celery_inprocess.py``) except where a test needs a process to start,
stop or lose a server (``@pytest.mark.slow``; private servers from
:mod:`tests.servers`, the shared ones are never stopped). :data:`CALLS` and
:data:`RINGS_FILES` list the items; each test says which interfaces it runs them
through.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.exceptions import TimeoutError as CeleryTimeout

from coder_ring import (
    ALPHABET,
    BrokerUnreachable,
    ConfigError,
    ExtraConflict,
    InvalidInput,
    NoWorker,
    RingConfig,
    RingMismatch,
    Settings,
    SqlStore,
    StoreUnavailable,
    UnknownRing,
    load_rings,
)
from tests.conftest import ServiceFactory
from tests.harness import (
    BIN,
    ManagedProcess,
    ProcessGroup,
    caller_app,
    free_port,
    queue_length,
    wait_until,
    worker_env,
    write_rings,
)
from tests.servers import private_postgres, private_redis
from tests.system.test_cli_engine import Cli, ScriptCli, assert_one_line_error, table_rows
from tests.unit.test_celery_inprocess import running_worker, wait_serving
from workers.app import CoderRingApp
from workers.cli import build
from workers.names import TASK_GET_CODE, TASK_GET_CODES, ring_queue
from workers.settings import WorkerSettings

RING = "one"
POOL = 8
RING_KEYS = {"base_length": 1, "pool_size": POOL}
NAMESPACE = "badinputs"
RESULT_TIMEOUT = 10.0


# --------------------------------------------------------------------------------------
# The catalogue


@dataclass(frozen=True)
class Call:
    """A bad call of ``get_code``/``get_codes`` and how each interface must refuse it."""

    item: str
    task: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    error: type[Exception]
    #: Texts the error message must contain (from the tasks and ``get --direct``).
    shown: tuple[str, ...]
    #: The same through ``coder-ring get``: its arguments after ``get``, or None when the
    #: command line cannot express the value (every argument is text there).
    cli: tuple[str, ...] | None
    #: Texts of the CLI's one-line error, and its exit code (2: a usage error).
    cli_shown: tuple[str, ...] = ()
    cli_exit: int = 1
    #: Refused by ``.delay()`` itself (False: only the worker can tell, from the database).
    in_caller: bool = True


CALLS = [
    Call(
        "unknown ring",
        TASK_GET_CODE,
        ("nope",),
        {},
        UnknownRing,
        ("unknown ring 'nope'", "configured rings: one"),
        ("nope",),
    ),
    Call(
        "ring not a str",
        TASK_GET_CODE,
        (26,),
        {},
        UnknownRing,
        ("unknown ring 26", "configured rings: one"),
        None,
    ),
    Call(
        "extra too long",
        TASK_GET_CODE,
        (RING,),
        {"extra": "x" * 33},
        InvalidInput,
        (f"invalid extra {'x' * 33!r}", "33 characters, at most 32"),
        (RING, "--extra", "x" * 33),
    ),
    Call(
        "extra not a str",
        TASK_GET_CODE,
        (RING,),
        {"extra": 26},
        InvalidInput,
        ("invalid extra 26", "must be a str (got int)"),
        None,
    ),
    Call(
        "extra with whitespace",
        TASK_GET_CODE,
        (RING,),
        {"extra": "a b"},
        InvalidInput,
        ("invalid extra 'a b'", "character ' ' is not allowed"),
        (RING, "--extra", "a b"),
    ),
    Call(
        "extra non-ASCII",
        TASK_GET_CODE,
        (RING,),
        {"extra": "café"},
        InvalidInput,
        ("invalid extra 'café'", "character 'é' is not allowed"),
        (RING, "--extra", "café"),
    ),
    Call(
        "extra of alphabet characters only",
        TASK_GET_CODE,
        (RING,),
        {"extra": "X"},
        ExtraConflict,
        ("extra 'X' is refused on ring 'one'", "same codes as extra ''"),
        (RING, "--extra", "X"),
        in_caller=False,
    ),
    Call(
        "extra extending a used extra",
        TASK_GET_CODES,
        (RING, 2),
        {"extra": "hi26"},
        ExtraConflict,
        ("extra 'hi26' is refused on ring 'one'", "same codes as extra 'hi'"),
        (RING, "-n", "2", "--extra", "hi26"),
        in_caller=False,
    ),
    Call(
        "count 0",
        TASK_GET_CODES,
        (RING, 0),
        {},
        InvalidInput,
        ("invalid count 0", "from 1 to 10000"),
        (RING, "-n", "0"),
    ),
    Call(
        "count -1",
        TASK_GET_CODES,
        (RING, -1),
        {},
        InvalidInput,
        ("invalid count -1", "from 1 to 10000"),
        (RING, "-n", "-1"),
    ),
    Call(
        "count 10**6",
        TASK_GET_CODES,
        (RING, 10**6),
        {},
        InvalidInput,
        ("invalid count 1000000", "from 1 to 10000"),
        (RING, "-n", "1000000"),
    ),
    Call(
        "count True",
        TASK_GET_CODES,
        (RING, True),
        {},
        InvalidInput,
        ("invalid count True", "must be an int", "got bool"),
        None,
    ),
    Call(
        "count '5'",
        TASK_GET_CODES,
        (RING, "5"),
        {},
        InvalidInput,
        ("invalid count '5'", "must be an int", "got str"),
        # The command line parses -n itself: a non-number is a usage error.
        (RING, "-n", "five"),
        ("'five' is not a valid integer", "-n"),
        2,
    ),
    Call(
        "bump 'yes'",
        TASK_GET_CODE,
        (RING,),
        {"bump": "yes"},
        InvalidInput,
        ("invalid bump 'yes'", "must be True or False"),
        # --bump is a flag: a value after it is refused by name.
        (RING, "--bump", "yes"),
        ("unexpected extra argument (yes)",),
        2,
    ),
]


@dataclass(frozen=True)
class RingsFile:
    """A bad rings file and the texts its error must show (besides the file's path)."""

    item: str
    body: str
    shown: tuple[str, ...]


RINGS_FILES = [
    RingsFile(
        "base_length 0",
        "[rings.one]\nbase_length = 0\n",
        ("ring 'one'", "key 'base_length' must be from 1 to 8, got 0"),
    ),
    RingsFile(
        "base_length 9",
        "[rings.one]\nbase_length = 9\n",
        ("ring 'one'", "key 'base_length' must be from 1 to 8, got 9"),
    ),
    RingsFile(
        'base_length "4"',
        '[rings.one]\nbase_length = "4"\n',
        ("ring 'one'", "key 'base_length' must be int, got '4'"),
    ),
    RingsFile(
        "base_length true",
        "[rings.one]\nbase_length = true\n",
        ("ring 'one'", "key 'base_length' must be int, got True"),
    ),
    RingsFile(
        "pool_size 20,000",
        "[rings.one]\npool_size = 20000\n",
        ("ring 'one'", "key 'pool_size' must be from 0 to 10,000", "got 20000"),
    ),
    RingsFile(
        "unknown key",
        "[rings.one]\npool = 8\n",
        ("ring 'one'", "unknown key 'pool'", "allowed: base_length, profanity_filter, pool_size"),
    ),
    RingsFile(
        "invalid ring name",
        "[rings.One]\n",
        ("invalid ring name 'One'",),
    ),
    RingsFile(
        "duplicate ring tables",
        "[rings.one]\nbase_length = 1\n\n[rings.one]\nbase_length = 2\n",
        ("invalid TOML", "Cannot declare ('rings', 'one') twice", "line 4"),
    ),
    RingsFile(
        "invalid TOML",
        "[rings.one\nbase_length = 1\n",
        ("invalid TOML", "Expected ']'", "line 1"),
    ),
]


#: The commands that read the rings file (``get`` without --direct: the caller's check).
READERS = [
    ["status"],
    ["populate"],
    ["get", RING, "--direct"],
    ["get", RING, "--timeout", "5"],
    ["reset", RING, "--yes"],
    ["worker", RING],
]


# --------------------------------------------------------------------------------------
# Helpers


def one_ring_settings(
    tmp_path: Path, redis_url: str, database_url: str, name: str = "rings", **ring: Any
) -> WorkerSettings:
    """Worker settings for the one ring, its rings file ``<name>.toml`` (``ring``
    overrides the ring's keys)."""
    rings = write_rings(tmp_path / f"{name}.toml", **{RING: {**RING_KEYS, **ring}})
    return WorkerSettings(
        engine=Settings(database_url, rings),
        broker_url=redis_url,
        result_backend=redis_url,
        redis_url=redis_url,
        namespace=NAMESPACE,
        lock_ttl=1.0,
        task_expires=30.0,
    )


def whole_cli(settings: WorkerSettings) -> Cli:
    """The whole ``coder-ring`` group (the Celery layer's), run in this process with
    ``settings``' environment: ``get`` asks the worker, ``get --direct`` the database."""
    return Cli(
        settings.engine.database_url,
        settings.engine.config_path,
        more_env=settings.to_env(),
        group=build,
    )


def tasks_by_name(app: CoderRingApp) -> dict[str, Any]:
    return {TASK_GET_CODE: app.ring_tasks.get_code, TASK_GET_CODES: app.ring_tasks.get_codes}


def get(app: CoderRingApp, **kwargs: Any) -> str:
    code: str = app.ring_tasks.get_code.delay(RING, **kwargs).get(timeout=RESULT_TIMEOUT)
    return code


def status(app: CoderRingApp) -> dict[str, Any]:
    report: dict[str, Any] = app.ring_tasks.status.delay(RING).get(timeout=RESULT_TIMEOUT)
    return report


def database_state(database_url: str) -> tuple[object, ...]:
    """The ring's row and its extras' rows, exactly as stored (versions included)."""
    store = SqlStore(database_url)
    try:
        return (
            store.ring_record(RING),
            sorted(store.extra_records(RING), key=lambda extra: extra.extra),
            store.stored_positions(RING),
        )
    finally:
        store.dispose()


def assert_message(error: BaseException, *shown: str) -> str:
    message = str(error)
    for text in shown:
        assert text in message, (text, message)
    return message


def finish_cycle(app: CoderRingApp, codes: Sequence[str]) -> None:
    """Draw the rest of the first cycle: with ``codes`` it must be exactly the 32 codes
    of the ring, and the next code must open the second cycle."""
    rest = [get(app) for _ in range(len(ALPHABET) - len(codes))]
    assert sorted([*codes, *rest]) == sorted(ALPHABET), (codes, rest)
    assert get(app).startswith("X")


@contextlib.contextmanager
def serving(settings: WorkerSettings) -> Iterator[CoderRingApp]:
    """A worker in this process serving the ring, and a caller app."""
    with running_worker(settings, RING) as worker_app, caller_app(settings) as app:
        wait_serving(worker_app, RING)
        yield app


# --------------------------------------------------------------------------------------
# Bad arguments


@pytest.mark.redis
@pytest.mark.postgres
def test_bad_calls_through_every_interface_change_nothing(
    tmp_path: Path, redis_url: str, pg_url: str
) -> None:
    settings = one_ring_settings(tmp_path, redis_url, pg_url)
    cli = whole_cli(settings)
    queue = ring_queue(NAMESPACE, RING)
    with serving(settings) as app:
        codes = [get(app) for _ in range(5)]
        app.ring_tasks.get_codes.delay(RING, 2, extra="hi").get(timeout=RESULT_TIMEOUT)
        app.ring_tasks.refill.delay(RING)  # full pools: no request tops one up
        before = (status(app), database_state(pg_url))

        for call in CALLS:
            task = tasks_by_name(app)[call.task]
            # .delay(): refused in the caller (nothing is sent), or by the worker.
            with pytest.raises(call.error) as refused:
                if call.in_caller:
                    task.delay(*call.args, **call.kwargs)
                else:
                    task.delay(*call.args, **call.kwargs).get(timeout=RESULT_TIMEOUT)
            assert_message(refused.value, *call.shown)
            # By name, straight to the worker's queue: the worker refuses it.
            sent = app.send_task(
                call.task,
                args=list(call.args),
                kwargs=dict(call.kwargs),
                queue=queue,
                expires=30,
            )
            with pytest.raises(call.error) as answered:
                sent.get(timeout=RESULT_TIMEOUT)
            assert_message(answered.value, *call.shown)
            # The command line, through the worker and --direct: one line, no traceback.
            if call.cli is not None:
                shown = call.cli_shown or call.shown
                for more in ((), ("--direct",)):
                    done = cli.run("get", *call.cli, *more)
                    assert_one_line_error(done, *shown, code=call.cli_exit)
            print(f"{call.item}: {refused.value}")

        # Ring requests cannot be delayed (each redelivery would burn codes).
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=5)
        for option, value in (("countdown", 5), ("eta", when)):
            with pytest.raises(InvalidInput) as delayed:
                app.ring_tasks.get_code.apply_async((RING,), **{option: value})
            assert_message(delayed.value, f"invalid option {option}=", "cannot be delayed")

        assert queue_length(redis_url, RING, NAMESPACE) == 0
        assert queue_length(redis_url, "nope", NAMESPACE) == 0
        assert (status(app), database_state(pg_url)) == before
        finish_cycle(app, codes)


# --------------------------------------------------------------------------------------
# Bad rings files, bad settings


@pytest.mark.redis
def test_bad_rings_files_are_refused_by_every_reader_and_change_nothing(
    tmp_path: Path, redis_url: str, sqlite_url: str
) -> None:
    good = one_ring_settings(tmp_path, redis_url, sqlite_url)
    direct = whole_cli(good)
    direct.ok("migrate")
    codes = direct.ok("get", RING, "--direct", "-n", "3").stdout.split()
    before = database_state(sqlite_url)
    for number, bad in enumerate(RINGS_FILES):
        path = tmp_path / f"bad-{number}.toml"
        path.write_text(bad.body, encoding="utf-8")
        shown = (str(path), *bad.shown)
        # Refused by the loader itself (so `worker` below cannot start a worker).
        with pytest.raises(ConfigError) as loaded:
            load_rings(path)
        assert_message(loaded.value, *shown)
        bad_settings = dataclasses.replace(good, engine=Settings(sqlite_url, path))
        for args in READERS:
            assert_one_line_error(whole_cli(bad_settings).run(*args), *shown, code=1)
        # A caller on the bad file: .delay() refuses before sending.
        with caller_app(bad_settings) as bad_app, pytest.raises(ConfigError) as refused:
            bad_app.ring_tasks.get_code.delay(RING)
        assert_message(refused.value, *shown)
        print(f"{bad.item}: {refused.value}")
    assert database_state(sqlite_url) == before
    rest = direct.ok("get", RING, "--direct", "-n", "29").stdout.split()
    assert sorted([*codes, *rest]) == sorted(ALPHABET)


def test_ring_configs_in_python_are_checked_when_built() -> None:
    cases = [
        ({"pool_size": 20_000}, "key 'pool_size' must be from 0 to 10,000"),
        ({"pool_size": -1}, "key 'pool_size' must be from 0 to 10,000"),
        ({"base_length": 0}, "key 'base_length' must be from 1 to 8, got 0"),
        ({"base_length": 9}, "key 'base_length' must be from 1 to 8, got 9"),
        ({"base_length": True}, "key 'base_length' must be int, got True"),
        ({"profanity_filter": "yes"}, "key 'profanity_filter' must be bool, got 'yes'"),
        ({"name": "One"}, "invalid ring name 'One'"),
    ]
    for keys, shown in cases:
        arguments = {"name": RING, **keys}
        with pytest.raises(ConfigError) as refused:
            RingConfig(**arguments)
        assert_message(refused.value, shown)
    assert RingConfig(RING, pool_size=10_000).pool_size == 10_000  # the bound itself is fine


def test_give_back_checks_its_arguments(make_service: ServiceFactory) -> None:
    service = make_service(RingConfig(RING, base_length=1))
    drawn = service.draw(RING, 3, within_cycle=True)
    epoch, version = drawn.ring.epoch, drawn.extra.version
    values = list(reversed(drawn.values))
    before = service.status(RING).as_dict()
    bad = [
        ("x", {}, "invalid values 'x': must be a list of ints (got str)"),
        (None, {}, "invalid values None"),
        (["a"], {}, "invalid value 'a' in values: must be an int from 0 to 31"),
        ([1.5], {}, "invalid value 1.5 in values"),
        ([True], {}, "invalid value True in values"),
        ([-1], {}, "invalid value -1 in values"),
        ([32], {}, "invalid value 32 in values: must be an int from 0 to 31"),
        ([values[0], values[0]], {}, f"invalid values: {values[0]} is given twice"),
        (list(range(10_001)), {}, "invalid values: 10,001 of them, at most 10,000"),
        (values, {"epoch": "1"}, "invalid epoch '1': must be an int"),
        (values, {"version": None}, "invalid version None: must be an int"),
        (values, {"extra": 5}, "invalid extra 5"),
    ]
    for given, changed, shown in bad:
        arguments: dict[str, Any] = {"epoch": epoch, "version": version, "extra": ""}
        arguments.update(changed)
        extra = arguments.pop("extra")
        with pytest.raises(InvalidInput) as refused:
            service.give_back(RING, extra, given, **arguments)
        assert_message(refused.value, shown)
        assert service.status(RING).as_dict() == before
    assert service.give_back(RING, "", values, epoch=epoch, version=version)  # still works
    assert service.status(RING).remaining_in_cycle == 32


#: Bad worker settings (environment) and the texts their error must show.
BAD_SETTINGS = [
    ("CODER_RING_NAMESPACE", "Bad NS", "CODER_RING_NAMESPACE='Bad NS' is invalid"),
    ("CODER_RING_LOCK_TTL", "abc", "CODER_RING_LOCK_TTL='abc' is invalid"),
    ("CODER_RING_TASK_EXPIRES", "-5", "CODER_RING_TASK_EXPIRES='-5' is invalid"),
    ("CODER_RING_TASK_EVENTS", "maybe", "CODER_RING_TASK_EVENTS='maybe' is invalid"),
    ("CODER_RING_METRICS_PORT", "70000", "CODER_RING_METRICS_PORT='70000' is invalid"),
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
        assert_message(refused.value, shown)
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
    assert all(len(row) == 12 and "" not in row for row in rows)
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


# --------------------------------------------------------------------------------------
# Broken dependencies


@pytest.mark.redis
def test_broker_down_at_the_caller(tmp_path: Path, sqlite_url: str, redis_url: str) -> None:
    rings = write_rings(tmp_path / "rings.toml", **{RING: RING_KEYS})
    dead = f"redis://127.0.0.1:{free_port()}/0"
    # A live result backend, a dead broker (and no registry to read: the request is sent).
    env = worker_env(
        redis_url=dead, broker_url=dead, result_backend=redis_url,
        database_url=sqlite_url, rings_file=rings,
    )  # fmt: skip
    direct = Cli(sqlite_url, rings)
    direct.ok("migrate")
    before = database_state(sqlite_url)
    with caller_app(env) as app, pytest.raises(BrokerUnreachable) as caught:
        app.ring_tasks.get_code.delay(RING)
    assert isinstance(caught.value, StoreUnavailable)
    assert_message(caught.value, "cannot reach the broker", dead, "Connection refused")
    assert_message(caught.value, "nothing was sent")
    assert database_state(sqlite_url) == before
    codes = direct.ok("get", RING, "--direct", "-n", "32").stdout.split()
    assert sorted(codes) == sorted(ALPHABET)  # the whole first cycle was still there


@pytest.mark.slow
@pytest.mark.redis
def test_broker_and_result_backend_down_at_the_caller(tmp_path: Path, sqlite_url: str) -> None:
    # The usual set-up: broker, results and locks on one Redis, which is down. The result
    # backend gives up after its retry policy (5 s): slow, hence not in the quick suite.
    rings = write_rings(tmp_path / "rings.toml", **{RING: RING_KEYS})
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = worker_env(redis_url=dead, database_url=sqlite_url, rings_file=rings)
    direct = Cli(sqlite_url, rings)
    direct.ok("migrate")
    before = database_state(sqlite_url)
    # The console script runs alongside the in-process caller.
    script = ScriptCli(sqlite_url, rings, more_env=env)
    finished: list[Any] = []
    background = threading.Thread(
        target=lambda: finished.append(script.run("get", RING, "--timeout", "5"))
    )
    background.start()
    with caller_app(env) as app, pytest.raises(BrokerUnreachable) as caught:
        app.ring_tasks.get_code.delay(RING)
    background.join(60)
    shown = ("cannot reach the result backend", dead, "nothing was sent")
    assert_message(caught.value, *shown)
    [done] = finished
    assert_one_line_error(done, *shown, code=1)
    assert database_state(sqlite_url) == before


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Processes of one test; all gone afterwards (their logs shown on failure)."""
    with ProcessGroup(tmp_path / "processes") as processes:
        yield processes


def one_ring_env(tmp_path: Path, redis_url: str, database_url: str) -> dict[str, str]:
    rings = write_rings(tmp_path / "rings.toml", **{RING: RING_KEYS})
    return worker_env(
        redis_url=redis_url, database_url=database_url, rings_file=rings, namespace=NAMESPACE
    )


def extra_boundary(database_url: str) -> int:
    _, extras, _ = database_state(database_url)
    [empty] = [extra for extra in extras if extra.extra == ""]
    return int(empty.boundary)


@pytest.mark.slow
@pytest.mark.postgres
def test_redis_down_at_the_worker_stops_serving_and_heals(
    tmp_path: Path, pg_url: str, group: ProcessGroup
) -> None:
    with private_redis() as redis_server:
        env = one_ring_env(tmp_path, redis_server.url, pg_url)
        worker = group.worker("served", env, rings=[RING])
        with caller_app(env) as app:
            worker.wait_for_lock(RING)
            codes = [get(app) for _ in range(5)]
            pid = worker.pid

            redis_server.stop()
            worker.wait_for_log(rf"ring {RING}: lock unreachable .*; stop serving", timeout=15)
            worker.wait_for_log(rf"ring {RING}: lock lost; pool dropped", timeout=15)
            # The lock is gone, and the pool went back to the ring (the database is up).
            wait_until(
                lambda: extra_boundary(pg_url) == len(ALPHABET) - len(codes),
                15,
                what="the pool given back",
            )
            with pytest.raises(BrokerUnreachable) as caught:
                app.ring_tasks.get_code.delay(RING)
            assert_message(caught.value, redis_server.url, "nothing was sent")

            redis_server.start()
            # Served again by the same process: it healed by itself.
            code = wait_until(lambda: served_or_none(app), 60, 0.5, "the ring served again")
            print(f"redis down, then served again; caller's error meanwhile: {caught.value}")
            assert worker.alive() and worker.pid == pid
            assert worker.holds(RING)
            assert len(re.findall(rf"ring {RING}: lock won by", worker.log_text())) == 2
            finish_cycle(app, [*codes, code])


def served_or_none(app: CoderRingApp) -> str | None:
    """One code, or None while no worker serves the ring (or the broker is still down)."""
    try:
        return get(app)
    except (NoWorker, BrokerUnreachable, CeleryTimeout, redis.RedisError):
        return None


@pytest.mark.slow
@pytest.mark.redis
def test_database_down_at_the_worker_is_a_clear_error_and_heals(
    tmp_path: Path, redis_url: str, group: ProcessGroup
) -> None:
    with private_postgres() as database:
        env = one_ring_env(tmp_path, redis_url, database.url)
        worker = group.worker("served", env, rings=[RING])
        direct = ScriptCli(database.url, Path(env["CODER_RING_CONFIG"]), more_env=env)
        with caller_app(env) as app:
            worker.wait_for_lock(RING)
            codes = [get(app) for _ in range(5)]
            pid = worker.pid

            database.stop()
            # The pool holds codes already committed as issued: they are handed out, then
            # callers get the database's error (and, once the worker gave the ring up as
            # unhealthy, that no worker may serve it).
            error: StoreUnavailable | NoWorker | None = None
            for _ in range(POOL + 1):
                try:
                    codes.append(get(app))
                except (StoreUnavailable, NoWorker) as caught:
                    error = caught
                    break
            assert error is not None, "the worker kept serving without its database"
            where = f"postgresql+psycopg://postgres@127.0.0.1:{database.port}/postgres"
            if isinstance(error, StoreUnavailable):
                assert_message(error, f"database {where} failed")
            else:
                assert_message(error, "database unreachable")
            print(f"database down: {len(codes) - 5} pooled codes served, then: {error}")
            assert_one_line_error(direct.run("get", RING, "--direct"), f"database {where} failed")

            database.start()
            started = time.monotonic()
            code = wait_until(lambda: served_or_none(app), 120, 0.5, "the ring served again")
            print(f"served again {time.monotonic() - started:.1f} s after the database")
            assert worker.alive() and worker.pid == pid  # it healed by itself
            finish_cycle(app, [*codes, code])
