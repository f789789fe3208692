"""workers/ is the deployment (systemd, Kubernetes, the process settings), and nothing
here can run it (no systemd, no cluster): check it against the command line the wheel
installs, the variables the code reads and the README, and the stop's timing."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path
from typing import Any

import click
import yaml

from coder_ring.celery.cli import build
from coder_ring.settings import WorkerSettings
from tests.unit.test_compose import SERVICES, readme_table_variables, variables_read_by_code

WORKERS = Path(__file__).resolve().parents[2] / "workers"
#: Seconds a graceful stop needs beyond the lease thread's last round (a TTL): the
#: request in flight and the pools given back (test_registry_cluster: under 1 s for 33
#: rings), with a margin for a slow database.
HANDOFF = 15.0


def parses(argv: list[str]) -> None:
    """``coder-ring ...`` as the real CLI parses it (every option and value checked)."""
    assert Path(argv[0]).name == "coder-ring", argv
    group = build()
    command = group.get_command(click.Context(group), argv[1])
    assert command is not None, f"`{shlex.join(argv)}`: no such command"
    with command.make_context(argv[1], argv[2:]) as ctx:
        assert ctx.command is command


def env_file() -> dict[str, str]:
    lines = (WORKERS / "worker.env").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name: value for name, value in pairs}  # noqa: C416 - pairs of two, said so


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> document, for every resource kustomization.yaml lists."""
    kustomization = yaml.safe_load((WORKERS / "kustomization.yaml").read_text())
    found = {}
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((WORKERS / resource).read_text()):
            found[document["kind"], document["metadata"]["name"]] = document
    return found


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((WORKERS / "systemd" / name).read_text())
    return parser


def test_the_process_settings_are_valid_documented_and_shared() -> None:
    env = env_file()
    settings = WorkerSettings.from_env(env)  # ConfigError for a bad value
    assert settings.metrics_port is not None
    assert set(env) - readme_table_variables() == set(), "not in the README's table"
    assert set(env) <= variables_read_by_code(), "set, but nothing reads them"
    # The compose file runs the same settings (its own host names, passwords, flower).
    compose = set(SERVICES["worker"]["environment"])
    assert set(env) - {"CODER_RING_LOCK_TTL", "CODER_RING_VISIBILITY_TIMEOUT"} <= compose
    kustomization = yaml.safe_load((WORKERS / "kustomization.yaml").read_text())
    [generated] = kustomization["configMapGenerator"]
    assert generated["envs"] == ["worker.env"]


def test_kubernetes_workers_stop_gracefully_and_one_at_a_time() -> None:
    found = manifests()
    worker = found["Deployment", "coder-ring-worker"]
    pod = worker["spec"]["template"]["spec"]
    [container] = pod["containers"]
    parses(container["command"])
    assert container["command"][1:3] == ["worker", "--all"]
    assert worker["spec"]["replicas"] >= 3
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The grace period counts from the preStop hook: the hook, then the handoff.
    hook = container["lifecycle"]["preStop"]["exec"]["command"]
    assert hook[0] == "sleep"
    ttl = WorkerSettings.from_env(env_file()).lock_ttl
    assert pod["terminationGracePeriodSeconds"] >= float(hook[1]) + ttl + HANDOFF
    assert {"configMapRef": {"name": "coder-ring"}} in container["envFrom"]
    metrics = WorkerSettings.from_env(env_file()).metrics_port
    assert {"name": "metrics", "containerPort": metrics} in container["ports"]
    budget = found["PodDisruptionBudget", "coder-ring-worker"]
    assert budget["spec"]["maxUnavailable"] == 1
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"] == labels
    assert worker["spec"]["selector"]["matchLabels"] == labels
    beat = found["Deployment", "coder-ring-beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    parses(beat["spec"]["template"]["spec"]["containers"][0]["command"])


def test_the_systemd_units_run_the_installed_commands_and_stop_gracefully() -> None:
    worker = unit("coder-ring-worker.service")["Service"]
    parses(shlex.split(worker["ExecStart"]))
    assert worker["KillSignal"] == "SIGTERM"
    ttl = WorkerSettings.from_env(env_file()).lock_ttl
    assert float(worker["TimeoutStopSec"]) >= ttl + HANDOFF
    beat = unit("coder-ring-beat.service")["Service"]
    parses(shlex.split(beat["ExecStart"]))
    for service in (worker, beat):
        assert service["EnvironmentFile"] == "/etc/coder_ring/worker.env"


def test_the_image_carries_the_deployment_module() -> None:
    dockerfile = (WORKERS.parent / "Dockerfile").read_text()
    assert "COPY workers ./workers" in dockerfile  # celery -A workers.app in the container
    assert SERVICES["flower"]["command"][:3] == ["celery", "-A", "workers.app"]
