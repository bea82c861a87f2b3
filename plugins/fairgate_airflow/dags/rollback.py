"""
### fairgate_rollback

Points production back to an earlier **approved** version of the model, with the same
compare-and-swap as a deployment, and appends an evidence record of who rolled back, when and
why. Trigger it by hand; leave `version` empty to return to the version that was in production
before the current one. A version that never passed the gate or a review is refused.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from fairgate_airflow.models import ModelEntry
from fairgate_airflow.operators import RollbackOperator, TrackMlflowOperator


def rollback(model: ModelEntry) -> DAG:
    with DAG(
        dag_id=model.dag_id("fairgate_rollback"),
        doc_md=__doc__,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["fairgate", "registry", f"model:{model.name}"],
        default_args={"owner": "fairgate", "retries": 2, "retry_delay": timedelta(seconds=30)},
        params={
            "version": Param(
                "",
                type="string",
                title="Version (sha256)",
                description="Leave empty for the previous production version.",
            ),
            "reason": Param(
                "",
                type="string",
                title="Reason",
                minLength=1,
                description="Why production is rolled back; recorded in the evidence log.",
            ),
        },
    ) as dag:
        moved = RollbackOperator(
            task_id="rollback",
            version="{{ params.version }}",
            reason="{{ params.reason }}",
            pool="fairgate_promotion",
        )
        moved >> TrackMlflowOperator(task_id="track_mlflow", lifecycle_runs=False)  # the alias follows
    return dag
