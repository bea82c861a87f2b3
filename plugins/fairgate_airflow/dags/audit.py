"""
### fairgate_audit

Every night, and when `fairgate_ingest` says `audit.min_new_decisions` served decisions have
arrived (the model's served-decisions asset; that run audits the window ending on its own day),
audits the deployed model on the decisions of the policy's window (default 7 days) ending on
the run's day, batch-scored and served online together (counted per channel), with the
outcomes that have arrived: selection rate, DI and SPD
per group and intersection (no outcomes needed), TPR/FPR, EOD and AOD where outcomes exist,
each with a confidence interval and group counts; PSI drift per feature and of the group mix
against the training data; changes since deployment.

Branches: **healthy** → recorded; **degraded** (a fairness bound clearly broken, or drift above
the policy's PSI threshold) → alert + retraining request (the asset the model's lifecycle is
scheduled on) + recorded; **insufficient_evidence** (groups too small, outcomes not yet
arrived) → recorded + low-severity alert. A degraded audit (or reviews overturned above the
policy's bound) opens an incident record with its reporting clock; every run ends with
**incident_deadlines**, which fails naming each incident still open past its deadline, and
**apply_retention**, which removes prediction-log days past `audit.retention_days` (never one in
the window or with an open contest) and records it. One audit
per logical date: a re-run or backfill replaces that date's result
(`audits/model=<model>/date=YYYY-MM-DD/audit.json`), stamped with the policy hash and code
version, and appends to the evidence log.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable

from fairgate_airflow.assets import retraining_request, served_decisions
from fairgate_airflow.models import ModelEntry
from fairgate_airflow.operators import (
    AlertOperator,
    AuditOperator,
    IncidentDeadlinesOperator,
    RequestRetrainingOperator,
    RetentionOperator,
    TrackMlflowOperator,
    check_routes,
)


def audit(model: ModelEntry) -> DAG:
    with DAG(
        dag_id=model.dag_id("fairgate_audit"),
        doc_md=__doc__,
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(model.schedule["audit"], timezone="UTC", interval=timedelta(days=1)),
            assets=served_decisions(model),
        ),
        start_date=pendulum.datetime(2026, 1, 2, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["fairgate", "monitoring", f"model:{model.name}"],
        default_args={"owner": "fairgate", "retries": 2, "retry_delay": timedelta(minutes=1)},
    ) as dag:
        # Every route also logs the audit to MLflow (one run per model, stepped by date).
        result = AuditOperator(
            task_id="audit",
            routes={
                "healthy": ["healthy", "track_mlflow", "incident_deadlines", "apply_retention"],
                "degraded": ["alert", "request_retraining", "track_mlflow", "incident_deadlines", "apply_retention"],
                "insufficient_evidence": ["alert", "track_mlflow", "incident_deadlines", "apply_retention"],
            },
        )
        result >> [
            EmptyOperator(task_id="healthy"),
            TrackMlflowOperator(task_id="track_mlflow", lifecycle_runs=False),
            IncidentDeadlinesOperator(task_id="incident_deadlines"),  # an overdue one fails without retry
            RetentionOperator(task_id="apply_retention"),
        ]
        AlertOperator(task_id="alert", audit=result.output)
        RequestRetrainingOperator(
            task_id="request_retraining", audit=result.output, outlets=[retraining_request(model)]
        )
    return check_routes(dag)
