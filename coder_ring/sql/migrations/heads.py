"""Whether a database's schema is already at the head revision, without importing alembic.

Every worker start and every CLI command migrates; when there is nothing to do, this
check lets :meth:`coder_ring.sql.store.SqlStore.migrate` return without loading alembic
(about 8 MB of a worker's resident memory, and a tenth of a second).
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

#: Alembic's version table; the same name as ``version_table`` in ``env.py``.
VERSION_TABLE = "coder_ring_alembic_version"
_VERSIONS_DIR = Path(__file__).parent / "versions"


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """The head revisions of the shipped migrations: those no other migration revises.

    Read from each file's ``revision`` and ``down_revision`` assignments. Empty when
    the files cannot be read (the caller then runs alembic, which knows better).
    """
    revisions: set[str] = set()
    revised: set[str] = set()
    try:
        for path in sorted(_VERSIONS_DIR.glob("*.py")):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target, value = node.targets[0], node.value
                elif isinstance(node, ast.AnnAssign) and node.value is not None:
                    target, value = node.target, node.value
                else:
                    continue
                if not isinstance(target, ast.Name):
                    continue
                if target.id == "revision":
                    revisions.add(str(ast.literal_eval(value)))
                elif target.id == "down_revision":
                    parent = ast.literal_eval(value)
                    revised.update([parent] if isinstance(parent, str) else parent or ())
    except (OSError, SyntaxError, ValueError):
        return frozenset()
    return frozenset(revisions - revised)


def schema_at_head(engine: Engine) -> bool:
    """True when ``engine``'s database records exactly the shipped head revisions.

    False on any doubt (no version table yet, unreachable database, unknown revision):
    the caller then runs alembic, which migrates or reports the problem.
    """
    heads = head_revisions()
    if not heads:
        return False
    try:
        with engine.connect() as conn:
            stored = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
            return set(stored) == heads
    except SQLAlchemyError:
        return False
