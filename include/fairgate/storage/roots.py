"""Which store a root names: ``open_store`` for a local path, ``file://`` or ``s3://`` root."""

from __future__ import annotations

import os

from fairgate.errors import StoreConfigError
from fairgate.storage.base import ArtifactStore
from fairgate.storage.local import LocalStore, default_artifact_root
from fairgate.storage.s3 import S3Store


def open_store(root: str | None = None, *, s3_client: object | None = None) -> ArtifactStore:
    """The store at ``root`` (default ``FAIRGATE_ARTIFACT_ROOT``, else ``.artifacts`` in the project).

    ``s3://bucket/prefix`` roots need a boto3 S3 client, passed in by the caller (in Airflow it
    comes from the connection named by ``FAIRGATE_AWS_CONN_ID``).
    """
    root = root or os.environ.get("FAIRGATE_ARTIFACT_ROOT") or str(default_artifact_root())
    if root.startswith("s3://"):
        if s3_client is None:
            raise StoreConfigError(f"Artifact root {root} is on S3 but no S3 client was given.")
        return S3Store(root, client=s3_client)
    if root.startswith("file://"):
        root = root[len("file://") :]
    if "://" in root:
        raise StoreConfigError(f"Artifact root {root!r} must be a local path, file:// or s3:// URI.")
    return LocalStore(root)
