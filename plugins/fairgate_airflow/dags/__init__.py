"""Fairgate's DAGs, built for every model of a deployment: a team's DAG file is one call.

```python
# fairgate_dags.py in your DAGs folder (not fairgate.py: the DAGs folder is on sys.path, and a
# file of that name would shadow the fairgate package)
from fairgate_airflow.dags import from_policies

from_policies("/opt/airflow/policies")  # one policy file per model; default: FAIRGATE_POLICIES
```

For each model: :mod:`.lifecycle` (``fairgate_lifecycle__<model>``), :mod:`.score`,
:mod:`.ingest`, :mod:`.audit`, :mod:`.rollback` and :mod:`.contest`; for each policy file of the folder that
gives no model, :mod:`.refused` (``fairgate_policy_refused__<file>``, saying why). Without a folder (and without
``FAIRGATE_POLICIES``) the single policy ``FAIRGATE_POLICY`` (default: the bundled Adult
model) gets them, under the plain ids for the bundled model. Every DAG made in the call is
registered with Airflow (they are made in ``with DAG(...)`` blocks) and also returned.

Parse-time cheap: this reads each policy's ``model_name`` and ``schedule`` only; the tasks load
and validate the whole policy when they run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from fairgate_airflow.dags.audit import audit
from fairgate_airflow.dags.contest import contest
from fairgate_airflow.dags.ingest import ingest
from fairgate_airflow.dags.lifecycle import lifecycle
from fairgate_airflow.dags.refused import refused
from fairgate_airflow.dags.rollback import rollback
from fairgate_airflow.dags.score import score
from fairgate_airflow.models import bind, scan

if TYPE_CHECKING:
    from airflow.sdk import DAG

__all__ = ["BUILDERS", "from_policies"]

BUILDERS = (lifecycle, score, ingest, audit, rollback, contest)


def from_policies(
    folder: str | os.PathLike[str] | None = None,
    *,
    artifact_root: str | None = None,
    aws_conn_id: str | None = None,
    mlflow_conn_id: str | None = None,
) -> list[DAG]:
    """Every Fairgate DAG of every model whose policy file is in ``folder``.

    ``artifact_root`` (a path or ``s3://bucket/prefix``), ``aws_conn_id`` and ``mlflow_conn_id``
    are given to every task; each left out falls back to its environment variable when the task
    runs (``FAIRGATE_ARTIFACT_ROOT``, ``FAIRGATE_AWS_CONN_ID``, ``FAIRGATE_MLFLOW_CONN_ID``).
    """
    settings = {"artifact_root": artifact_root, "aws_conn_id": aws_conn_id, "mlflow_conn_id": mlflow_conn_id}
    models, refusals = scan(folder=folder)
    return [bind(build(model), model, **settings) for model in models for build in BUILDERS] + [
        refused(refusal) for refusal in refusals
    ]
