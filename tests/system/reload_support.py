"""Helpers of ``test_reload.py``: rings files written at once, a request held in flight
by a row lock, callers that keep asking while the file changes, and the ledger of codes
the workers handed out against what the database counts as issued."""

from __future__ import annotations

import contextlib
import os
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from coder_ring import NoWorker, RingConfig
from tests.harness import WorkerProcess, members, service_for, wait_until, write_rings

BASE_LENGTH = 2
#: How long a caller waits for a code (a request queued for a ring removed meanwhile is
#: served only if the ring comes back).
CALL_TIMEOUT = 5.0
#: A worker's log line for each time it read a changed rings file.
RELOADS = re.compile(r"rings file (?:not )?reloaded")
#: Seconds a worker may take to read a changed file (a lease round is TTL/3).
READ_TIMEOUT = 5.0
#: Codes asked by the request an edit holds in flight: more than any pool of the test.
IN_FLIGHT = 20
#: Worker log lines that say codes may have been lost for a reason other than a reload
#: (the machine is shared: a lease thread starved past its TTL loses its ring).
LOSSES = (
    "lock lost; pool dropped",
    "lock unreachable",
    "cannot give codes back",
    "drawn ahead dropped",
)


def extra_of(ring: str) -> str:
    """Each ring's callers use an extra of their own, so the workers' logs (which do not
    name the ring) tell the rings' codes apart."""
    return f"{ring}-"


def write_at_once(path: Path, content: str) -> None:
    """Replace the file's content in one step, as editors and config tools do: a worker
    never reads half a file (a test of edits, not of torn writes)."""
    partial = path.with_suffix(".partial")
    partial.write_text(content, encoding="utf-8")
    os.replace(partial, path)


def rings_text(path: Path, rings: Mapping[str, int]) -> str:
    """The rings file of ``rings`` (name -> pool_size), all of base length 2."""
    scratch = path.with_suffix(".render")
    write_rings(
        scratch,
        **{name: {"base_length": BASE_LENGTH, "pool_size": size} for name, size in rings.items()},
    )
    content = scratch.read_text(encoding="utf-8")
    scratch.unlink()
    return content


@contextlib.contextmanager
def row_locked(database_url: str, ring: str) -> Iterator[None]:
    """Hold ``ring``'s row locked (PostgreSQL): a worker's draw waits for it, so a request
    stays in flight for as long as the block runs."""
    # READ COMMITTED, as the workers run: under the test database's hostile default
    # (SERIALIZABLE) the lock fails if a worker wrote the row meanwhile, as a pool
    # filled in the background after a claim does.
    engine = create_engine(database_url, isolation_level="READ COMMITTED")
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(
                text("SELECT id FROM coder_ring_rings WHERE name = :name FOR UPDATE"),
                {"name": ring},
            )
            yield
    finally:
        engine.dispose()


def code_when_served(app: Any, ring: str, bound: float, **kwargs: Any) -> tuple[str, float]:
    """A code of ``ring`` as soon as a worker serves it (NoWorker until one does), and the
    seconds it took; NoWorker after ``bound``."""
    started = time.monotonic()
    while True:
        try:
            code: str = app.ring_tasks.get_code.delay(ring, **kwargs).get(timeout=CALL_TIMEOUT)
            return code, time.monotonic() - started
        except NoWorker:
            if time.monotonic() - started > bound:
                raise
            time.sleep(0.05)


def _bad_file(chooser: random.Random, path: Path, good: Mapping[str, int]) -> str:
    """A rings file every reader refuses: invalid TOML, a typo'd key, or a bad value."""
    text = rings_text(path, good)
    kind = chooser.choice(["toml", "typo", "value"])
    if kind == "toml":
        return text + "\n[rings.r9\npool_size = 3\n"
    if kind == "typo":
        return text.replace("pool_size", "pool_sise", 1)
    return text.replace("pool_size = ", "pool_size = -", 1)


@dataclass
class Callers:
    """Threads asking random rings of ``names`` for codes until stopped; every code is
    recorded by ring, every error by kind."""

    app: Any
    names: list[str]
    seed: int
    codes: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _mutex: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self, count: int) -> None:
        for index in range(count):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(CALL_TIMEOUT + 5)

    def _run(self, index: int) -> None:
        chooser = random.Random(self.seed + index)
        while not self._stop.is_set():
            ring = chooser.choice(self.names)
            result = None
            try:
                result = self.app.ring_tasks.get_code.delay(ring, extra=extra_of(ring))
                code = result.get(timeout=CALL_TIMEOUT)
            except Exception as error:  # noqa: BLE001 - counted; the test judges the kinds
                self.record(ring, None, error)
                if result is not None:
                    with contextlib.suppress(Exception):
                        result.backend.remove_pending_result(result)
                time.sleep(0.05)  # UnknownRing, NoWorker, ConfigError come back at once
                continue
            self.record(ring, [code])

    def record(
        self, ring: str, codes: list[str] | None, error: BaseException | None = None
    ) -> None:
        """Codes ``ring`` gave (or the error a request for it got)."""
        with self._mutex:
            if error is not None:
                self.errors[type(error).__name__] += 1
            self.codes[ring].extend(codes or [])


