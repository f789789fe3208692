"""The wheel users install: one namespace, ``coder_ring``, with its data; no benchmark,
no tests, no ``workers`` package (that folder is the repository's deployment). A project
with its own ``workers`` package imports the README's callers' names beside it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: setuptools leaves a build/ folder in the tree it builds, whose
    # stale modules (a file since moved) would end up in the next wheel.
    source = tmp_path_factory.mktemp("source")
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".*")
    for name in ("coder_ring", "workers", "bench"):
        shutil.copytree(ROOT / name, source / name, ignore=junk)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out)]
    # The build backend's pinned release, as `make venv` builds with, not today's newest.
    command += ["--build-constraint", str(ROOT / "constraints.txt"), str(source)]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("coder_ring-*.whl")
    return built


def test_the_wheel_ships_coder_ring_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if "/" in name and ".dist-info" not in name}
    assert tops == {"coder_ring"}
    for shipped in (
        "coder_ring/sample_rings.toml",
        "coder_ring/py.typed",
        "coder_ring/sql/migrations/env.py",
        "coder_ring/sql/migrations/versions/0002_sparse_extras.py",
        "coder_ring/celery/from_env.py",
        "coder_ring/registry/lease.py",
        "coder_ring/metrics/catalog.py",
    ):
        assert shipped in names
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "coder-ring = coder_ring.celery.cli:main" in scripts


def readme_imports() -> list[str]:
    """Every ``from coder_ring... import ...`` line of the README's Python examples."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
    lines = [line for block in blocks for line in block.splitlines()]
    return [line for line in lines if re.match(r"from coder_ring(\.\w+)* import ", line)]


def test_the_readme_callers_work_beside_a_projects_own_workers_package(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    project = tmp_path / "project"
    (project / "workers").mkdir(parents=True)
    (project / "workers" / "__init__.py").write_text("")
    (project / "workers" / "tasks.py").write_text("def get_code() -> str:\n    return 'ours'\n")
    imports = readme_imports()
    assert "from coder_ring.celery import get_code, get_codes, status" in imports
    assert "from coder_ring import RingService, Settings" in imports
    script = "\n".join(
        [
            *imports,
            "import coder_ring, workers.tasks",
            "assert workers.tasks.get_code() == 'ours', 'the project lost its workers'",
            f"assert coder_ring.__file__.startswith({str(site)!r}), coder_ring.__file__",
            "print(get_code.name, get_code.app.conf.broker_url)",
        ]
    )
    # The wheel's files come first on the path (the repository's editable install only
    # answers for what nothing else on the path has); the project is the working directory.
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "CODER_RING_BROKER_URL": "redis://127.0.0.1:1/0",  # importing connects to nothing
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["coder_ring.get_code", "redis://127.0.0.1:1/0"]
