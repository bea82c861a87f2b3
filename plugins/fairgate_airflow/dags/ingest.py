"""
### fairgate_ingest

Every 15 minutes (policy `schedule.ingest`), takes in the decisions the model server answered since
the last run (`fairgate serve` writes each request's decisions to the prediction log before
answering): **ingest_decisions** compacts each day's small parts into a new file (never rewriting
one an audit read), applies the review cap to the decisions a review trigger flagged and opens a
review case for each one queued; **review_decision** (one mapped HITL task per case) asks a
reviewer to uphold or overturn it, as for batch scoring; **trigger_audit** updates the model's
served-decisions asset once `audit.min_new_decisions` have arrived since it last did, which starts
`fairgate_audit` before its nightly run (skipped otherwise).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, XComArg

from fairgate_airflow.assets import served_decisions
from fairgate_airflow.models import ModelEntry
from fairgate_airflow.operators import DecideContestOperator, IngestDecisionsOperator, TriggerAuditOperator


def ingest(model: ModelEntry) -> DAG:
    with DAG(
        dag_id=model.dag_id("fairgate_ingest"),
        doc_md=__doc__,
        schedule=CronTriggerTimetable(model.schedule["ingest"], timezone="UTC"),
        start_date=pendulum.datetime(2026, 1, 2, tz="UTC"),
        catchup=False,
        max_active_runs=1,  # one compaction at a time
        tags=["fairgate", "monitoring", f"model:{model.name}"],
        default_args={"owner": "fairgate", "retries": 2, "retry_delay": timedelta(minutes=1)},
    ) as dag:
        ingested = IngestDecisionsOperator(task_id="ingest_decisions")
        TriggerAuditOperator(
            task_id="trigger_audit", ingested=XComArg(ingested, key="ingested"), outlets=[served_decisions(model)]
        )
        # A person's answer is not retried: a retry would ask again.
        DecideContestOperator.partial(task_id="review_decision", retries=0).expand(case_id=ingested.output)
    return dag
