"""What the guarantee needs of a PostgreSQL session, whatever the server says.

A server tuned for speed may default to ``synchronous_commit=off`` (a commit returns
before its WAL is written: a crash loses it, and the codes of a lost draw are handed out
again) or to ``REPEATABLE READ``/``SERIALIZABLE`` (a draw that waited for the ring's lock
fails instead of reading the committed row). The store pins each session to at least
``synchronous_commit=on`` and to ``READ COMMITTED``.

The shared test database has those hostile defaults (``tests/harness/shared.py``), so
every PostgreSQL test runs under them; the tests here check the pins themselves, many
processes drawing on it, and a crash of a server whose config says
``synchronous_commit=off``.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, create_engine, text

from coder_ring import RingConfig, RingService, SqlStore, StoreUnavailable
from tests.harness.shared import HOSTILE_DEFAULTS, PG_ADMIN_URL, require
from tests.servers import PrivatePostgres

SPAWN = multiprocessing.get_context("spawn")
RING = RingConfig("durable", base_length=2)  # 1,024 codes: lost draws collide at once
BUSY_RING = RingConfig("busy", base_length=4)
PROCESSES = 4
DRAW_SECONDS = 3.0
WAIT = 120  # seconds; only reached when something hangs


def _session_settings(url: str) -> tuple[str, str]:
    """(synchronous_commit, transaction_isolation) inside a store transaction."""
    store = SqlStore(url)
    try:
        with store.transaction() as conn:
            row = conn.execute(
                text(
                    "SELECT current_setting('synchronous_commit'), "
                    "current_setting('transaction_isolation')"
                )
            ).one()
        return row[0], row[1]
    finally:
        store.dispose()


def test_the_test_database_has_the_defaults_of_a_server_tuned_for_speed(
    pg_admin: Engine,
) -> None:
    engine = create_engine(PG_ADMIN_URL)
    try:
        with engine.connect() as conn:
            shown = {name: conn.execute(text(f"SHOW {name}")).scalar() for name in HOSTILE_DEFAULTS}
    finally:
        engine.dispose()
    assert shown == HOSTILE_DEFAULTS


@pytest.mark.parametrize(
    ("server_says", "session_has"),
    [
        ("off", "on"),
        ("local", "on"),
        ("remote_write", "on"),
        ("on", "on"),
        ("remote_apply", "remote_apply"),  # stronger than on: kept
    ],
)
@pytest.mark.parametrize("isolation", ["serializable", "repeatable read", "read committed"])
def test_a_session_commits_durably_and_reads_committed(
    pg_admin: Engine, server_says: str, session_has: str, isolation: str
) -> None:
    # As a role's or a database's settings would: defaults of every new session.
    options = (
        f"-c synchronous_commit={server_says} "
        f"-c default_transaction_isolation={isolation.replace(' ', chr(92) + ' ')}"
    )
    url = f"{PG_ADMIN_URL}?options={quote(options)}"
    assert _session_settings(url) == (session_has, "read committed")


def _draw_for_a_while(url: str, barrier: Any, results: Any) -> None:
    service = RingService(SqlStore(url), {BUSY_RING.name: BUSY_RING})
    codes: list[str] = []
    errors: list[str] = []
    try:
        barrier.wait(timeout=WAIT)
        deadline = time.monotonic() + DRAW_SECONDS
        while time.monotonic() < deadline:
            count = 1 + len(codes) % 5
            try:
                codes += service.get_codes(BUSY_RING.name, count)
            except StoreUnavailable as error:  # counted, not retried (nor does the service)
                errors.append(str(error))
        results.put((codes, errors))
    finally:
        service.close()


@pytest.mark.slow  # four processes drawing for 3 s
def test_processes_drawing_at_once_on_a_serializable_default_never_fail(pg_url: str) -> None:
    service = RingService(SqlStore(pg_url), {BUSY_RING.name: BUSY_RING})
    service.migrate()
    service.populate()
    service.close()
    barrier = SPAWN.Barrier(PROCESSES)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_draw_for_a_while, args=(pg_url, barrier, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    collected: list[tuple[list[str], list[str]]] = []
    try:
        deadline = time.monotonic() + WAIT
        while len(collected) < PROCESSES:  # read before joining: children wait for it
            try:
                collected.append(results.get(timeout=0.2))
            except queue.Empty:
                failed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                assert not failed, f"a drawing process failed (exit codes {failed})"
                assert time.monotonic() < deadline, "the drawing processes hang"
        for process in processes:
            process.join(WAIT)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()
    codes = [code for batch, _ in collected for code in batch]
    errors = [error for _, batch in collected for error in batch]
    print(f"{PROCESSES} processes, {DRAW_SECONDS} s: {len(codes)} codes, {len(errors)} errors")
    assert not errors, f"{len(errors)} failed draws beside {len(codes)} codes: {errors[0]}"
    assert all(batch for batch, _ in collected), "a process drew nothing"
    duplicates = [code for code, seen in Counter(codes).items() if seen > 1]
    assert not duplicates


def _checkpoint(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("CHECKPOINT"))
    finally:
        engine.dispose()


def _draw(url: str, draws: int, count: int) -> list[str]:
    service = RingService(SqlStore(url), {RING.name: RING})
    try:
        return [code for _ in range(draws) for code in service.get_codes(RING.name, count)]
    finally:
        service.close()


def _issued(url: str) -> int:
    service = RingService(SqlStore(url), {RING.name: RING})
    try:
        return sum(extra.issued for extra in service.status(RING.name).extras)
    finally:
        service.close()


@pytest.mark.slow  # a private PostgreSQL, crashed and started again
def test_committed_draws_survive_a_crash_of_a_server_with_synchronous_commit_off() -> None:
    try:
        # The WAL writer would write asynchronous commits within 0.6 s; at its slowest
        # (10 s) a crash just after the draws loses them for certain, not by timing.
        server = PrivatePostgres({"synchronous_commit": "off", "wal_writer_delay": "10s"})
        server.start()
    except Exception as error:  # noqa: BLE001 - no PostgreSQL binaries here
        require("a private PostgreSQL", error)
    try:
        service = RingService(SqlStore(server.url), {RING.name: RING})
        service.migrate()
        service.populate()
        service.close()
        _checkpoint(server.url)  # the schema and the ring are on disk before the draws

        before = _draw(server.url, 20, 10)  # 20 committed draws of 10 codes
        server.stop("immediate")  # a crash: what is only in memory is lost
        server.start()
        survived = _issued(server.url)
        after = _draw(server.url, 20, 10)

        again = set(before) & set(after)
        print(f"after a crash: {survived} of {len(before)} codes still issued, {len(again)} again")
        assert (survived, len(again)) == (len(before), 0), (
            f"after a crash: {survived} of {len(before)} codes drawn before it still issued; "
            f"of {len(after)} drawn next, {len(again)} had been handed out already"
        )
        assert _issued(server.url) == len(before) + len(after)
    finally:
        server.close()
