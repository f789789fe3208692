"""The session's migrated templates (tests.harness.templates) make exactly what a
migration makes: the same tables, columns, defaults, constraints, indexes, sequences
and version row, so the engine tests that start from them test the shipped schema."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text

from coder_ring import SqlStore
from coder_ring.sql.engine import parse_database_url
from coder_ring.sql.migrations.heads import VERSION_TABLE, schema_at_head
from tests.harness.shared import pg_schema_url
from tests.harness.templates import MigratedTemplates

_POSTGRES_CATALOG = {
    "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default "
    "FROM information_schema.columns WHERE table_schema = current_schema()",
    "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
    "FROM pg_constraint WHERE connamespace = current_schema()::regnamespace",
    "indexes": "SELECT tablename, indexname, replace(indexdef, current_schema() || '.', '') "
    "FROM pg_indexes WHERE schemaname = current_schema()",
    "sequences": "SELECT sequence_name, data_type, start_value, increment "
    "FROM information_schema.sequences WHERE sequence_schema = current_schema()",
}


def catalogue(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Everything the schema of ``url`` is made of, sorted, and its version rows."""
    engine: Engine = create_engine(parse_database_url(url))
    try:
        with engine.connect() as conn:
            queries = (
                _POSTGRES_CATALOG
                if engine.dialect.name == "postgresql"
                else {"objects": "SELECT type, name, tbl_name, sql FROM sqlite_master"}
            )
            found = {name: rows(conn, query) for name, query in queries.items()}
            found["versions"] = rows(conn, f"SELECT version_num FROM {VERSION_TABLE}")
            return found
    finally:
        engine.dispose()


def rows(conn: Connection, query: str) -> list[tuple[object, ...]]:
    return sorted((tuple(row) for row in conn.execute(text(query))), key=repr)


def migrated_by_alembic(url: str) -> str:
    store = SqlStore(url)
    try:
        store.migrate()
    finally:
        store.dispose()
    return url


def test_a_sqlite_template_copy_is_the_migrated_schema(
    migrated: MigratedTemplates, tmp_path: Path
) -> None:
    expected = catalogue(migrated_by_alembic(f"sqlite:///{tmp_path / 'alembic.db'}"))
    copied = migrated.sqlite(tmp_path / "copy.db")
    assert catalogue(copied) == expected
    store = SqlStore(copied)
    assert schema_at_head(store.engine)
    store.dispose()


def test_a_postgres_template_replay_is_the_migrated_schema(
    migrated: MigratedTemplates, pg_admin: Engine, pg_url: str, pg_schema: str
) -> None:
    expected = catalogue(migrated_by_alembic(pg_url))
    with pg_admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {pg_schema}_replay"))
    try:
        migrated.postgres(pg_admin, f"{pg_schema}_replay")
        replayed = pg_schema_url(f"{pg_schema}_replay")
        assert catalogue(replayed) == expected
        store = SqlStore(replayed)
        assert schema_at_head(store.engine)
        store.dispose()
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {pg_schema}_replay CASCADE"))
