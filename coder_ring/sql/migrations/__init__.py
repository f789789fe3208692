"""Alembic migrations for the coder_ring schema (applied by ``coder-ring migrate``)."""
