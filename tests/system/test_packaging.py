"""The wheel users install: the product's packages and data, no benchmark, no tests."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_wheel_ships_the_product_and_no_benchmark(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path)]
    # The build backend's pinned release, as `make venv` builds with, not today's newest.
    command += ["--build-constraint", str(ROOT / "constraints.txt"), str(ROOT)]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("coder_ring-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if "/" in name and ".dist-info" not in name}
    assert tops == {"coder_ring", "workers"}
    assert not [name for name in names if "bench" in name.split("/")[0]]
    for shipped in (
        "coder_ring/sample_rings.toml",
        "coder_ring/py.typed",
        "coder_ring/sql/migrations/env.py",
        "coder_ring/sql/migrations/versions/0002_sparse_extras.py",
        "workers/py.typed",
    ):
        assert shipped in names
