"""One operator per lifecycle stage, each a thin wrapper over a ``fairgate.lifecycle`` function.

Every ``execute`` resolves its inputs (summaries pushed upstream under the XCom key
``summary``), calls one domain function, pushes that function's small JSON summary, then
returns, raises or branches. Bad input raises ``AirflowFailException`` (no retries burnt on
it); storage and network errors raise as they are, so task retries apply.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator
from airflow.sdk import BaseBranchOperator, BaseOperator, Param
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

SUMMARY = "summary"


class _Stage:
    """Plumbing every stage shares: policy, store, run identity, and upstream summaries."""

    def policy(self, context: Context):
        from fairgate.policy import load_policy

        overrides = (context.get("params") or {}).get("threshold_overrides") or {}
        return load_policy().with_threshold_overrides(overrides)

    def store(self):
        from fairgate_airflow.settings import artifact_store

        return artifact_store()

    def run_info(self, context: Context):
        from fairgate.lifecycle import RunInfo

        dag_run = context["dag_run"]
        run_type = getattr(dag_run, "run_type", "manual")
        return RunInfo(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id, run_type=str(getattr(run_type, "value", run_type)),
            interval_start=context.get("data_interval_start"), interval_end=context.get("data_interval_end"),
        )

    @staticmethod
    def upstream(context: Context, task_id: str) -> dict[str, Any] | None:
        return context["ti"].xcom_pull(task_ids=task_id, key=SUMMARY)

    def require(self, context: Context, task_id: str) -> dict[str, Any]:
        value = self.upstream(context, task_id)
        if value is None:
            raise AirflowFailException(
                f"No summary from task {task_id!r} in XCom. This usually means the upstream task did not run "
                "or did not push a value to XCom.")
        return value

    @staticmethod
    def push(context: Context, summary: dict[str, Any], *, started: float | None = None) -> dict[str, Any]:
        """Push the stage's summary; with ``started``, add the seconds its work took (``compute_s``)."""
        if started is not None:
            summary = {**summary, "compute_s": round(time.perf_counter() - started, 3)}
        context["ti"].xcom_push(key=SUMMARY, value=summary)
        return summary

    @staticmethod
    def guarded(fn, *args, **kwargs):
        """Call a domain function, turning bad input (:class:`fairgate.errors.InputError`) into a
        task failure without retries; anything else propagates, so retries apply."""
        from fairgate.errors import InputError

        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    def run_stage(self, context: Context, fn, *inputs: Any) -> dict[str, Any]:
        """The common stage: ``fn(store, policy, run, *inputs)``, guarded, its summary pushed and returned."""
        started = time.perf_counter()
        summary = self.guarded(fn, self.store(), self.guarded(self.policy, context), self.run_info(context), *inputs)
        return self.push(context, summary, started=started)


class CollectDataOperator(_Stage, BaseOperator):
    """Snapshot the policy's data source (the run's interval when partitioned) as Parquet."""

    ui_color = "#e8f4fd"

    def execute(self, context: Context) -> None:
        from fairgate import lifecycle

        summary = self.run_stage(context, lifecycle.collect)
        self.log.info("Snapshot of %s rows written to %s (sha256 %s)", summary["rows"], summary["uri"],
                      summary["sha256"])


class ValidateDataOperator(_Stage, BaseBranchOperator):
    """Run the policy's quality suite; branch to ``pass_task`` or ``fail_task``."""

    ui_color = "#fdf6e3"

    def __init__(self, *, pass_task: str = "check_bias", fail_task: str = "quality_failed", **kwargs):  # noqa: S107
        super().__init__(**kwargs)
        self.pass_task = pass_task
        self.fail_task = fail_task

    def choose_branch(self, context: Context) -> str:
        from fairgate import lifecycle

        summary = self.run_stage(context, lifecycle.validate, self.require(context, "collect_data"))
        if summary["passed"]:
            self.log.info("Routing to %s because all %s quality checks passed", self.pass_task, summary["checks"])
            return self.pass_task
        self.log.info("Routing to %s because %s of %s checks failed: %s", self.fail_task, summary["failed"],
                      summary["checks"], summary["failures"])
        return self.fail_task


class CheckBiasOperator(_Stage, BaseBranchOperator):
    """Measure disparity in the training data; branch to reweighing or straight to training."""

    ui_color = "#fdf6e3"

    def __init__(self, *, mitigate_task: str = "reweigh", train_task: str = "train_model", **kwargs):
        super().__init__(**kwargs)
        self.mitigate_task = mitigate_task
        self.train_task = train_task

    def choose_branch(self, context: Context) -> str:
        from fairgate import lifecycle

        summary = self.run_stage(context, lifecycle.check_bias, self.require(context, "collect_data"))
        for warning in summary.get("warnings", []):
            self.log.warning("Proxy check: %s", warning)
        if summary["detected"]:
            self.log.info("Routing to %s because %s", self.mitigate_task, "; ".join(summary["reasons"]))
            return self.mitigate_task
        self.log.info("Routing to %s because every disparity is within policy", self.train_task)
        return self.train_task


