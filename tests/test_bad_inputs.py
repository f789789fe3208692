"""The bad-input catalogue (issue 5): every bad argument, bad rings file and broken
dependency, tried through the public interfaces: the Celery tasks (``.delay()`` in the
caller, and sent by name straight to a worker, which skips the caller's checks), the
``coder-ring`` console script (through a worker and ``--direct``), worker start-up and
the rings file.

Each item must give a clear error that names the bad value or the problem, and change
nothing: the ring's row is identical (no write at all, not even a version bump), a
worker's status is identical, and the codes drawn before plus the rest of the cycle are
exactly the 32 codes of the base_length 1 ring. The broken dependencies (broker, Redis,
database) must fail within a bounded time and, at the worker, heal by themselves.

The tables :data:`CALLS` and :data:`RINGS_FILES` list the items; each test says which
interfaces it runs them through. Processes come from :mod:`tests.harness`, private
servers from :mod:`tests.servers` (the shared ones are never stopped).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from coder_ring import (
    ALPHABET,
    ConfigError,
    InvalidInput,
    RingMismatch,
    SqlStore,
    StoreUnavailable,
    UnknownRing,
)
from coder_ring.store import RingRecord
from tests.harness import (
    BIN,
    ProcessGroup,
    WorkerProcess,
    caller_app,
    free_port,
    queue_length,
    ring_calls,
    wait_until,
    worker_env,
    write_rings,
)
from tests.servers import private_postgres, private_redis
from tests.test_cli_engine import Cli, assert_one_line_error
from workers.names import TASK_GET_CODE, TASK_GET_CODES, ring_queue
from workers.tasks import BrokerUnreachable

RING = "one"
POOL = 8
RING_KEYS = {"base_length": 1, "pool_size": POOL}
RESULT_TIMEOUT = 10.0
CONSOLE_SCRIPT = str(BIN / "coder-ring")
#: A caller facing a dead broker must fail within this many seconds (the Redis result
#: backend's retry policy allows 5 s, see workers/app.py).
BROKER_DOWN_BOUND = 8.0
#: A worker whose database is down must answer with an error within this many seconds.
DATABASE_DOWN_BOUND = 8.0
#: How long Redis stays down at the worker (over twice the test's lock TTL).
REDIS_DOWN_SECONDS = 6.0
#: A worker must serve again within this many seconds of Redis being back.
REDIS_BACK_BOUND = 30.0


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
        ("ring 'one'", "key 'base_length' must be from 1 to 4, got 0"),
    ),
    RingsFile(
        "base_length 5",
        "[rings.one]\nbase_length = 5\n",
        ("ring 'one'", "key 'base_length' must be from 1 to 4, got 5"),
    ),
    RingsFile(
        'base_length "4"',
        '[rings.one]\nbase_length = "4"\n',
        ("ring 'one'", "key 'base_length' must be int, got '4'"),
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
    ["worker", RING],
]


# --------------------------------------------------------------------------------------
# Helpers


@dataclass
class RingCli(Cli):
    """:class:`Cli` running the ``coder-ring`` console script with a worker's whole
    environment (broker, locks), so that ``get`` without ``--direct`` asks a worker."""

    more_env: Mapping[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.more_env}


def run_many(
    invocations: Sequence[tuple[Cli, Sequence[str]]],
) -> list[subprocess.CompletedProcess[str]]:
    """Run every ``(cli, args)`` at once (each pays the interpreter's start-up)."""
    started = [
        subprocess.Popen(
            [*cli.command, *args],
            env=cli.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cli, args in invocations
    ]
    done = []
    for process in started:
        stdout, stderr = process.communicate(timeout=90)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return done


def ring_cli(env: Mapping[str, str]) -> RingCli:
    return RingCli(
        env["CODER_RING_DATABASE_URL"],
        Path(env["CODER_RING_CONFIG"]),
        command=(CONSOLE_SCRIPT,),
        more_env=env,
    )


@pytest.fixture
def group(tmp_path: Path) -> Iterator[ProcessGroup]:
    """Processes of one test; every one is gone afterwards, and the tails of their logs
    are printed (pytest shows them when the test failed)."""
    processes = ProcessGroup(tmp_path / "processes")
    try:
        yield processes
    finally:
        processes.close()
        for process in processes.processes:
            print(process.log_tail(60))


@pytest.fixture
def store(pg_url: str) -> Iterator[SqlStore]:
    """The engine's store on the test database, to read the ring's row."""
    opened = SqlStore(pg_url)
    yield opened
    opened.dispose()


def one_ring_env(tmp_path: Path, redis_url: str, database_url: str) -> dict[str, str]:
    rings = write_rings(tmp_path / "rings.toml", **{RING: RING_KEYS})
    return worker_env(redis_url=redis_url, database_url=database_url, rings_file=rings)


get, status = ring_calls(RING, RESULT_TIMEOUT)


def record(store: SqlStore) -> RingRecord:
    found = store.record(RING)
    assert found is not None
    return found


def assert_message(error: BaseException, *shown: str) -> str:
    message = str(error)
    for text in shown:
        assert text in message, (text, message)
    return message


def finish_cycle(app: Any, codes: Sequence[str]) -> None:
    """Draw the rest of the first cycle: with ``codes`` it must be exactly the 32 codes
    of the ring, and the next code must open the second cycle."""
    rest = [get(app) for _ in range(len(ALPHABET) - len(codes))]
    assert sorted([*codes, *rest]) == sorted(ALPHABET), (codes, rest)
    assert get(app).startswith("X")


# --------------------------------------------------------------------------------------
# Bad arguments


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_bad_calls_through_every_interface_change_nothing(
    tmp_path: Path, redis_url: str, pg_url: str, store: SqlStore, group: ProcessGroup
) -> None:
    env = one_ring_env(tmp_path, redis_url, pg_url)
    worker = group.worker("served", env, rings=[RING])
    cli = ring_cli(env)
    with caller_app(env) as app:
        worker.wait_for_lock(RING)
        codes = [get(app) for _ in range(5)]
        assert status(app)["pool_size"] > 0  # the worker serves from a pool
        before = (status(app), record(store))

        # The command line, through the worker and --direct, all at once.
        invocations = []
        for call in CALLS:
            if call.cli is not None:
                invocations += [("get", *call.cli), ("get", *call.cli, "--direct")]
        results = dict(zip(invocations, cli.run_all(*invocations), strict=True))

        for call in CALLS:
            task = app.tasks[call.task]
            # .delay(): refused in the caller, nothing is sent.
            with pytest.raises(call.error) as refused:
                task.delay(*call.args, **call.kwargs)
            assert_message(refused.value, *call.shown)
            # By name, straight to the worker's queue: the worker refuses it.
            sent = app.send_task(
                call.task,
                args=list(call.args),
                kwargs=dict(call.kwargs),
                queue=ring_queue(RING),
                expires=30,
            )
            with pytest.raises(call.error) as answered:
                sent.get(timeout=RESULT_TIMEOUT)
            assert_message(answered.value, *call.shown)
            # The command line: one line, no traceback.
            if call.cli is not None:
                shown = call.cli_shown or call.shown
                for args in [("get", *call.cli), ("get", *call.cli, "--direct")]:
                    assert_one_line_error(results[args], *shown, code=call.cli_exit)
            print(f"{call.item}: {refused.value}")

        assert queue_length(redis_url, "nope") == 0
        assert (status(app), record(store)) == before
        finish_cycle(app, codes)


# --------------------------------------------------------------------------------------
# Bad rings files


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_bad_rings_files_are_refused_by_every_reader_and_change_nothing(
    tmp_path: Path, redis_url: str, pg_url: str, store: SqlStore, group: ProcessGroup
) -> None:
    env = one_ring_env(tmp_path, redis_url, pg_url)
    worker = group.worker("served", env, rings=[RING])
    with caller_app(env) as app:
        worker.wait_for_lock(RING)
        codes = [get(app) for _ in range(5)]
        before = (status(app), record(store))

        bad_envs = []
        starts: list[WorkerProcess] = []
        invocations: list[tuple[RingCli, list[str]]] = []
        for number, bad in enumerate(RINGS_FILES):
            path = tmp_path / f"bad-{number}.toml"
            path.write_text(bad.body, encoding="utf-8")
            bad_env = {**env, "CODER_RING_CONFIG": str(path)}
            bad_envs.append(bad_env)
            # Workers started on it (celery's own command) exit at once.
            starts.append(group.worker(f"bad{number}", bad_env, rings=[RING]))
            cli = ring_cli(bad_env)
            invocations += [(cli, args) for args in READERS]
        finished = run_many(invocations)
        runs = [finished[at : at + len(READERS)] for at in range(0, len(finished), len(READERS))]
        for bad, bad_env, start, results in zip(RINGS_FILES, bad_envs, starts, runs, strict=True):
            shown = (bad_env["CODER_RING_CONFIG"], *bad.shown)
            for done in results:
                assert_one_line_error(done, *shown, code=1)
            assert start.wait(30) == 1
            log = start.log_text()
            assert "Traceback" not in log
            line = re.search(r"^error: .*", log, re.M)
            assert line is not None, log
            assert_message(Exception(line.group(0)), *shown)
            # A caller on the bad file: .delay() refuses before sending.
            with caller_app(bad_env) as bad_app, pytest.raises(ConfigError) as refused:
                bad_app.tasks[TASK_GET_CODE].delay(RING)
            assert_message(refused.value, *shown)
            print(f"{bad.item}: {refused.value}")

        # The worker that read the good file keeps serving the same cycle.
        assert worker.alive()
        assert (status(app), record(store)) == before
        finish_cycle(app, codes)


# --------------------------------------------------------------------------------------
# A changed ring shape, a wrong database URL


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.postgres
def test_changed_base_length_and_wrong_database_url_change_nothing(
    tmp_path: Path, redis_url: str, pg_url: str, store: SqlStore, group: ProcessGroup
) -> None:
    env = one_ring_env(tmp_path, redis_url, pg_url)
    served = group.worker("served", env, rings=[RING])
    with caller_app(env) as app:
        served.wait_for_lock(RING)
        codes = [get(app) for _ in range(5)]
        assert served.stop() == 0  # graceful: its pool goes back to the ring
        before = record(store)
        assert before.boundary == len(ALPHABET) - len(codes)

        # The filled ring's base_length changed in the rings file.
        changed = write_rings(tmp_path / "changed.toml", **{RING: {**RING_KEYS, "base_length": 2}})
        changed_env = {**env, "CODER_RING_CONFIG": str(changed)}
        mismatched = group.worker("mismatched", changed_env, rings=[RING])
        mismatched.wait_for_lock(RING)
        cli = ring_cli(changed_env)
        through_worker, direct, populate = cli.run_all(
            ["get", RING, "--timeout", "10"], ["get", RING, "--direct"], ["populate"]
        )
        with pytest.raises(RingMismatch) as caught:
            get(app)
        shown = ("base_length=1", "base_length=2", "coder-ring rebuild one")
        assert_message(caught.value, *shown)
        for done in (through_worker, direct, populate):
            assert_one_line_error(done, *shown, code=1)
        print(f"changed base_length: {caught.value}")
        assert mismatched.stop() == 0
        assert record(store) == before

        # A wrong database URL: unreachable, and not a URL at all.
        dead_port = free_port()
        dead = f"postgresql://postgres@127.0.0.1:{dead_port}/test"
        dead_env = {**env, "CODER_RING_DATABASE_URL": dead}
        nonsense_env = {**env, "CODER_RING_DATABASE_URL": "nonsense"}
        unreachable = group.worker("unreachable", dead_env, rings=[RING])
        refused = group.worker("nonsense", nonsense_env, rings=[RING])
        unreachable.wait_for_lock(RING)
        where = f"127.0.0.1:{dead_port}"
        dead_cli, nonsense_cli = ring_cli(dead_env), ring_cli(nonsense_env)
        dead_runs = dead_cli.run_all(
            ["get", RING, "--timeout", "10"], ["get", RING, "--direct"], ["migrate"]
        )
        nonsense_runs = nonsense_cli.run_all(["get", RING, "--direct"], ["worker", RING])
        started = time.monotonic()
        with pytest.raises(StoreUnavailable) as caught_db:
            get(app)
        assert time.monotonic() - started < DATABASE_DOWN_BOUND
        assert_message(caught_db.value, "database postgresql+psycopg://postgres@", where)
        print(f"unreachable database: {caught_db.value}")
        for done in dead_runs:
            assert_one_line_error(done, where, code=1)
        for done in nonsense_runs:
            assert_one_line_error(done, "invalid database URL 'nonsense'", code=1)
        assert refused.wait(30) == 1
        assert "error: invalid database URL 'nonsense'" in refused.log_text()
        assert "Traceback" not in refused.log_text()
        assert unreachable.stop() == 0
        assert record(store) == before

        # The ring goes on where it was.
        served.start()
        served.wait_for_lock(RING)
        finish_cycle(app, codes)


# --------------------------------------------------------------------------------------
# Broken dependencies


@pytest.mark.redis
def test_broker_down_at_the_caller(tmp_path: Path, sqlite_url: str, redis_url: str) -> None:
    rings = write_rings(tmp_path / "rings.toml", **{RING: RING_KEYS})
    dead = f"redis://127.0.0.1:{free_port()}/0"
    # The usual set-up (broker, results and locks on one Redis), and a live result
    # backend with a dead broker.
    both_dead = worker_env(redis_url=dead, database_url=sqlite_url, rings_file=rings)
    broker_dead = worker_env(
        redis_url=redis_url, broker_url=dead, result_backend=redis_url,
        database_url=sqlite_url, rings_file=rings,
    )  # fmt: skip
    cli = ring_cli(both_dead)
    cli.ok("migrate")
    cli.ok("populate")
    before = cli.state(RING)

    # The console script runs alongside the in-process callers.
    finished: list[tuple[float, subprocess.CompletedProcess[str]]] = []

    def run_cli() -> None:
        started = time.monotonic()
        done = cli.run("get", RING, "--timeout", "5")
        finished.append((time.monotonic() - started, done))

    background = threading.Thread(target=run_cli)
    background.start()
    for env, shown in [
        (both_dead, ("cannot reach the result backend", dead, "Connection refused")),
        (broker_dead, ("cannot reach the broker", dead, "Connection refused")),
    ]:
        with caller_app(env) as app:
            started = time.monotonic()
            with pytest.raises(BrokerUnreachable) as caught:
                app.tasks[TASK_GET_CODE].delay(RING)
            took = time.monotonic() - started
            assert took < BROKER_DOWN_BOUND, took
            assert_message(caught.value, *shown, "nothing was sent")
            print(f".delay(), broker down ({took:.1f} s): {caught.value}")
    background.join(60)
    [(cli_seconds, done)] = finished
    assert_one_line_error(done, "cannot reach the result backend", dead, code=1)
    assert cli_seconds < BROKER_DOWN_BOUND + 3, cli_seconds  # + the interpreter's start
    print(f"coder-ring get, broker down ({cli_seconds:.1f} s): {done.stderr.strip()}")
    assert cli.state(RING) == before
    codes = cli.ok("get", RING, "--direct", "-n", "32").stdout.split()
    assert sorted(codes) == sorted(ALPHABET)  # the whole first cycle was still there


@pytest.mark.slow
@pytest.mark.postgres
def test_redis_down_at_the_worker_stops_serving_and_heals(
    tmp_path: Path, pg_url: str, store: SqlStore, group: ProcessGroup
) -> None:
    with private_redis() as redis_server:
        env = one_ring_env(tmp_path, redis_server.url, pg_url)
        worker = group.worker("served", env, rings=[RING])
        with caller_app(env) as app:
            worker.wait_for_lock(RING)
            codes = [get(app) for _ in range(5)]
            pid = worker.pid

            redis_server.stop()
            down = time.monotonic()
            worker.wait_for_log(rf"ring {RING}: lock unreachable .*; stop serving", timeout=10)
            worker.wait_for_log(rf"ring {RING}: lock lost; pool dropped", timeout=10)
            # The lock is gone, and the pool went back to the ring (the database is up).
            wait_until(
                lambda: record(store).boundary == len(ALPHABET) - len(codes),
                10,
                what="the pool given back",
            )
            started = time.monotonic()
            with pytest.raises(BrokerUnreachable) as caught:
                app.tasks[TASK_GET_CODE].delay(RING)
            assert time.monotonic() - started < BROKER_DOWN_BOUND
            assert_message(caught.value, redis_server.url, "nothing was sent")

            # Down long enough for the worker's broker connection to back off, too.
            time.sleep(max(0.0, down + REDIS_DOWN_SECONDS - time.monotonic()))
            redis_server.start()
            back = time.monotonic()
            code = app.tasks[TASK_GET_CODE].delay(RING).get(timeout=REDIS_BACK_BOUND)
            served_after = time.monotonic() - back
            print(
                f"redis down {back - down:.1f} s; served {served_after:.1f} s after it was "
                f"back; caller's error: {caught.value}"
            )
            assert worker.alive()
            assert worker.pid == pid  # the same process: it healed by itself
            assert worker.holds(RING)
            assert len(re.findall(rf"ring {RING}: lock won by", worker.log_text())) == 2
            finish_cycle(app, [*codes, code])


@pytest.mark.slow
@pytest.mark.redis
def test_database_down_at_the_worker_is_a_clear_error_and_heals(
    tmp_path: Path, redis_url: str, group: ProcessGroup
) -> None:
    with private_postgres() as database:
        env = one_ring_env(tmp_path, redis_url, database.url)
        worker = group.worker("served", env, rings=[RING])
        cli = ring_cli(env)
        with caller_app(env) as app:
            worker.wait_for_lock(RING)
            codes = [get(app) for _ in range(5)]
            pid = worker.pid

            database.stop()
            # The pool still holds codes already committed as issued: they are handed
            # out, then callers get the database's error.
            error: StoreUnavailable | None = None
            for _ in range(POOL + 1):
                started = time.monotonic()
                try:
                    codes.append(get(app))
                except StoreUnavailable as caught:
                    error = caught
                assert time.monotonic() - started < DATABASE_DOWN_BOUND
                if error is not None:
                    break
            assert error is not None, "the worker kept serving without its database"
            where = f"postgresql+psycopg://postgres@127.0.0.1:{database.port}/postgres"
            assert_message(error, f"database {where} failed")
            print(f"database down: {len(codes) - 5} pooled codes served, then: {error}")
            through_worker, direct = cli.run_all(
                ["get", RING, "--timeout", "10"], ["get", RING, "--direct"]
            )
            for done in (through_worker, direct):
                assert_one_line_error(done, f"database {where} failed", code=1)

            database.start()
            codes.append(get(app))
            assert worker.alive()
            assert worker.pid == pid  # the same process: it healed by itself
            finish_cycle(app, codes)
