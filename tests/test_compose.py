"""docker-compose.yml cannot run here (no Docker engine): check it against the same
commands and variables the rest of the suite runs and documents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
CLI = [sys.executable, "-m", "workers.cli"]


def env_vars_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in [*(ROOT / "coder_ring").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]:
        names |= set(re.findall(r"\"(CODER_RING_[A-Z_]+)\"", path.read_text()))
    return names


def test_every_service_is_there_with_healthchecks_and_order() -> None:
    assert {"redis", "postgres", "migrate", "worker", "beat", "flower"} <= set(SERVICES)
    for server in ("redis", "postgres"):
        assert SERVICES[server]["healthcheck"]["test"], server
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["migrate"]["restart"] == "no"
    for service in ("worker", "beat"):
        depends = SERVICES[service]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"


def test_workers_have_a_standby_and_stop_gracefully() -> None:
    worker = SERVICES["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert worker["command"] == ["coder-ring", "worker", "--all"]
    assert worker["stop_signal"] == "SIGTERM"


def test_flower_on_5555_with_the_app_module() -> None:
    flower = SERVICES["flower"]
    assert "5555:5555" in flower["ports"]
    command = flower["command"]
    assert command[:4] == ["celery", "-A", "workers.app", "flower"]
    assert "--port=5555" in command


def test_every_url_comes_from_documented_variables() -> None:
    documented = set(re.findall(r"`(CODER_RING_[A-Z_]+)`", (ROOT / "README.md").read_text()))
    read = env_vars_read_by_code()
    assert read - documented == set(), "variables read by the code but not in the README"
    for name, service in SERVICES.items():
        env = service.get("environment", {})
        if name in {"migrate", "worker", "beat", "flower"}:
            assert {
                "CODER_RING_DATABASE_URL",
                "CODER_RING_BROKER_URL",
                "CODER_RING_RESULT_BACKEND",
                "CODER_RING_REDIS_URL",
                "CODER_RING_CONFIG",
            } <= set(env), name
            assert set(env) <= read, f"{name} sets variables nothing reads"
            assert "@postgres:5432/" in env["CODER_RING_DATABASE_URL"]
            assert env["CODER_RING_BROKER_URL"].startswith("redis://redis:6379/")


def test_compose_commands_exist_in_the_cli() -> None:
    commands = [SERVICES[name]["command"] for name in ("worker", "beat")]
    migrate = SERVICES["migrate"]["command"][-1]
    commands += [part.split() for part in migrate.split("&&")]
    for command in commands:
        assert command[0] == "coder-ring"
        result = subprocess.run(
            [*CLI, *command[1:2], "--help"], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, (command, result.stderr)
        for option in command[2:]:
            assert option in result.stdout, (command, option)


def test_image_installs_the_package_and_ships_the_rings_file() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install" in dockerfile
    assert "COPY config ./config" in dockerfile
    config = SERVICES["worker"]["environment"]["CODER_RING_CONFIG"]
    assert config == "/app/config/rings.toml"
    assert (ROOT / "config" / "rings.toml").exists()
