"""Where Fairgate's Airflow tasks find the artifact store.

``FAIRGATE_ARTIFACT_ROOT`` names the store (a local path, ``file://`` or ``s3://bucket/prefix``).
For S3 the boto3 client comes from the amazon provider's ``S3Hook`` for the connection named by
``FAIRGATE_AWS_CONN_ID`` (default ``aws_default``), so credentials, region and ``endpoint_url``
live in an Airflow connection, never in code or the policy. A ``sql://<conn_id>`` data source or
feed is the Airflow connection ``conn_id`` (any database SQLAlchemy speaks; PostgreSQL is tested).
"""

from __future__ import annotations

import os


def artifact_root() -> str | None:
    return os.environ.get("FAIRGATE_ARTIFACT_ROOT")


def _connection_uri(conn_id: str) -> str:
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk import BaseHook

    from fairgate.data import DataError, sqlalchemy_url

    try:
        return sqlalchemy_url(BaseHook.get_connection(conn_id).get_uri())
    except AirflowNotFoundException:
        raise DataError(f"No Airflow connection {conn_id!r} (named by a sql:// source or feed): define it with "
                        f"`airflow connections add {conn_id} --conn-uri postgresql://...` or "
                        f"AIRFLOW_CONN_{conn_id.upper()}.") from None


def _s3_client():
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=os.environ.get("FAIRGATE_AWS_CONN_ID", "aws_default")).get_conn()


def artifact_store():
    """The store every stage writes to; also points ``sql://`` sources at Airflow's connections."""
    from fairgate.data import use_connections, use_s3_client
    from fairgate.store import open_store

    use_connections(_connection_uri)
    use_s3_client(_s3_client)

    root = artifact_root()
    client = None
    if root and root.startswith("s3://"):
        client = _s3_client()
    return open_store(root, s3_client=client)
