"""docker-compose.yml cannot run here (no Docker engine): check it against the commands
the CLI really has, the variables the code really reads and the README documents, and
the exposure rules (flower on 127.0.0.1 only, behind a login from the environment)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import yaml

from coder_ring.celery.cli import build
from coder_ring.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
#: The services that run the coder_ring image with its CODER_RING_* environment.
APP_SERVICES = ("migrate", "worker", "beat", "flower")
MIN_WORKERS = 3


def readme_table_variables() -> set[str]:
    """The CODER_RING_* variables of the README's configuration table (its first column)."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(CODER_RING_[A-Z_]+)` \|", section, re.MULTILINE))


def variables_read_by_code() -> set[str]:
    names: set[str] = set()
    for path in [*(ROOT / "coder_ring").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]:
        names |= set(re.findall(r"[\"'](CODER_RING_[A-Z_]+)[\"']", path.read_text()))
    return names


def compose_commands() -> list[list[str]]:
    """Every ``coder-ring ...`` command line compose runs (``sh -c`` scripts split on &&)."""
    commands = []
    for service in SERVICES.values():
        command = service.get("command")
        if not command:
            continue
        if command[:2] == ["sh", "-c"]:
            commands += [shlex.split(part) for part in command[2].split("&&")]
        else:
            commands.append(list(command))
    return [command for command in commands if command[0] == "coder-ring"]


def test_every_service_is_there_with_healthchecks_and_order() -> None:
    assert {"redis", "postgres", *APP_SERVICES} <= set(SERVICES)
    for server in ("redis", "postgres"):
        assert SERVICES[server]["healthcheck"]["test"], server
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert SERVICES["migrate"]["restart"] == "no"
    for service in ("worker", "beat"):
        depends = SERVICES[service]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"


def test_every_coder_ring_command_parses_with_the_real_cli() -> None:
    commands = compose_commands()
    assert {command[1] for command in commands} >= {"migrate", "populate", "worker", "beat"}
    group = build()
    for command in commands:
        sub = group.get_command(click.Context(group), command[1])
        assert sub is not None, f"compose runs `{shlex.join(command)}`: no such command"
        # Parsing checks every option and value the way the real invocation would.
        with sub.make_context(command[1], command[2:]) as ctx:
            assert ctx.command is sub


def test_workers_are_three_replicas_of_worker_all_stopped_gracefully() -> None:
    worker = SERVICES["worker"]
    assert worker["deploy"]["replicas"] >= MIN_WORKERS
    assert worker["command"][:3] == ["coder-ring", "worker", "--all"]
    # SIGTERM is the graceful stop: pools given back, locks released, rings handed over.
    assert worker["stop_signal"] == "SIGTERM"


def test_flower_is_local_only_and_asks_for_a_login_from_the_environment() -> None:
    flower = SERVICES["flower"]
    command = flower["command"]
    assert command[:4] == ["celery", "-A", "workers.app", "flower"]
    assert "--port=5555" in command
    # Published on the host's loopback only: flower shows every issued code.
    ports = [str(port) for port in flower["ports"]]
    assert ports, "flower publishes no port"
    for port in ports:
        assert port.startswith("127.0.0.1:"), f"flower's port {port!r} is not bound to 127.0.0.1"
    # The login comes from the environment, is required, and is not written in the file.
    auth = flower["environment"]["FLOWER_BASIC_AUTH"]
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?[^}]*\}", auth), auth


def test_every_variable_is_documented_and_read() -> None:
    documented = readme_table_variables()
    read = variables_read_by_code()
    assert "CODER_RING_DATABASE_URL" in documented  # the table was found
    assert read - documented == set(), "read by the code but not in the README's table"
    for name in APP_SERVICES:
        env = SERVICES[name]["environment"]
        used = {key for key in env if key.startswith("CODER_RING_")}
        assert used - documented == set(), f"{name} sets variables the README does not document"
        assert used <= read, f"{name} sets variables nothing reads"


def test_app_services_share_one_valid_configuration() -> None:
    for name in APP_SERVICES:
        env = {key: str(value) for key, value in SERVICES[name]["environment"].items()}
        assert {
            "CODER_RING_DATABASE_URL",
            "CODER_RING_BROKER_URL",
            "CODER_RING_RESULT_BACKEND",
            "CODER_RING_REDIS_URL",
            "CODER_RING_CONFIG",
            "CODER_RING_NAMESPACE",
            "CODER_RING_TASK_EVENTS",
        } <= set(env), name
        settings = WorkerSettings.from_env(env)  # ConfigError for a bad value
        assert "@postgres:5432/" in settings.engine.database_url
        assert settings.broker_url.startswith("redis://redis:6379/")
        assert settings.namespace == "default"
        assert settings.task_events, f"{name}: flower needs task events"


def test_image_installs_the_package_and_ships_the_rings_file() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install" in dockerfile
    assert "COPY config ./config" in dockerfile
    config = SERVICES["worker"]["environment"]["CODER_RING_CONFIG"]
    assert config == "/app/config/rings.toml"
    assert (ROOT / "config" / "rings.toml").exists()


def test_the_rings_file_is_mounted_from_the_checkout_for_hot_reload() -> None:
    """A rings file built into the image needed a rebuild for every edit."""
    app_services = [name for name, service in SERVICES.items() if service.get("build")]
    assert set(app_services) >= {*APP_SERVICES, "metrics"}
    for name in app_services:
        config = SERVICES[name]["environment"]["CODER_RING_CONFIG"]
        mounts = {
            volume.split(":")[1]: volume.split(":")[0] for volume in SERVICES[name]["volumes"]
        }
        # The directory: a file mount would keep the old file after a rename over it.
        assert mounts.get("/app/config") == "./config", (name, mounts)
        assert Path(config).parent == Path("/app/config"), (name, config)
        assert (ROOT / "config" / Path(config).name).is_file()


def test_the_metrics_command_listens_on_its_containers_interfaces_unpublished() -> None:
    """`coder-ring metrics` binds 127.0.0.1 by default: Prometheus, in another
    container, reaches it only when compose says --host 0.0.0.0."""
    metrics = SERVICES["metrics"]
    command = metrics["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert "ports" not in metrics


PORTS_OVERRIDE = ROOT / "docker-compose.ports.yml"
#: Server -> its port in the container.
PUBLISHED = {"redis": 6379, "postgres": 5432}


def test_the_opt_in_override_publishes_redis_and_postgres_on_loopback_only() -> None:
    override = yaml.safe_load(PORTS_OVERRIDE.read_text())
    assert set(override) == {"services"}
    assert set(override["services"]) == set(PUBLISHED)
    for name, inside in PUBLISHED.items():
        service = override["services"][name]
        assert set(service) == {"ports"}, f"{name}: the override only publishes ports"
        assert "ports" not in SERVICES[name], f"{name} is published without the override"
        [port] = service["ports"]
        # host address : host port (an interpolation with a default) : container port
        match = re.fullmatch(r"127\.0\.0\.1:\$\{([A-Z_]+):-(\d+)\}:(\d+)", port)
        assert match, f"{name}'s port {port!r} is not bound to 127.0.0.1"
        assert (int(match[2]), int(match[3])) == (inside, inside), port
    readme = (ROOT / "README.md").read_text()
    assert "docker compose -f docker-compose.yml -f docker-compose.ports.yml up" in readme
