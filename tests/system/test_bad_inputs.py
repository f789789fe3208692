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
:mod:`tests.harness.inprocess`) except where a test needs a process to start, stop or
lose a server (``@pytest.mark.slow``; private servers from :mod:`tests.servers`, the
shared ones are never stopped). :data:`~tests.system.bad_inputs_catalogue.CALLS` and
:data:`~tests.system.bad_inputs_catalogue.RINGS_FILES` list the items; each test says
which interfaces it runs them through.

This module: bad arguments and bad rings files. ``test_bad_inputs_settings.py``: bad
settings, a changed ring shape, a wrong database URL, edges of the command line.
``test_bad_inputs_dependencies.py``: broken dependencies.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

import pytest

from coder_ring import ConfigError, InvalidInput, RingConfig, Settings, load_rings
from coder_ring.alphabet import ALPHABET
from coder_ring.celery.names import ring_queue
from tests.harness import caller_app, queue_length
from tests.harness.cli import assert_one_line_error
from tests.harness.shared import ServiceFactory
from tests.system.bad_inputs_catalogue import (
    CALLS,
    NAMESPACE,
    READERS,
    RESULT_TIMEOUT,
    RING,
    RINGS_FILES,
)
from tests.system.bad_inputs_support import (
    assert_message,
    database_state,
    finish_cycle,
    get,
    one_ring_settings,
    serving,
    status,
    tasks_by_name,
    whole_cli,
)

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