class ReweighOperator(_Stage, BaseOperator):
    """Compute AIF360 reweighing weights for the snapshot and store them."""

    def execute(self, context: Context) -> None:
        from fairgate import lifecycle

        summary = self.run_stage(context, lifecycle.reweigh, self.require(context, "collect_data"))
        self.log.info("Weights written to %s; largest |DI - 1| after reweighing: %.3g", summary["uri"],
                      summary["max_abs_di_error"])


class TrainModelOperator(_Stage, BaseOperator):
    """Fit the policy's pipeline, with the reweighing weights when that stage ran."""

    def execute(self, context: Context) -> None:
        from fairgate import lifecycle

        summary = self.run_stage(context, lifecycle.train, self.require(context, "collect_data"),
                                 self.upstream(context, "reweigh"))
        self.log.info("Model %s trained on %s rows (weighted: %s); validation %s", summary["model_sha256"][:12],
                      summary["rows"]["train"], summary["weighted"], summary["validation"])


class FairnessGateOperator(_Stage, BaseBranchOperator):
    """Evaluate the candidate on held-out data; branch to deploy, reject or human review."""

    ui_color = "#fde8e8"

    def choose_branch(self, context: Context) -> str:
        from fairgate import lifecycle

        summary = self.run_stage(context, lifecycle.evaluate, self.require(context, "collect_data"),
                                 self.require(context, "train_model"))
        self.log.info("Routing to %s because the gate says %s: %s", summary["branch"], summary["outcome"],
                      "; ".join(summary["reasons"]) or "all checks passed")
        return summary["branch"]


class HumanReviewOperator(_Stage, HITLBranchOperator):
    """Ask a person to approve or reject a borderline candidate, with the gate's evidence attached.

    The reviewer must give a rationale; an approval without one, a rejection, or no answer
    before the policy's ``review_timeout_hours`` all lead to ``reject_model``.
    """

    def __init__(self, *, approve_task: str = "deploy_model", reject_task: str = "reject_model", **kwargs):
        kwargs.setdefault("subject", "Fairgate: review a model the fairness gate could not decide")
        kwargs.pop("params", None)  # DAG-level params do not belong in the review form
        super().__init__(
            options=["Approve", "Reject"], defaults=["Reject"],
            options_mapping={"Approve": approve_task, "Reject": reject_task},
            params={"rationale": Param("", type="string", title="Rationale (required)",
                                       description="Why you approve or reject this model; recorded in the "
                                                   "evidence and the model card.")},
            **kwargs,
        )

    def execute(self, context: Context):
        from fairgate.report import run_report
        from fairgate_airflow.review import report_url, review_body

        store, policy, run = self.store(), self.guarded(self.policy, context), self.run_info(context)
        self.response_timeout = timedelta(hours=policy.review_timeout_hours)
        # The report as it stands (record_evidence replaces it with the final one, at the same place).
        interim = _record(self, context, policy, run, decision="awaiting_review")
        written = store.put(f"{run.prefix}/report.html", run_report(interim, policy).encode())
        self.body = review_body(self.require(context, "fairness_gate"), self.upstream(context, "reweigh"),
                                report_url=report_url(run.dag_id, run.run_id), stored_uri=written.uri)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from fairgate.gate import review_decision

        timed_out = bool(event.get("timedout")) or event.get("error_type") == "timeout"
        chosen = event.get("chosen_options") or []
        user = event.get("responded_by_user") or {}
        review = review_decision(
            chosen[0] if chosen else None, (event.get("params_input") or {}).get("rationale"),
            reviewer=(user.get("name") or user.get("id")) if isinstance(user, dict) else str(user),
            timed_out=timed_out,
        )
        responded_at = event.get("responded_at")
        review["responded_at"] = responded_at.isoformat() if hasattr(responded_at, "isoformat") else responded_at
        self.push(context, review)
        self.log.info("Routing to %s: reviewer %s chose %s %s", review["branch"], review["reviewer"],
                      review["choice"], review["note"])
        return self.do_branch(context=context, branches_to_execute=[review["branch"]])


