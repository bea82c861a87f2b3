"""The operators of ``fairgate_ingest``: served decisions compacted and queued for review, and the audit
started when enough of them arrived."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

from fairgate_airflow.operators.base import Stage

if TYPE_CHECKING:
    from airflow.sdk import Context


class IngestDecisionsOperator(Stage, BaseOperator):
    """Ingest the decisions served online since the last run (:func:`fairgate.stages.monitoring.ingest`).

    Returns the ids of the review cases opened for served decisions (what the review task is mapped
    over); the summary, with whether the audit is due, is published under ``ingested``.
    """

    checks_estimator = False

    def execute(self, context: Context) -> list[str]:
        from fairgate.stages import monitoring

        done = self.run(context, monitoring.ingest, run_id=self.run_info(context).run_id, with_run=False)
        context["ti"].xcom_push(key="ingested", value=dict(done))
        self.log.info(
            "Ingested %s served decision(s) (%s since the audit was last started); audit due: %s",
            done["new_decisions"],
            done["since_trigger"],
            done["trigger"],
        )
        return list(done["review_cases"])


class TriggerAuditOperator(Stage, BaseOperator):
    """Update the model's served-decisions asset (its audit DAG is scheduled on it) when the ingestion
    reached ``audit.min_new_decisions``; skipped otherwise, so no asset event is emitted."""

    checks_estimator = False
    template_fields: Sequence[str] = ("ingested",)

    def __init__(self, *, ingested: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ingested = ingested

    def execute(self, context: Context) -> None:
        done = dict(self.ingested or {})
        if not done.get("trigger"):
            raise AirflowSkipException(
                f"{done.get('since_trigger', 0)} served decision(s) since the last audit trigger: "
                "fewer than audit.min_new_decisions"
            )
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                "since_trigger": int(done["since_trigger"]),
                "new_decisions": int(done["new_decisions"]),
            }
        self.log.info("Audit requested: %s served decisions since the last request", done["since_trigger"])
