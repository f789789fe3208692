"""Fresh databases already at the head revision, without running alembic for each test.

Migrating an empty database costs about 0.1 s (alembic loads and compiles its scripts
every time, then sends a few statements): in ``make test-fast``, a hundred engine tests
and every example of the state machine paid it. Those tests need a migrated database,
not a migration, so they start from one made once per session:

* SQLite: the migrated file, copied (its engine is disposed first, so the copy holds
  everything: closing the last connection checkpoints the WAL into the file);
* PostgreSQL: the statements the migration sent to an empty schema, recorded once and
  replayed into each new schema in one transaction. They name no schema (the search
  path decides), so the replay builds the same tables, constraints and version row.

A test that then calls ``migrate()`` takes its at-head fast path, as a worker restarting
on a migrated database does. Tests of migrating itself (``test_upgrade``,
``test_schema_heads``, anything on ``database_url``, ``pg_url`` or ``sqlite_url``) still
get empty databases.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text

from coder_ring import SqlStore
from tests.harness.shared import PG_ADMIN_URL, pg_schema_url

#: A statement as the driver received it: (SQL, parameters).
Statement = tuple[str, Any]


class MigratedTemplates:
    """Makes migrated databases by copy (SQLite) or replay (PostgreSQL); each template
    is made on first use, so a session that needs no PostgreSQL never connects to it."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._sqlite: Path | None = None
        self._statements: list[Statement] | None = None
        self._replayer: Engine | None = None

    def sqlite(self, path: Path) -> str:
        """A migrated SQLite database at ``path``; its URL."""
        if self._sqlite is None:
            template = self._workdir / "template.db"
            store = SqlStore(f"sqlite:///{template}")
            try:
                store.migrate()
            finally:
                store.dispose()
            self._sqlite = template
        shutil.copyfile(self._sqlite, path)
        return f"sqlite:///{path}"

    def postgres(self, admin: Engine, schema: str) -> None:
        """Migrate the empty schema ``schema`` (already created) by replaying the
        migration's statements into it."""
        if self._statements is None:
            self._statements = self._record(admin)
        if self._replayer is None:
            self._replayer = create_engine(PG_ADMIN_URL)
        with self._replayer.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL search_path TO {schema}")
            for statement, parameters in self._statements:
                conn.exec_driver_sql(statement, parameters)

    def _record(self, admin: Engine) -> list[Statement]:
        """Migrate a scratch schema, keeping every statement that succeeded."""
        schema = f"cr_template_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        recorded: list[Statement] = []

        def record(*args: Any) -> None:
            # (conn, cursor, statement, parameters, context, executemany); only statements
            # that succeeded come here (the at-head probe on the empty schema fails).
            recorded.append((args[2], args[3]))

        store = SqlStore(pg_schema_url(schema))
        event.listen(store.engine, "after_cursor_execute", record)
        try:
            store.migrate()
        finally:
            store.dispose()
            with admin.connect() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        return recorded

    def close(self) -> None:
        """Close the replay's connections."""
        if self._replayer is not None:
            self._replayer.dispose()
