"""What `make venv` and CI install is pinned, and users keep open ranges.

A fresh clone once failed `make test` because a tool and a dependency released the day
before disagreed (mypy 2.4.1 reported as unused an ignore that redis 8.1 needed): what the
suite runs against must change only on purpose.
"""

from __future__ import annotations

import subprocess
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints.txt"
#: What builds and installs the rest: pinned as well.
INSTALLERS = ("pip", "setuptools", "wheel")


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (specifier,) = requirement.specifier  # one exact version a line
            assert specifier.operator == "==", line
            pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def _applies(marker: Marker | None, extras: frozenset[str]) -> bool:
    return marker is None or any(marker.evaluate({"extra": extra}) for extra in extras or {""})


def _needed(name: str, extras: frozenset[str]) -> set[str]:
    """Every distribution ``name[extras]`` needs here, itself included, as installed."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(name, extras)]
    while todo:
        current, wanted = todo.pop()
        key = (canonicalize_name(current), wanted)
        if key in seen:
            continue
        seen.add(key)
        for line in distribution(current).requires or []:
            requirement = Requirement(line)
            if _applies(requirement.marker, wanted):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return {name for name, _ in seen}


def test_every_release_the_suite_runs_against_is_pinned() -> None:
    pins = _pins()
    needed = _needed("coder_ring", frozenset({"dev"})) - {"coder-ring"}
    missing = sorted(needed - set(pins))
    assert not missing, f"not in constraints.txt (run make constraints): {missing}"
    assert set(INSTALLERS) <= set(pins)
    for name in ("mypy", "ruff", "redis", "sqlalchemy", "celery", "psycopg"):
        assert name in pins, name


def test_the_installed_releases_are_the_pinned_ones_in_the_pinned_venv() -> None:
    # .venv-latest runs this file too, on purpose unpinned: only .venv must match.
    venv = Path(distribution("pytest").locate_file("")).resolve()
    if not venv.is_relative_to(ROOT / ".venv"):
        return
    pins = _pins()
    differ = {}
    for name, version in pins.items():
        try:
            installed = distribution(name).version
        except PackageNotFoundError:
            continue  # wheel: only the build backend's isolated environment has it
        if installed != version:
            differ[name] = (installed, version)
    assert not differ, f"installed != pinned: {differ} (make clean venv)"


def test_users_keep_open_ranges() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for group in project["optional-dependencies"].values():
        requirements += group
    exact = [line for line in requirements if "==" in line or "===" in line]
    assert not exact, exact


def test_make_installs_with_the_pins_and_test_latest_without() -> None:
    def commands(target: str) -> list[str]:
        shown = subprocess.run(
            ["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        joined = shown.replace("\\\n", " ")
        return [line for line in joined.splitlines() if "pip install" in line]

    pinned = commands("venv")
    assert pinned and all("-c constraints.txt" in line for line in pinned), pinned
    assert any("--build-constraint constraints.txt" in line for line in pinned), pinned
    latest = commands("test-latest")
    assert latest and not any("constraints" in line for line in latest), latest
    assert any("--upgrade" in line and "-e '.[dev]'" in line for line in latest), latest
