"""Which store a root names: ``open_store`` for a local path, ``file://`` or ``s3://`` root."""

from __future__ import annotations

from typing import Any

from fairgate import configuration
from fairgate.errors import StoreConfigError
from fairgate.storage.base import ArtifactStore
from fairgate.storage.local import LocalStore, default_artifact_root
from fairgate.storage.s3 import S3Store


def open_store(root: str | None = None, *, s3_client: object | None = None) -> ArtifactStore:
    """The store at ``root`` (default: the configured artifact root, :mod:`fairgate.configuration`, else
    ``.artifacts`` in the project).

    Parameters
    ----------
    root
        A local folder, ``file://`` path or ``s3://bucket/prefix``.
    s3_client
        A boto3 S3 client, required for an ``s3://`` root (in Airflow it comes from the connection
        ``FAIRGATE_AWS_CONN_ID`` names).

    Returns
    -------
    ArtifactStore
        The store every stage reads from and writes to.

    Raises
    ------
    StoreConfigError
        The root is neither a local path, ``file://`` nor ``s3://``, or S3 has no client.
    """
    root = root or configuration.value("artifact_root") or str(default_artifact_root())
    if root.startswith("s3://"):
        if s3_client is None:
            raise StoreConfigError(f"Artifact root {root} is on S3 but no S3 client was given.")
        return S3Store(root, client=s3_client)
    if root.startswith("file://"):
        root = root[len("file://") :]
    if "://" in root:
        raise StoreConfigError(f"Artifact root {root!r} must be a local path, file:// or s3:// URI.")
    return LocalStore(root)


def default_s3_client(root: str | None) -> Any:
    """A boto3 client for an s3:// store (None for a local one), configured the standard way (AWS_*
    variables, profiles); ``AWS_ENDPOINT_URL_S3`` points it at MinIO or another S3-compatible server.
    For the CLI and the model server; Airflow's tasks take theirs from an Airflow connection."""
    root = root or configuration.value("artifact_root") or ""
    if not root.startswith("s3://"):
        return None
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))
