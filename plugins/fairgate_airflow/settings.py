"""Where Fairgate's Airflow tasks find the artifact store.

``FAIRGATE_ARTIFACT_ROOT`` names the store (a local path, ``file://`` or ``s3://bucket/prefix``).
For S3 the boto3 client comes from the amazon provider's ``S3Hook`` for the connection named by
``FAIRGATE_AWS_CONN_ID`` (default ``aws_default``), so credentials, region and ``endpoint_url``
live in an Airflow connection, never in code or the policy.
"""

from __future__ import annotations

import os


def artifact_root() -> str | None:
    return os.environ.get("FAIRGATE_ARTIFACT_ROOT")


def artifact_store():
    from fairgate.store import open_store

    root = artifact_root()
    client = None
    if root and root.startswith("s3://"):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        client = S3Hook(aws_conn_id=os.environ.get("FAIRGATE_AWS_CONN_ID", "aws_default")).get_conn()
    return open_store(root, s3_client=client)
