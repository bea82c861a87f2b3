"""A real S3 HTTP endpoint on loopback (moto's server mode), reached by boto3 over HTTP."""

from __future__ import annotations

import json
import uuid

import pytest


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    """Credentials for the fake endpoint, and the Airflow connection that points at it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(
        "AIRFLOW_CONN_FAIRGATE_S3",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {
                    "region_name": "us-east-1",
                    "endpoint_url": s3_endpoint,
                    "config_kwargs": {
                        "s3": {"addressing_style": "path"},
                        "retries": {"mode": "standard", "max_attempts": 3},
                    },
                },
            }
        ),
    )
    monkeypatch.setenv("FAIRGATE_AWS_CONN_ID", "fairgate_s3")
    return s3_endpoint


@pytest.fixture
def s3_client(s3_env):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=s3_env,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


@pytest.fixture
def bucket(s3_client):
    name = f"fairgate-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store(s3_client, bucket):
    from fairgate.storage.s3 import S3Store

    return S3Store(f"s3://{bucket}/artifacts", client=s3_client)
