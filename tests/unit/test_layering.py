"""Nothing is wired together through module state (the floors themselves, which
imports which, are checked by ``test_floors.py``).

1. (In ``test_floors.py``.)
2. No module reaches into another module's private names (``from x import _name``,
   ``module._name``) in ``coder_ring/``, ``workers/`` or ``bench/``.
3. No module-level hooks: no ``global`` statement, no module-level ``None`` placeholder,
   no module-level container changed after import, no assignment to another module's
   attributes (the way ``coder_ring.cli.CELERY_GET = ...`` once plugged the workers in).
4. Importing the Celery app connects to nothing.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("coder_ring", "workers", "bench")
#: Calls that change a container in place.
MUTATING_METHODS = frozenset(
    {
        "append", "extend", "insert", "update", "add", "pop", "popitem", "clear",
        "setdefault", "remove", "discard", "sort", "reverse", "__setitem__", "__delitem__",
    }
)  # fmt: skip
#: Module-level containers allowed by name (their owner never changes them).
DUNDER_OK = frozenset({"__all__"})


@dataclass(frozen=True)
class Source:
    path: Path
    module: str
    tree: ast.Module

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"


def sources() -> Iterator[Source]:
    """Every Python module of the shipped packages and the bench."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations/versions" in path.as_posix():
                continue  # alembic revision scripts: alembic's own module conventions
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield Source(path, module.removesuffix(".__init__"), ast.parse(path.read_text()))


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def imported_names(tree: ast.Module) -> dict[str, tuple[str, bool]]:
    """Local name -> (what it names, whether that is a module), for every import."""
    names: dict[str, tuple[str, bool]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = (alias.name, True)
                else:
                    top = alias.name.split(".")[0]
                    names[top] = (top, True)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                names[alias.asname or alias.name] = (full, is_module(full))
    return names


def module_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return names


def functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield node


def local_names(function: ast.AST) -> set[str]:
    """Names a function binds itself (they shadow module-level ones)."""
    bound = {node.id for node in ast.walk(function) if isinstance(node, ast.Name)
             and isinstance(node.ctx, ast.Store)}  # fmt: skip
    if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        arguments = function.args
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every += [arg for arg in (arguments.vararg, arguments.kwarg) if arg is not None]
        bound |= {arg.arg for arg in every}
    return bound


def assignment_targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign | ast.Delete):
        return list(node.targets)
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return [node.target]
    return []


# --------------------------------------------------------------------------------------
# 2. No reaching into private names


