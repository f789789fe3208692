"""What the many-rings probe (:mod:`tests.harness.rings_probe`) reads off its servers and
workers besides :mod:`bench.rings`'s: a process's CPU ticks, PostgreSQL transactions and
statements."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import create_engine, text

PY_SPY = str(Path(sys.executable).parent / "py-spy")


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class Pg:
    """Transaction and statement counts of the probe's database."""

    def __init__(self, url: str, statements: bool) -> None:
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.statements = statements
        if statements:
            with self.engine.connect() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))

    def xacts(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                        "WHERE datname = current_database()"
                    )
                ).scalar_one()
            )

    def reset(self) -> None:
        if self.statements:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_stat_statements_reset()"))

    def top(self, limit: int = 12) -> list[tuple[int, float, str]]:
        if not self.statements:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT calls, total_exec_time, query FROM pg_stat_statements "
                    "WHERE query NOT ILIKE '%pg_stat%' ORDER BY calls DESC LIMIT :n"
                ),
                {"n": limit},
            ).all()
        return [(int(c), round(float(t), 1), " ".join(q.split())[:140]) for c, t, q in rows]
