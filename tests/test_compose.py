"""docker-compose.yaml is valid for Debian's docker-compose and wires the topology Fairgate needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        hint = "Debian's docker-compose is needed to check docker-compose.yaml (apt-get install docker-compose)."
        if os.environ.get("CI") == "true":
            pytest.fail(hint + " .ci/run installs it when it runs as root.")
        pytest.skip(hint)
    return exe


PASSWORDS = {
    "AIRFLOW_ADMIN_PASSWORD": "airflow-pw-for-the-test",
    "AIRFLOW_JWT_SECRET": "jwt-secret-for-the-test-" + "0" * 64,
    "MINIO_ROOT_PASSWORD": "minio-pw-for-the-test",
    "MLFLOW_ADMIN_PASSWORD": "mlflow-pw-for-the-test",
}


def _config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in PASSWORDS}
    return subprocess.run(
        [_compose(), "-f", "docker-compose.yaml", *args, "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **(PASSWORDS if env is None else env)},
    )


def test_compose_config_is_valid_and_complete():
    out = _config()
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    services = cfg["services"]
    assert set(services) >= {
        "postgres",
        "redis",
        "minio",
        "minio-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-init",
    }
    worker = services["airflow-worker"]["environment"]
    assert worker["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert worker["FAIRGATE_ARTIFACT_ROOT"].startswith("s3://")
    assert '"endpoint_url": "http://minio:9000"' in worker["AIRFLOW_CONN_AWS_DEFAULT"]
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in worker
    for name, svc in services.items():
        if name.startswith("airflow-") and name != "airflow-init":
            assert "healthcheck" in svc, name
    assert "fairgate_promotion" in " ".join(services["airflow-init"]["command"])


def test_compose_wires_mlflow_to_the_same_postgres_and_minio_and_serves_the_production_alias():
    out = _config("--profile", "serving")
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    server = services["mlflow"]
    command = " ".join(server["command"]) if isinstance(server["command"], list) else server["command"]
    assert "--backend-store-uri postgresql+psycopg2://airflow:airflow@postgres/mlflow" in command
    assert "--artifacts-destination s3://fairgate/mlflow" in command
    assert server["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert set(server["depends_on"]) == {"mlflow-db-init", "minio-init"}
    assert "CREATE DATABASE mlflow" in str(services["mlflow-db-init"]["entrypoint"])
    conn = json.loads(services["airflow-worker"]["environment"]["AIRFLOW_CONN_MLFLOW_DEFAULT"])
    assert (conn["host"], conn["port"]) == ("mlflow", 5000)
    assert (conn["login"], conn["password"]) == ("admin", PASSWORDS["MLFLOW_ADMIN_PASSWORD"])
    assert "--app-name basic-auth" in command
    assert server["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"] == PASSWORDS["MLFLOW_ADMIN_PASSWORD"]
    serve = services["mlflow-serve"]
    serve_command = " ".join(serve["command"]) if isinstance(serve["command"], list) else serve["command"]
    # the server runs what Fairgate's evidence approves, not the MLflow alias
    assert serve["entrypoint"] == ["fairgate"] and "serve" in serve_command and "@production" not in serve_command
    assert "--tracking-uri http://mlflow:5000" in serve_command
    assert serve["environment"]["FAIRGATE_ARTIFACT_ROOT"] == "s3://fairgate/artifacts"


def test_nothing_is_published_beyond_localhost_and_nothing_starts_without_its_passwords():
    services = yaml.safe_load(_config("--profile", "serving").stdout)["services"]
    published = {name: svc["ports"] for name, svc in services.items() if svc.get("ports")}
    assert set(published) >= {"minio", "mlflow", "mlflow-serve", "airflow-apiserver"}
    for name, ports in published.items():
        for port in ports:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).rsplit(":", 2)[0]
            assert host_ip == "127.0.0.1", (name, port)
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == PASSWORDS["MINIO_ROOT_PASSWORD"]
    assert "fairgate-secret" not in json.dumps(services) and "change-me" not in json.dumps(services)
    assert services["airflow-worker"]["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] == PASSWORDS["AIRFLOW_JWT_SECRET"]
    missing = _config(env={})
    assert missing.returncode != 0 and "MINIO_ROOT_PASSWORD" in missing.stderr + missing.stdout
    api = services["airflow-apiserver"]
    script = " ".join(api["command"])
    assert api["environment"]["AIRFLOW_ADMIN_PASSWORD"] == PASSWORDS["AIRFLOW_ADMIN_PASSWORD"]
    assert "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in script and "exec /entrypoint airflow api-server" in script
    assert api["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "airflow:admin"
    worker = services["airflow-worker"]
    mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in worker["volumes"]]
    assert any(m.endswith("dags:/opt/fairgate/dags") or "/dags:/opt/fairgate/dags" in m for m in mounts), mounts


def test_every_image_is_pinned_and_ours_carries_the_package_version():
    """No ``:latest`` (nor an untagged image): an upgrade is a reviewed change, not whatever a pull finds."""
    out = _config()
    assert out.returncode == 0, out.stderr
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for name, svc in yaml.safe_load(out.stdout)["services"].items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image}"
        if repo == "fairgate-airflow":
            assert tag == version, f"{name}: {image} is not the package version {version}"
