"""Where Fairgate's Airflow tasks find the artifact store.

``FAIRGATE_ARTIFACT_ROOT`` names the store (a local path, ``file://`` or ``s3://bucket/prefix``).
For S3 the boto3 client comes from the amazon provider's ``S3Hook`` for the connection named by
``FAIRGATE_AWS_CONN_ID`` (default ``aws_default``), so credentials, region and ``endpoint_url``
live in an Airflow connection, never in code or the policy. A ``sql://<conn_id>`` data source or
feed is the Airflow connection ``conn_id`` (any database SQLAlchemy speaks; PostgreSQL is tested).
The evidence key that signs each log's HEAD is ``FAIRGATE_EVIDENCE_KEY`` or, without it, the
password of the connection ``FAIRGATE_EVIDENCE_CONN_ID`` (default ``fairgate_evidence``).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fairgate.storage.base import ArtifactStore


def artifact_root() -> str | None:
    """The configured artifact root (:mod:`fairgate.configuration`: the variable, then fairgate.yaml)."""
    from fairgate import configuration

    return configuration.value("artifact_root")


def _aws_conn_id(given: str | None = None) -> str:
    return given or os.environ.get("FAIRGATE_AWS_CONN_ID", "aws_default")


def _connection_uri(conn_id: str) -> str:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from fairgate.data.sources import sqlalchemy_url
    from fairgate.errors import DataError

    try:
        return sqlalchemy_url(BaseHook.get_connection(conn_id).get_uri())
    except AirflowNotFoundException:
        raise DataError(
            f"No Airflow connection {conn_id!r} (named by a sql:// source or feed): define it with "
            f"`airflow connections add {conn_id} --conn-uri postgresql://...` or "
            f"AIRFLOW_CONN_{conn_id.upper()}."
        ) from None


def _s3_client(aws_conn_id: str | None = None) -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return S3Hook(aws_conn_id=_aws_conn_id(aws_conn_id)).get_conn()


def _evidence_key() -> bytes | None:
    """``FAIRGATE_EVIDENCE_KEY``, else the password of the evidence connection (None: HEADs are not signed)."""
    if os.environ.get("FAIRGATE_EVIDENCE_KEY"):
        return os.environ["FAIRGATE_EVIDENCE_KEY"].encode()
    return _connection_key(os.environ.get("FAIRGATE_EVIDENCE_CONN_ID", "fairgate_evidence"))


def _head_anchor() -> Any:
    """``FAIRGATE_HEAD_ANCHOR``, else the URI of the connection ``fairgate_head_anchor`` (None: no anchor)."""
    from fairgate.storage.anchor import sql_anchor

    url = os.environ.get("FAIRGATE_HEAD_ANCHOR") or _connection_url(
        os.environ.get("FAIRGATE_HEAD_ANCHOR_CONN_ID", "fairgate_head_anchor")
    )
    return sql_anchor(url) if url else None


@functools.lru_cache(maxsize=4)
def _connection_url(conn_id: str) -> str | None:
    """A connection's URI as a SQLAlchemy URL, looked up once per process; None when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from fairgate.data.sources import sqlalchemy_url

    try:
        return sqlalchemy_url(BaseHook.get_connection(conn_id).get_uri())
    except AirflowNotFoundException:
        return None


@functools.lru_cache(maxsize=4)
def _connection_key(conn_id: str) -> bytes | None:
    """The evidence connection's password, looked up once per process (not once per append)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return conn.password.encode() if conn.password else None


def artifact_store(root: str | None = None, *, aws_conn_id: str | None = None) -> ArtifactStore:
    """The store every stage writes to (``root``, default ``FAIRGATE_ARTIFACT_ROOT``; an ``s3://`` one
    through ``aws_conn_id``, default ``FAIRGATE_AWS_CONN_ID``); also points ``sql://`` sources at
    Airflow's connections and the evidence log at the key that signs its HEAD and the anchor that keeps it."""
    from fairgate.data.sources import use_connections, use_s3_client
    from fairgate.storage.anchor import use_anchor
    from fairgate.storage.roots import open_store
    from fairgate.storage.signing import use_key

    use_connections(_connection_uri)
    use_s3_client(lambda: _s3_client(aws_conn_id))  # S3 data sources through the same connection
    use_key(_evidence_key)
    use_anchor(_head_anchor)

    root = root or artifact_root()
    client = None
    if root and root.startswith("s3://"):
        client = _s3_client(aws_conn_id)
    return open_store(root, s3_client=client)


def tracking_enabled() -> bool:
    """MLflow tracking is on unless ``FAIRGATE_MLFLOW=off``."""
    return os.environ.get("FAIRGATE_MLFLOW", "on").lower() not in ("off", "0", "false", "no")


def mlflow_tracking_uri(conn_id: str | None = None) -> str | None:
    """The tracking server of the Airflow connection ``conn_id`` (default ``FAIRGATE_MLFLOW_CONN_ID``, else
    ``mlflow_default``).

    An ``http``/``https`` connection gives ``scheme://host:port/path``, its login and password become
    MLflow's basic-auth variables; an extra ``tracking_uri`` is taken as it is (``databricks``, say).
    Without the connection: None, and :func:`fairgate.integrations.tracking.tracking_uri` falls back to
    ``MLFLOW_TRACKING_URI``, then to the embedded store.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id or os.environ.get("FAIRGATE_MLFLOW_CONN_ID", "mlflow_default"))
    except AirflowNotFoundException:
        return None
    extra = conn.extra_dejson or {}
    if extra.get("tracking_uri"):
        return str(extra["tracking_uri"])
    if conn.login:
        os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login
        os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password or ""
    scheme = conn.conn_type if conn.conn_type in ("http", "https") else (conn.schema or "http")
    port = f":{conn.port}" if conn.port else ""
    path = f"/{conn.schema}" if conn.schema and conn.conn_type in ("http", "https") else ""
    return f"{scheme}://{conn.host}{port}{path}"


def airflow_run_url(dag_id: str, run_id: str) -> str | None:
    """The run's page in the Airflow UI (``[api] base_url``), for the MLflow run's tags."""
    from urllib.parse import quote

    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    return f"{base.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id)}" if base else None
