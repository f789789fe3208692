"""Alembic environment: runs on the connection handed in by
:meth:`coder_ring.sql.store.SqlStore.migrate`."""

from __future__ import annotations

from alembic import context

from coder_ring.sql.migrations.heads import VERSION_TABLE
from coder_ring.sql.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