class DeployModelOperator(_Stage, BaseOperator):
    """Register the approved model and move the production pointer (not from backfills)."""

    ui_color = "#e6f4ea"

    def execute(self, context: Context) -> None:
        from fairgate import lifecycle
        from fairgate.report import model_card

        started = time.perf_counter()
        store, policy, run = self.store(), self.guarded(self.policy, context), self.run_info(context)
        review = self.upstream(context, "human_review")
        approver = review["reviewer"] if review else "fairness_gate (automatic)"
        snapshot, trained, gate_result = (self.require(context, t)
                                          for t in ("collect_data", "train_model", "fairness_gate"))
        preview = _record(self, context, policy, run, decision="deployed")
        summary = self.guarded(lifecycle.deploy, store, policy, run, snapshot, trained, gate_result,
                               approver=approver, review=review, card_md=model_card(preview, policy))
        self.log.info("Version %s registered; production pointer moved: %s (previous %s)",
                      summary["version"][:12], summary["promoted"], summary["previous"])
        self.push(context, summary, started=started)


class RejectModelOperator(_Stage, BaseOperator):
    """Record that the candidate is not deployed; production is left as it was."""

    ui_color = "#f4f4f4"

    def execute(self, context: Context) -> None:
        from fairgate import lifecycle

        started = time.perf_counter()
        summary = lifecycle.reject(self.store(), self.guarded(self.policy, context))
        self.log.info("Candidate rejected; production stays at %s", summary["production_version"])
        self.push(context, summary, started=started)


