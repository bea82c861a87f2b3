"""Where a deployment's policies, store and tracking server are: one configuration, found the same way by
the DAG factory, the CLI, ``fairgate serve`` and the Fairness view.

Each setting is read from, in order:

1. the argument a caller gives (``from_policies("/opt/airflow/policies")``, ``--artifact-root``);
2. its environment variable (``FAIRGATE_POLICIES``, ``FAIRGATE_ARTIFACT_ROOT``, ``MLFLOW_TRACKING_URI``);
3. the deployment's file: ``FAIRGATE_CONFIG``, else ``fairgate.yaml`` in ``AIRFLOW_HOME``
   (``~/airflow`` when unset), a mapping of the keys of :data:`SETTINGS`::

       policies: /opt/airflow/policies
       artifact_root: s3://models/fairgate
       mlflow_tracking_uri: http://mlflow:5000

4. the default (the bundled policy, ``.artifacts``, the embedded MLflow store).

So a team that writes the file once (or sets the variables once, for every component) gets the same
answer from a DAG processor, a worker, a shell and the model server. Secrets never live here: the
evidence key, S3 credentials and MLflow passwords stay in Airflow connections or the environment.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from fairgate.errors import CatalogError

# setting -> its environment variable
SETTINGS = {
    "policies": "FAIRGATE_POLICIES",
    "artifact_root": "FAIRGATE_ARTIFACT_ROOT",
    "mlflow_tracking_uri": "MLFLOW_TRACKING_URI",
}
MAX_BYTES = 100_000


def config_path() -> Path:
    """The deployment's configuration file (it need not exist)."""
    named = os.environ.get("FAIRGATE_CONFIG")
    if named:
        return Path(named)
    home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(home) / "fairgate.yaml"


def value(setting: str) -> str | None:
    """``setting`` from its environment variable, else the configuration file; None when neither has it."""
    from_env = os.environ.get(SETTINGS[setting])
    if from_env:
        return from_env
    path = config_path()
    found = _file(str(path), path.stat().st_mtime_ns if path.is_file() else 0).get(setting)
    return str(found) if found else None


@cache
def _file(path: str, _mtime: int) -> dict[str, Any]:
    """The configuration file's keys (read once per change; a missing file has none)."""
    import yaml

    if not _mtime:
        return {}
    data = Path(path).read_bytes()
    if len(data) > MAX_BYTES:
        raise CatalogError(f"Fairgate configuration {path} is {len(data):,} bytes; it holds a few settings.")
    try:
        raw = yaml.safe_load(data) or {}
    except yaml.YAMLError as exc:
        raise CatalogError(f"Fairgate configuration {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CatalogError(f"Fairgate configuration {path} must be a mapping of {sorted(SETTINGS)}.")
    unknown = sorted(set(raw) - set(SETTINGS))
    if unknown:
        raise CatalogError(f"Fairgate configuration {path} has unknown key(s) {unknown}; known: {sorted(SETTINGS)}.")
    return raw
