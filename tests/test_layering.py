"""The engine package stays free of Celery; importing anything builds no connection."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import coder_ring


def engine_modules() -> list[str]:
    return [
        module.name
        for module in pkgutil.walk_packages(coder_ring.__path__, "coder_ring.")
        if not module.name.startswith("coder_ring.sql.migrations.versions")
        and module.name != "coder_ring.sql.migrations.env"  # runs only inside alembic
    ]


def test_no_engine_module_imports_celery() -> None:
    modules = engine_modules()
    assert "coder_ring.cli" in modules and "coder_ring.pool" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "bad = sorted(top & {'celery', 'kombu', 'workers'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_importing_the_celery_app_connects_to_nothing() -> None:
    # A broker URL on a port nothing listens on: building the app must not notice.
    script = (
        "import os\n"
        "os.environ['CODER_RING_BROKER_URL'] = 'redis://127.0.0.1:1/0'\n"
        "os.environ['CODER_RING_DATABASE_URL'] = 'postgresql://nobody@127.0.0.1:1/none'\n"
        "import workers.app, workers.tasks\n"
        "print(workers.app.app.conf.broker_url)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == "redis://127.0.0.1:1/0"
