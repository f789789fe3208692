"""The floors of ``coder_ring``, each importing only the ones below it (README, Layout):

1. ``coder_ring.celery``: the serving layer on Celery;
2. ``coder_ring.metrics`` over ``coder_ring.registry``: Celery-free parts of the service;
3. the engine: every other module of ``coder_ring`` (``sql/`` included).

Checked twice: on the source (every import, in functions too, but not the ones only a
type checker reads), and by importing every module below floor 1 in a fresh interpreter,
which must load no Celery. ``workers/`` is the deployment: nothing in ``coder_ring``
imports it, and it holds no Python but the module ``celery -A workers.app`` loads.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import coder_ring

ROOT = Path(__file__).resolve().parents[2]
#: Modules of floor 1 that import no Celery themselves (their docstrings say so): the
#: worker's runtime, its seats, their locks, their rings-file reload and its database health.
CELERY_FREE_IN_CELERY = ("coder_ring.celery.runtime", "coder_ring.celery.seat",
                         "coder_ring.celery.ring_locks", "coder_ring.celery.reload",
                         "coder_ring.celery.health")  # fmt: skip
#: Top-level packages nothing below floor 1 may load.
CELERY = frozenset({"celery", "kombu"})


def floor(module: str) -> tuple[int, str]:
    """(floor, part) of a ``coder_ring`` module: lower floors are imported by higher ones;
    on floor 2, metrics may import the registry, not the reverse."""
    if module == "coder_ring.celery" or module.startswith("coder_ring.celery."):
        return 1, "celery"
    if module == "coder_ring.metrics" or module.startswith("coder_ring.metrics."):
        return 2, "metrics"
    if module == "coder_ring.registry" or module.startswith("coder_ring.registry."):
        return 2, "registry"
    return 3, "engine"


def may_import(importer: str, imported: str) -> bool:
    """Whether module ``importer`` may import ``imported`` (both ``coder_ring`` modules)."""
    (high, part), (low, other) = floor(importer), floor(imported)
    if high == low:
        return part == other or (part, other) == ("metrics", "registry")
    return high < low


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every import that runs (``if TYPE_CHECKING:`` blocks left out)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and is_type_checking(node):
            yield from (item for child in node.orelse for item in imports(child))
            continue
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        yield from imports(node)


def wrong_imports(module: str, code: str) -> list[str]:
    found = []
    for line, name in imports(ast.parse(code)):
        top = name.split(".")[0]
        if top in {"workers", "bench", "tests"}:
            found.append(f"{module}:{line} imports {name}")
        elif top == "coder_ring" and not may_import(module, name):
            # ``from coder_ring.x import y`` is judged as coder_ring.x.y: same floor as x.
            found.append(f"{module}:{line} imports {name}")
    return found


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted((ROOT / "coder_ring").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        yield module.removesuffix(".__init__"), path


def test_each_floor_imports_only_the_floors_below() -> None:
    found = [bad for module, path in modules() for bad in wrong_imports(module, path.read_text())]
    assert found == [], "imports against the floors:\n" + "\n".join(found)


def test_the_floor_check_catches_what_it_must() -> None:
    code = (
        "from typing import TYPE_CHECKING\n"
        "import celery\n"  # an outside package: not a floor's business here
        "from coder_ring.ring_server import RingServer\n"  # floor 3: fine from anywhere
        "from coder_ring.registry.lease import Lease\n"
        "if TYPE_CHECKING:\n"
        "    from coder_ring.celery.app import CoderRingApp\n"  # a type checker's only
        "def late():\n"
        "    from coder_ring.celery.names import ring_queue\n"
        "    import workers.app\n"
    )
    found = [bad.split(" ", 1)[1] for bad in wrong_imports("coder_ring.metrics.x", code)]
    assert found == ["imports coder_ring.celery.names.ring_queue", "imports workers.app"]
    assert wrong_imports("coder_ring.registry.x", "import coder_ring.metrics.catalog\n")
    assert wrong_imports("coder_ring.ring_server", "from coder_ring.registry import keys\n")
    assert not wrong_imports("coder_ring.celery.x", "from coder_ring.metrics import worker\n")


def below_floor_one() -> list[str]:
    return [
        module.name
        for module in pkgutil.walk_packages(coder_ring.__path__, "coder_ring.")
        if floor(module.name)[0] > 1
        and not module.name.startswith("coder_ring.sql.migrations.versions")
        and module.name != "coder_ring.sql.migrations.env"  # runs only inside alembic
    ]


def loaded_after_importing(names: list[str]) -> set[str]:
    """Top-level packages a fresh interpreter holds after importing ``names``."""
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(result.stdout.split())


def test_the_engine_registry_and_metrics_load_no_celery() -> None:
    names = below_floor_one()
    for expected in ("coder_ring.ring_server", "coder_ring.sql.store", "coder_ring.cli",
                     "coder_ring.registry.coordinator", "coder_ring.metrics.worker"):  # fmt: skip
        assert expected in names
    loaded = loaded_after_importing(names)
    assert "redis" in loaded and "prometheus_client" in loaded  # the check sees imports
    assert loaded & (CELERY | {"workers"}) == set()


def test_the_workers_runtime_seats_and_health_load_no_celery() -> None:
    # They sit on floor 1 (only a Celery worker runs them) but say they import no
    # Celery: the consumer bootstep plugs them in.
    assert loaded_after_importing(list(CELERY_FREE_IN_CELERY)) & CELERY == set()


def test_workers_is_the_deployment_and_holds_one_module() -> None:
    python = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "workers").rglob("*.py"))
    assert python == ["workers/__init__.py", "workers/app.py"]
    app = (ROOT / "workers" / "app.py").read_text()
    assert "from coder_ring.celery.from_env import app" in app
