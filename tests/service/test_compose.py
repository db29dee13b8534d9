"""docker-compose.yml cannot run here (no Docker): check that it is complete and consistent instead."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"postgres", "mlflow", "ray-head", "ray-worker", "api"}
SRM_VARIABLES = {"SRM_BENCH_DATABASE_URL", "MLFLOW_TRACKING_URI", "RAY_ADDRESS", "SRM_BENCH_DATA_DIR",
                 "SRM_BENCH_API_TOKEN", "SRM_BENCH_HOME"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _ports(service: dict) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}


def test_every_service_is_there_with_an_image(compose):
    assert set(compose["services"]) == SERVICES
    for name, service in compose["services"].items():
        assert service.get("image"), f"{name} has no image"
    assert compose["services"]["postgres"]["image"].startswith("postgres:")


def test_services_built_from_the_dockerfile_have_what_they_run(compose):
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("srm_models", "workers", "service", "migrations", "alembic.ini"):
        assert re.search(rf"^COPY .*{package}", dockerfile, re.M), f"Dockerfile does not copy {package}"
    built = [n for n, s in compose["services"].items() if "build" in s]
    assert set(built) == {"mlflow", "ray-head", "ray-worker", "api"}
    for name in built:
        assert compose["services"][name]["build"]["context"] == "."


def test_ports(compose):
    services = compose["services"]
    assert 5432 in _ports(services["postgres"])
    assert 5000 in _ports(services["mlflow"])
    assert {6379, 8265} <= _ports(services["ray-head"])
    assert 8000 in _ports(services["api"])
    assert "--port 8000" in services["api"]["command"] and "--port=6379" in services["ray-head"]["command"]


def test_api_and_ray_nodes_get_every_setting(compose):
    services = compose["services"]
    api_env = services["api"]["environment"]
    assert SRM_VARIABLES <= set(api_env)
    assert api_env["RAY_ADDRESS"] == "ray-head:6379"
    assert api_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "@postgres:5432/" in api_env["SRM_BENCH_DATABASE_URL"]
    assert api_env["SRM_BENCH_API_TOKEN"].startswith("${SRM_BENCH_API_TOKEN:?")  # refuses to start open
    for node in ("ray-head", "ray-worker"):  # trials log to MLflow and read data on the workers
        env = services[node]["environment"]
        assert {"MLFLOW_TRACKING_URI", "SRM_BENCH_DATA_DIR", "SRM_BENCH_HOME"} <= set(env)


def test_one_ray_token_secret_reaches_the_head_the_workers_and_the_api(compose):
    """Ray 2.60 authenticates with a token by default: every Ray process must read the same one."""
    secret = compose["secrets"]["ray_auth_token"]
    assert secret["file"].startswith("${RAY_AUTH_TOKEN_FILE:-")
    for name in ("ray-head", "ray-worker", "api"):
        service = compose["services"][name]
        assert service["secrets"] == ["ray_auth_token"], name
        env = service["environment"]
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN_PATH"] == "/run/secrets/ray_auth_token", name


def test_mlflow_is_backed_by_postgres_with_an_artifact_volume(compose):
    mlflow = compose["services"]["mlflow"]
    assert "--backend-store-uri postgresql+psycopg://" in mlflow["command"]
    assert "@postgres:5432/mlflow" in mlflow["command"]
    assert any(v.startswith("mlartifacts:") for v in mlflow["volumes"])
    assert "CREATE DATABASE mlflow" in compose["configs"]["create-mlflow-db"]["content"]


def test_ray_workers_reserve_gpus_and_join_the_head(compose):
    worker = compose["services"]["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
    assert "--address=ray-head:6379" in worker["command"]


def test_health_checks_and_start_order(compose):
    services = compose["services"]
    for name in ("postgres", "mlflow", "ray-head", "api"):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"
    assert "/healthz" in str(services["api"]["healthcheck"]["test"])
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] == "service_healthy"
            assert "healthcheck" in services[dependency]


def test_named_volumes_are_declared(compose):
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith(("/", ".", "$")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_commands_are_real_cli_commands(compose):
    from typer.main import get_command

    from service.cli import app

    commands = set(get_command(app).commands)
    api_command = compose["services"]["api"]["command"].split()
    assert api_command[0] == "srm-bench" and api_command[1] in commands
