"""The migrate fast path: a schema already at head is recognised without alembic."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from coder_ring.sql.migrations.heads import head_revisions, schema_at_head
from coder_ring.sql.store import SqlStore

MIGRATIONS = Path(__file__).resolve().parents[2] / "coder_ring" / "sql" / "migrations"


def test_head_revisions_match_alembic() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revisions() == frozenset(ScriptDirectory.from_config(config).get_heads())


def test_schema_at_head_only_after_migrate(database_url: str) -> None:
    store = SqlStore(database_url)
    try:
        assert not schema_at_head(store.engine)
        store.migrate()
        assert schema_at_head(store.engine)
        store.migrate()  # idempotent through the fast path
        assert schema_at_head(store.engine)
    finally:
        store.dispose()


def test_migrate_at_head_does_not_import_alembic(sqlite_url: str) -> None:
    store = SqlStore(sqlite_url)
    store.migrate()
    store.dispose()
    script = textwrap.dedent(
        f"""
        import sys
        from coder_ring.sql.store import SqlStore
        SqlStore({sqlite_url!r}).migrate()
        print("alembic" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