def private_reaches(source: Source) -> list[str]:
    found = []
    imported = imported_names(source.tree)
    for node in ast.walk(source.tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if is_private(alias.name):
                    found.append(f"{source.where(node)}: from {node.module} import {alias.name}")
        elif (
            isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in imported
        ):
            found.append(f"{source.where(node)}: {node.value.id}.{node.attr}")
    return found


def test_no_module_reaches_into_another_modules_private_names() -> None:
    found = [reach for source in sources() for reach in private_reaches(source)]
    assert found == [], "private names used across modules:\n" + "\n".join(found)


def test_the_private_names_check_catches_what_it_must() -> None:
    # The check itself, on code that does each forbidden thing (and allowed ones).
    code = (
        "import coder_ring.cli as engine_cli\n"
        "from coder_ring.sql.store import _translate\n"
        "from coder_ring.celery.app import app\n"
        "engine_cli._status_rows\n"
        "app._rings\n"
        "class A:\n"
        "    def f(self, other):\n"
        "        return self._x, other._y, type(self)._z\n"
    )
    source = Source(ROOT / "bench" / "example.py", "bench.example", ast.parse(code))
    reaches = [reach.split(": ", 1)[1] for reach in private_reaches(source)]
    assert reaches == [
        "from coder_ring.sql.store import _translate",
        "engine_cli._status_rows",
        "app._rings",
    ]


# --------------------------------------------------------------------------------------
# 3. No module-level hooks


def hooks(source: Source) -> list[str]:
    found = []
    imported = imported_names(source.tree)
    modules = {name for name, (_, module) in imported.items() if module}
    # A None placeholder at module level is a hook waiting to be set from outside.
    for node in source.tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if isinstance(value, ast.Constant) and value.value is None:
            found.append(f"{source.where(node)}: module-level None placeholder")
    state = module_level_names(source.tree) - DUNDER_OK
    for node in ast.walk(source.tree):
        if isinstance(node, ast.Global):
            found.append(f"{source.where(node)}: global {', '.join(node.names)}")
        # Assigning another module's attribute (engine_cli.X = ..., setattr(module, ...)).
        for target in assignment_targets(node):
            root: ast.expr = target
            while isinstance(root, ast.Attribute):
                root = root.value
            if (
                isinstance(target, ast.Attribute)
                and isinstance(root, ast.Name)
                and root.id in modules
            ):
                found.append(f"{source.where(node)}: assigns {ast.unparse(target)}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"setattr", "delattr"}
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in modules
        ):
            found.append(f"{source.where(node)}: {ast.unparse(node)}")
    # Module-level containers are built at import and never changed by a function.
    for function in functions(source.tree):
        shared = state - local_names(function)
        for node in ast.walk(function):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in MUTATING_METHODS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in shared
            ):
                found.append(f"{source.where(node)}: changes module state {ast.unparse(node)}")
            for target in assignment_targets(node):
                if (
                    isinstance(target, ast.Subscript | ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id in shared
                ):
                    found.append(
                        f"{source.where(node)}: changes module state {ast.unparse(target)}"
                    )
    return found


def test_no_module_level_hooks_remain() -> None:
    found = [hook for source in sources() for hook in hooks(source)]
    assert found == [], "module-level hooks:\n" + "\n".join(found)
    import coder_ring.cli

    for old in ("CELERY_GET", "STATUS_EXTRAS", "StatusExtras"):
        assert not hasattr(coder_ring.cli, old), old


def test_the_hooks_check_catches_what_it_must() -> None:
    code = (
        "import coder_ring.cli as engine_cli\n"
        "from workers import app as app_module\n"
        "HOOK = None\n"
        "REGISTRY = {}\n"
        "TABLE = {'a': 1}\n"
        "TABLE['b'] = 2\n"  # built at import: fine
        "engine_cli.CELERY_GET = print\n"
        "def install(fn, cache):\n"
        "    global HOOK\n"
        "    HOOK = fn\n"
        "    REGISTRY[fn.__name__] = fn\n"
        "    REGISTRY.setdefault('x', fn)\n"
        "    setattr(app_module, 'app', fn)\n"
        "    cache['fine'] = fn\n"  # a parameter, not module state
        "    local = {}\n"
        "    local['fine'] = fn\n"
    )
    source = Source(ROOT / "bench" / "example.py", "bench.example", ast.parse(code))
    found = sorted(hook.split(": ", 1)[1] for hook in hooks(source))
    assert found == sorted(
        [
            "module-level None placeholder",
            "assigns engine_cli.CELERY_GET",
            "global HOOK",
            "setattr(app_module, 'app', fn)",
            "changes module state REGISTRY.setdefault('x', fn)",
            "changes module state REGISTRY[fn.__name__]",
        ]
    ), found


# --------------------------------------------------------------------------------------
# 4. Importing connects to nothing


def test_importing_the_celery_app_connects_to_nothing() -> None:
    # Every URL on a port nothing listens on: building the app must not notice.
    script = (
        "import os, sys\n"
        "os.environ['CODER_RING_BROKER_URL'] = 'redis://127.0.0.1:1/0'\n"
        "os.environ['CODER_RING_REDIS_URL'] = 'redis://127.0.0.1:1/0'\n"
        "os.environ['CODER_RING_DATABASE_URL'] = 'postgresql://nobody@127.0.0.1:1/none'\n"
        "os.environ['CODER_RING_CONFIG'] = '/nonexistent/rings.toml'\n"
        "import coder_ring.celery.cli, coder_ring.celery.ownership\n"
        "coder_ring.celery.cli.build()\n"
        # The worker's and the CLI's modules build no app: coder_ring.celery is lazy.
        "assert 'coder_ring.celery.from_env' not in sys.modules\n"
        "import workers.app\n"
        "from coder_ring.celery import get_code\n"
        "assert get_code.app is workers.app.app\n"
        "print(workers.app.app.conf.broker_url)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "redis://127.0.0.1:1/0"
    assert result.stderr == ""
