"""How much room a database takes: PostgreSQL relations of the current schema, or the
pages a SQLite file uses."""

from __future__ import annotations

from sqlalchemy import Engine, text

_POSTGRES = text(
    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class AS c "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'm')"
)


def database_bytes(engine: Engine) -> int:
    """Bytes of every table of the current schema (indexes and TOAST included) on
    PostgreSQL; bytes of the pages in use (free pages left out) on SQLite."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            return int(conn.execute(_POSTGRES).scalar_one())
        pages = int(conn.exec_driver_sql("PRAGMA page_count").scalar_one())
        free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar_one())
        size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        return (pages - free) * size
