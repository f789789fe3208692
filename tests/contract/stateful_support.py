"""The stateful test's bookkeeping (tests/contract/test_stateful.py): what each service
committed, the stored rows as the database holds them, and a fresh database per example."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from coder_ring import MemoryStore, RingConfig, RingService, SqlStore
from coder_ring.operations import GiveBack
from coder_ring.store import Drawn, Store
from tests.harness.shared import pg_schema_url
from tests.harness.templates import MigratedTemplates

NAME = "ring"


@dataclass
class Cycle:
    """What the engine did in one extra's current cycle, as recorded by the services."""

    cycle: int
    drawn: int = 0
    given_back: int = 0


class Ledger:
    """Every draw and give-back any service made, per extra (cleared on reset/rebuild)."""

    def __init__(self) -> None:
        self.cycles: dict[str, Cycle] = {}

    def drew(self, drawn: Drawn) -> None:
        current = self.cycles.get(drawn.extra.extra)
        if current is None or current.cycle != drawn.extra.cycle:
            current = self.cycles[drawn.extra.extra] = Cycle(drawn.extra.cycle)
        current.drawn += sum(cycle == current.cycle for cycle in drawn.cycles)


class RecordingService(RingService):
    """A real RingService that tells the ledger what it committed."""

    ledger: Ledger

    def draw_checked(self, ring: RingConfig, count: int, **options: Any) -> Drawn:
        drawn = super().draw_checked(ring, count, **options)
        self.ledger.drew(drawn)
        return drawn

    def give_back_all(
        self, ring: RingConfig, returns: Sequence[GiveBack], *, epoch: int
    ) -> list[bool]:
        returned = super().give_back_all(ring, returns, epoch=epoch)
        for back, done in zip(returns, returned, strict=True):
            if done:
                self.ledger.cycles[back.extra].given_back += len(back.values)
        return returned


def stored_rows(store: Store) -> dict[str, dict[int, int]]:
    """extra -> {position: value} as stored, read straight from the store."""
    if isinstance(store, MemoryStore):
        ring = store._rings.get(NAME)  # the memory store has no query language
        return {} if ring is None else {extra: dict(rows) for extra, rows in ring.positions.items()}
    assert isinstance(store, SqlStore)
    with store.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.extra, p.position, p.value FROM coder_ring_cycle_positions p "
                "JOIN coder_ring_extras e ON e.id = p.extra_id"
            )
        ).all()
    table: dict[str, dict[int, int]] = {}
    for extra, position, value in rows:
        table.setdefault(extra, {})[position] = value
    return table


def fresh_databases(
    backend: str, tmp: Path, pg_admin: Engine | None, migrated: MigratedTemplates
) -> Callable[[], tuple[Callable[[], Store], Callable[[], None]]]:
    """For each example: a way to open stores on a new, migrated database, and a way to
    drop it."""

    def open_store() -> tuple[Callable[[], Store], Callable[[], None]]:
        if backend == "memory":
            shared = MemoryStore()
            return (lambda: shared), (lambda: None)
        if backend == "sqlite":
            url = migrated.sqlite(tmp / f"{uuid.uuid4().hex}.db")
            return (lambda: SqlStore(url)), (lambda: None)
        assert pg_admin is not None
        schema = f"cr_{uuid.uuid4().hex[:12]}"
        with pg_admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        migrated.postgres(pg_admin, schema)

        def drop() -> None:
            with pg_admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))

        return (lambda: SqlStore(pg_schema_url(schema))), drop

    return open_store