class RecordEvidenceOperator(_Stage, BaseOperator):
    """Append the run's evidence record to the hash-chained log and write its report and model card.

    With ``fail_run=True`` (the ``quality_failed`` outcome) the task fails after recording, so
    the run is marked failed but the evidence of why is kept.
    """

    def __init__(self, *, outcome: str | None = None, fail_run: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.outcome = outcome
        self.fail_run = fail_run

    def execute(self, context: Context) -> None:
        from fairgate import lifecycle
        from fairgate.report import model_card, run_report

        started = time.perf_counter()
        store, policy, run = self.store(), self.guarded(self.policy, context), self.run_info(context)
        record = _record(self, context, policy, run, decision=self.outcome)
        report = store.put(f"{run.prefix}/report.html", run_report(record, policy).encode())
        record["report"] = {"uri": report.uri, "sha256": report.sha256}
        if record.get("model"):
            card = store.put(f"{run.prefix}/model_card.md", model_card(record, policy).encode())
            record["model_card"] = {"uri": card.uri, "sha256": card.sha256}
        summary = lifecycle.record(store, record)
        self.log.info("Evidence record %s (%s) appended; report at %s", summary["seq"], record["decision"],
                      report.uri)
        self.push(context, {**summary, "report_uri": report.uri}, started=started)
        if self.fail_run:
            quality = record.get("quality") or {}
            raise AirflowFailException(
                f"Data quality failed: {quality.get('failed')} of {quality.get('checks')} checks "
                f"({'; '.join(quality.get('failures', []))}). Evidence recorded as seq {summary['seq']}.")


class RollbackOperator(_Stage, BaseOperator):
    """Point production back to an earlier approved version and record who, when and why."""

    template_fields: Sequence[str] = ("version", "reason")
    ui_color = "#fff3cd"

    def __init__(self, *, version: str = "", reason: str = "", **kwargs):
        super().__init__(**kwargs)
        self.version = version
        self.reason = reason

    def execute(self, context: Context) -> None:
        from fairgate import evidence, registry

        started = time.perf_counter()
        store, policy, run = self.store(), self.guarded(self.policy, context), self.run_info(context)
        actor = getattr(context["dag_run"], "triggering_user_name", None) or "unknown"
        moved = self.guarded(registry.rollback, store, policy.model_name, to_version=self.version or None,
                             actor=actor, reason=self.reason or "(no reason given)", run_id=run.run_id)
        entry = evidence.append(store, {**moved, "dag_id": run.dag_id})
        self.log.info("Production moved from %s back to %s (evidence record %s)", moved["from_version"][:12],
                      moved["to_version"][:12], entry["seq"])
        self.push(context, {**moved, "seq": entry["seq"]}, started=started)


def _day(context: Context):
    """The calendar day a daily run covers: the start of its data interval (its logical date otherwise)."""
    start = context.get("data_interval_start") or context.get("logical_date")
    if start is None:
        raise AirflowFailException("This DAG needs a logical date: trigger it with one, or let it be scheduled.")
    return start.date()


class ScoreOperator(_Stage, BaseOperator):
    """Score the day's incoming records with the production model into the prediction log."""

    def execute(self, context: Context) -> None:
        from fairgate import monitoring

        started = time.perf_counter()
        store, policy, day = self.store(), self.guarded(self.policy, context), _day(context)
        scenario = (context.get("params") or {}).get("scenario") or None
        records = self.guarded(monitoring.incoming, policy, day, scenario=scenario)
        summary = self.guarded(monitoring.score_day, store, policy, day, records)
        self.log.info("Scored %s records of %s with model %s; selection rate %.3f", summary["rows"], day,
                      summary["model_version"][:12], summary["selection_rate"])
        self.push(context, summary, started=started)


class AuditOperator(_Stage, BaseBranchOperator):
    """Audit the window ending on the run's day, store the result, then branch on its status."""

    ROUTES = {"healthy": ["healthy"], "degraded": ["alert", "request_retraining"],
              "insufficient_evidence": ["alert"]}

    def choose_branch(self, context: Context) -> list[str]:
        from fairgate import monitoring

        started = time.perf_counter()
        store, policy, run, day = self.store(), self.guarded(self.policy, context), self.run_info(context), \
            _day(context)
        result = self.guarded(monitoring.audit_day, store, policy, day, run_id=run.run_id)
        page = monitoring.audit_report(result, monitoring.audit_trend(store, result),
                                       list(policy.fairness_thresholds))
        saved = monitoring.save_audit(store, result, report_html=page)
        self.push(context, {**saved, "date": result["date"], "reasons": result["reasons"][:10],
                            "insufficient": result.get("insufficient", [])[:10], "rows": result["rows"],
                            "labeled_rows": result["labeled_rows"], "run_type": run.run_type}, started=started)
        self.log.info("Audit of %s: %s (%s predictions, %s with outcomes). %s", day, result["status"],
                      result["rows"], result["labeled_rows"], "; ".join(result["reasons"][:5]))
        return self.ROUTES[result["status"]]


class AlertOperator(_Stage, BaseOperator):
    """Send the audit's alert through each notifier (default: task log + alerts file in the store)."""

    def __init__(self, *, notifiers: Sequence[Any] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.notifiers = notifiers

    def execute(self, context: Context) -> None:
        from fairgate_airflow.notifiers import ArtifactStoreAlertNotifier

        audit = self.require(context, "audit")
        severity = "critical" if audit["status"] == "degraded" else "info"
        message = (f"Fairgate audit {audit['date']}: {audit['status']}. "
                   + "; ".join(audit["reasons"] or audit["insufficient"])[:1000] + f" Report: {audit['report_uri']}")
        for notifier in self.notifiers or [ArtifactStoreAlertNotifier()]:
            notifier.message, notifier.severity = message, severity
            notifier.payload = {"date": audit["date"], "status": audit["status"], "audit_uri": audit["uri"]}
            notifier.notify(context)


class RequestRetrainingOperator(_Stage, BaseOperator):
    """Update the retraining-request asset (``fairgate_lifecycle`` is scheduled on it) with the reason.

    Backfill runs rebuild audit history; they do not request retraining.
    """

    def execute(self, context: Context) -> None:
        audit = self.require(context, "audit")
        if audit.get("run_type") == "backfill":
            self.log.info("Backfill run: retraining not requested for %s", audit["date"])
            return
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                "reason": "; ".join(audit["reasons"])[:1000], "audit_date": audit["date"],
                "audit_uri": audit["uri"]}
        self.log.info("Retraining requested: %s", "; ".join(audit["reasons"])[:500])


def _record(op: _Stage, context: Context, policy, run, *, decision: str | None) -> dict[str, Any]:
    """Build the evidence record from every stage's summary (skipped stages give ``None``)."""
    from fairgate import lifecycle

    s = {t: op.upstream(context, t) for t in ("collect_data", "validate_data", "check_bias", "reweigh",
                                              "train_model", "fairness_gate", "human_review", "deploy_model",
                                              "reject_model")}
    if decision is None:
        deployed = s["deploy_model"]
        decision = ("deployed" if deployed and deployed.get("promoted")
                    else "approved_not_promoted" if deployed else "rejected")
    return lifecycle.evidence_record(
        policy, run, decision=decision, collect=s["collect_data"], quality=s["validate_data"],
        bias=s["check_bias"], mitigation=s["reweigh"], trained=s["train_model"], gate_result=s["fairness_gate"],
        review=s["human_review"], deployed=s["deploy_model"],
    )


__all__: Sequence[str] = (
    "CheckBiasOperator", "CollectDataOperator", "DeployModelOperator", "FairnessGateOperator",
    "HumanReviewOperator", "RecordEvidenceOperator", "RejectModelOperator", "ReweighOperator", "RollbackOperator",
    "TrainModelOperator", "ValidateDataOperator", "ScoreOperator", "AuditOperator", "AlertOperator",
    "RequestRetrainingOperator",
)