@dataclass
class Editor:
    """Random edits of the rings file at ``path`` (ring -> pool_size), always from the last
    good content ``good``: add a ring, remove one, change a pool size, write a file every
    reader refuses, or remove a ring and add it back, quickly or while a request of it is
    held in flight."""

    path: Path
    chooser: random.Random
    good: dict[str, int]
    names: list[str]
    pool_sizes: tuple[int, ...]
    database_url: str
    callers: Callers
    workers: list[WorkerProcess]

    #: Reloads each worker had logged before the last write (None: no write yet).
    _reads: list[int] | None = None

    def write(self, rings: Mapping[str, int]) -> None:
        self._reads = self._reloads()
        write_at_once(self.path, rings_text(self.path, rings))

    def write_bad(self) -> None:
        # Not before every worker read the good file: overwritten sooner, a worker never
        # sees it, and the good file the test counts on would not be the workers' one.
        self.settle()
        self._reads = self._reloads()
        write_at_once(self.path, _bad_file(self.chooser, self.path, self.good))

    def settle(self) -> None:
        """Wait until every worker read the file as written last (a lease round did)."""
        before = self._reads
        if before is None:
            return  # the file they started with

        def read() -> bool:
            after = self._reloads()
            if not all(now > then for now, then in zip(after, before, strict=True)):
                return False
            # A read that began just before the write logs after it too: the rings each
            # worker publishes (after its reload, in the same round) tell which it read.
            published = {member.pid: member.rings for member in members(self.workers[0].env)}
            return all(published.get(w.pid) == self._expected(w) for w in self.workers)

        wait_until(read, READ_TIMEOUT, what="every worker to read the rings file")

    def _reloads(self) -> list[int]:
        return [len(RELOADS.findall(worker.log_text())) for worker in self.workers]

    def _expected(self, worker: WorkerProcess) -> tuple[str, ...]:
        return tuple(sorted(n for n in self.good if not worker.rings or n in worker.rings))

    def edit(self) -> str:
        """One random edit; what it was."""
        absent = [name for name in self.names if name not in self.good]
        kinds = ["pool_size", "bad", "flap", "in_flight"]
        kinds += ["add"] * bool(absent) + ["remove"] * (len(self.good) > 1)
        kind = self.chooser.choice(kinds)
        after = dict(self.good)
        ring = self.chooser.choice(sorted(self.good))
        if kind == "add":
            after[self.chooser.choice(absent)] = self.chooser.choice(self.pool_sizes)
        elif kind == "remove":
            del after[ring]
        elif kind == "pool_size":
            after[ring] = self.chooser.choice(self.pool_sizes)
        if kind == "bad":
            self.write_bad()
        elif kind in {"flap", "in_flight"}:
            if self.chooser.random() < 0.5:  # back with another pool size
                after[ring] = self.chooser.choice(self.pool_sizes)
            self._remove_and_add_back(ring, after, kind == "in_flight")
            kind = f"{kind} {ring}"
        else:
            self.write(after)
        self.good = after
        return kind

    def _remove_and_add_back(self, ring: str, after: dict[str, int], in_flight: bool) -> None:
        without = {name: size for name, size in self.good.items() if name != ring}
        if not in_flight:
            self.write(without)
            time.sleep(self.chooser.uniform(0.05, 0.7))  # within a lease round, or not
            self.write(after)
            return
        app = self.callers.app
        with row_locked(self.database_url, ring):
            try:
                # More codes than any pool holds: the request draws, and waits for the lock.
                result = app.ring_tasks.get_codes.delay(ring, IN_FLIGHT, extra=extra_of(ring))
            except Exception as error:  # noqa: BLE001 - NoWorker while the ring moves
                self.callers.record(ring, None, error)
                result = None
            if result is not None:
                received = f"get_codes[{result.id}] received"
                with contextlib.suppress(TimeoutError):  # not taken yet: it waits in the queue
                    wait_until(lambda: any(received in w.log_text() for w in self.workers), 3.0)
            self.write(without)
            # A lease round (every TTL/3) hands the ring off, and the next one sees it back.
            time.sleep(self.chooser.uniform(0.7, 1.0))
            self.write(after)
            time.sleep(self.chooser.uniform(0.7, 1.0))
        if result is not None:
            try:
                self.callers.record(ring, result.get(timeout=CALL_TIMEOUT))
            except Exception as error:  # noqa: BLE001 - judged with the callers' errors
                self.callers.record(ring, None, error)


def served_by_ring(workers: list[WorkerProcess], names: list[str]) -> dict[str, list[str]]:
    """Every code the workers' logs say they handed out, by ring (told by its extra)."""
    by_ring: dict[str, list[str]] = {name: [] for name in names}
    for code in (code for worker in workers for code in worker.codes_served()):
        ring = next((name for name in names if code.startswith(extra_of(name))), None)
        assert ring is not None, f"a code of no ring's extra: {code!r}"
        by_ring[ring].append(code)
    return by_ring


def issued_by_ring(env: Mapping[str, str], names: list[str]) -> dict[str, dict[str, int]]:
    """What the database counts as issued, by ring and extra (rings no longer configured
    included)."""
    configs = {name: RingConfig(name, base_length=BASE_LENGTH) for name in names}
    service = service_for(env, configs)
    try:
        return {
            name: {extra.extra: extra.issued for extra in service.status(name).extras}
            for name in names
        }
    finally:
        service.close()


def losses_logged(workers: list[WorkerProcess]) -> list[str]:
    """Worker log lines that explain codes lost outside a reload."""
    return [
        line
        for worker in workers
        for line in worker.log_text(whole=True).splitlines()
        if any(marker in line for marker in LOSSES)
    ]
