"""The operators of ``fairgate_audit``: the nightly audit, its alert and the retraining request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from fairgate_airflow.operators.base import BranchStage, Stage, day_of, routes_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class AuditOperator(BranchStage):
    """Audit the window ending on the run's day, store the result, then branch on its status through ``routes``."""

    def __init__(self, *, routes: Mapping[str, Sequence[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.routes = routes_of(routes, ("healthy", "degraded", "insufficient_evidence"), self)

    def choose_branch(self, context: Context) -> list[str]:
        from fairgate.stages import monitoring

        run, day = self.run_info(context), day_of(context)
        result = self.run(context, monitoring.audit, day, run_id=run.run_id, run_type=run.run_type, with_run=False)
        self.log.info(
            "Audit of %s: %s (%s predictions, %s with outcomes). %s",
            day,
            result.status,
            result.rows,
            result.labeled_rows,
            "; ".join(result.reasons[:5]),
        )
        return list(self.routes[result.status])


class AlertOperator(Stage, BaseOperator):
    """Send the audit's alert through each notifier (default: task log + alerts file in the store)."""

    checks_estimator = False

    template_fields: Sequence[str] = ("audit",)

    def __init__(self, *, audit: Any = None, notifiers: Sequence[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.audit = audit
        self.notifiers = notifiers

    def execute(self, context: Context) -> None:
        from fairgate.contracts import Audit
        from fairgate.stages import monitoring
        from fairgate_airflow.notifiers import ArtifactStoreAlertNotifier

        alert = monitoring.alert(self.given("audit", Audit), self.policy(context).model_name)
        for notifier in self.notifiers or [ArtifactStoreAlertNotifier()]:
            notifier.message, notifier.severity, notifier.payload = alert.message, alert.severity, dict(alert.payload)
            notifier.notify(context)


class RequestRetrainingOperator(Stage, BaseOperator):
    """Update the retraining-request asset (``fairgate_lifecycle`` is scheduled on it) with the reason.

    Backfill runs rebuild audit history; they do not request retraining.
    """

    template_fields: Sequence[str] = ("audit",)

    def __init__(self, *, audit: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.audit = audit

    def execute(self, context: Context) -> None:
        from fairgate.contracts import Audit
        from fairgate.stages import monitoring

        audit = self.given("audit", Audit)
        request = monitoring.retraining_request(audit)
        if request is None:
            self.log.info("Backfill run: retraining not requested for %s", audit.date)
            return
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = dict[str, Any](request)
        self.log.info("Retraining requested: %s", request["reason"][:500])


class IncidentDeadlinesOperator(Stage, BaseOperator):
    """The incidents' reporting clocks: fail, naming each incident still open past its deadline (each is
    recorded overdue in the evidence log once), so the DAG's failure alerting fires until they are closed."""

    checks_estimator = False

    def execute(self, context: Context) -> None:
        from fairgate.stages import monitoring

        model = self.policy(context).model_name
        found = monitoring.incident_deadlines(self.store(), model)
        self.log.info("%d incident(s) open, %d past their deadline", found["open"], len(found["overdue"]))
        if found["overdue"]:
            raise AirflowFailException(
                f"{len(found['overdue'])} incident(s) of {model!r} open past their reporting deadline:\n"
                + "\n".join(found["overdue"])
                + f"\nClose each with: fairgate --model {model} incidents close ID --rationale '...'"
            )


class RetentionOperator(Stage, BaseOperator):
    """Remove the prediction-log days past ``audit.retention_days``, never one inside the audit window or
    with an open contest, and record what was removed (:mod:`fairgate.monitoring.retention`)."""

    checks_estimator = False

    def execute(self, context: Context) -> None:
        from fairgate.stages import monitoring

        done = self.run(
            context, monitoring.apply_retention, day_of(context), run_id=self.run_info(context).run_id, with_run=False
        )
        if done["refused"]:
            self.log.warning("Retention refused: %s", done["refused"])
            return
        self.log.info(
            "Retention %s days (before %s): removed %s; kept %s",
            done["retention_days"],
            done["cutoff"],
            done["removed"] or "nothing",
            done["kept"] or "nothing past the period",
        )
