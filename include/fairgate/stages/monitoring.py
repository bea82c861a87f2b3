"""The monitoring stages: the store I/O around scoring and the audit, one function per stage.

:func:`score` scores a day's incoming records with the production model into the prediction
log; :func:`audit` measures the window ending on a day and stores the audit, its page and its
evidence record. The computation is in :mod:`fairgate.monitoring.scoring` and :mod:`fairgate.monitoring.audit`, the
storage in :mod:`fairgate.monitoring.prediction_log`, the page in :mod:`fairgate.reporting.report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from fairgate.errors import CODE_VERSION, StageError
from fairgate.governance import approval, cases, incidents, registry
from fairgate.models import recourse
from fairgate.models.training import reference_record
from fairgate.monitoring import audit as measure
from fairgate.monitoring import prediction_log, scoring, served_log, sql_audit
from fairgate.monitoring.audit import AuditResult, changes_since
from fairgate.monitoring.review_triggers import training_ranges
from fairgate.reporting.report import audit_report
from fairgate.stages.contracts import Audit

if TYPE_CHECKING:
    import pandas as pd

    from fairgate.policy.schema import Policy
    from fairgate.storage.base import ArtifactStore


def _reference(store: ArtifactStore, policy: Policy, version: str, records: pd.DataFrame) -> dict[str, Any]:
    """The typical record reasons are measured against: the one stored at deployment, else rebuilt."""
    manifest, training_data = prediction_log.deployment_baseline(store, policy, version)
    if manifest.get("reference"):
        return dict(manifest["reference"])
    return reference_record(training_data if training_data is not None else records, policy)


def score_day(store: ArtifactStore, policy: Policy, day: date, records: pd.DataFrame) -> dict[str, Any]:
    """Score ``records`` with the production model and write the day's prediction partition."""
    approved = approval.production(store, policy.model_name)  # refuses what the evidence did not approve
    if approved is None:
        raise StageError(f"No model of {policy.model_name!r} is in production; run fairgate_lifecycle first.")
    version = approved.version
    model = registry.load_model(store, policy.model_name, version)
    scoring.check_records(records, policy, day)
    ranges = None
    if policy.reviews_before_harm and policy.review_triggers.outside_training:
        _, training_data = prediction_log.deployment_baseline(store, policy, version)
        if training_data is None:
            raise StageError(
                f"The training snapshot of {policy.model_name} version {version[:12]} is missing or "
                "changed; 'review_triggers.outside_training' needs its ranges."
            )
        ranges = training_ranges(training_data, policy)
    log, outcomes = scoring.score_records(
        model, records, policy, version=version, reference=_reference(store, policy, version, records), ranges=ranges
    )
    written = prediction_log.write_day(store, policy.model_name, day, log, outcomes)
    if policy.audit.log_table:
        sql_audit.write_day(policy, day, log, outcomes)
    out = {
        "day": day.isoformat(),
        "rows": len(log),
        "model_version": version,
        "uri": written.uri,
        "sha256": written.sha256,
        "selection_rate": float(log["decision"].mean()),
    }
    if "review_status" in log.columns:
        queued, queue = prediction_log.write_review_queue(store, policy, day, log)
        out["review"] = {
            "pending": int((log["review_status"] == "pending").sum()),
            "over_cap": int((log["review_status"] == "over_cap").sum()),
            "queue_uri": queued.uri,
        }
        out["review_cases"] = cases.open_reviews(store, policy, day, queue)
    if outcomes is not None:
        out["labels_written"] = True
    return out


def score(store: ArtifactStore, policy: Policy, day: date, *, scenario: str | None = None) -> dict[str, Any]:
    """The scoring stage: the day's incoming records, scored with the production model into the log."""
    return score_day(store, policy, day, prediction_log.incoming(policy, day, scenario=scenario))


def audit_day(store: ArtifactStore, policy: Policy, day: date, *, run_id: str) -> AuditResult:
    """Measure the window ending ``day`` and classify it healthy / degraded / insufficient evidence."""
    fetched = prediction_log.fetch_outcomes(store, policy, day)
    if policy.audit.log_table:
        return _audit_in_sql(store, policy, day, run_id=run_id, fetched=fetched)
    df, days, versions = prediction_log.read_window(
        store,
        policy.model_name,
        day,
        policy.audit.window_days,
        row_key=policy.dataset.row_key or "",
        label_lag_days=policy.audit.label_lag_days,
        case_outcomes=cases.outcomes_by_day(store, policy.model_name),
    )
    base: AuditResult = {
        "kind": "audit",
        "run_id": run_id,
        "date": day.isoformat(),
        "window_days": days,
        "outcomes_fetched": fetched,
        "policy_sha256": policy.sha256,
        "code_version": CODE_VERSION,
        "model_name": policy.model_name,
    }
    if df.empty:
        return {
            **base,
            "status": "insufficient_evidence",
            "reasons": ["no predictions in the window"],
            "rows": 0,
            "labeled_rows": 0,
        }
    manifest, snapshot = prediction_log.deployment_baseline(store, policy, versions[-1])
    result: AuditResult = {**base, **measure.measure_window(df, versions, policy, manifest=manifest, training=snapshot)}
    result["channels"] = {str(k): int(v) for k, v in df["channel"].value_counts().sort_index().items()}
    result = _with_losses(store, policy, result)
    if policy.recourse.actionable:
        judged = df[df["model_version"] == versions[-1]].reset_index(drop=True)
        try:
            model, scale, proxies = prediction_log.recourse_context(store, policy, versions[-1])
        except StageError as exc:  # like drift: said in the audit, not a failed audit
            result["insufficient"] = [*result["insufficient"], f"recourse not measured: {exc}"]
            return result
        found = recourse.audit(
            model,
            judged,
            judged["decision"].to_numpy(),
            policy,
            scale=scale,
            proxies=proxies,
            sample=policy.recourse.audit_sample,
            seed=policy.model.seed,
        )
        result = measure.with_recourse(result, found, policy)
    return result


def _audit_in_sql(store: ArtifactStore, policy: Policy, day: date, *, run_id: str, fetched: list[str]) -> AuditResult:
    """:func:`audit_day` on ``audit.log_table``: fairness from one ``GROUP BY`` where the log is."""

    base: AuditResult = {
        "kind": "audit",
        "run_id": run_id,
        "date": day.isoformat(),
        "outcomes_fetched": fetched,
        "policy_sha256": policy.sha256,
        "code_version": CODE_VERSION,
        "model_name": policy.model_name,
    }
    measured = sql_audit.audit_window(
        policy,
        day,
        calibration_of=lambda version: registry.read_manifest(store, policy.model_name, version).get("calibration"),
    )
    if measured is None:
        return {
            **base,
            "window_days": [],
            "status": "insufficient_evidence",
            "reasons": ["no predictions in the window"],
            "rows": 0,
            "labeled_rows": 0,
        }
    manifest = registry.read_manifest(store, policy.model_name, measured["judged_version"])
    return _with_losses(
        store, policy, {**base, **measured, "change_since_deployment": changes_since(measured["fairness"], manifest)}
    )


def _with_losses(store: ArtifactStore, policy: Policy, result: AuditResult) -> AuditResult:
    """The count of served decisions answered but not logged in the window, said as a reason to look."""
    lost = served_log.losses(store, policy.model_name, result.get("window_days", []))
    result["unlogged_decisions"] = lost
    if lost:
        result["insufficient"] = [
            *result.get("insufficient", []),
            f"{lost} served decision(s) in the window were answered but not logged (audit.on_log_failure: answer): "
            "the figures leave them out",
        ]
    return result


def audit(store: ArtifactStore, policy: Policy, day: date, *, run_id: str, run_type: str = "manual") -> Audit:
    """The audit stage: measure the window ending ``day``, write its report, store it and append the evidence."""
    result = audit_day(store, policy, day, run_id=run_id)
    trend = prediction_log.audit_trend(store, policy.model_name, result)
    page = audit_report(result, trend, list(policy.fairness.bounds))
    saved = prediction_log.save_audit(store, policy.model_name, result, report_html=page)
    opened = incidents.from_audit(store, policy, result, run_type=run_type)
    return Audit(
        date=result["date"],
        status=result["status"],
        reasons=tuple(result["reasons"]),
        insufficient=tuple(result.get("insufficient", [])),
        rows=result["rows"],
        labeled_rows=result["labeled_rows"],
        run_type=run_type,
        result=saved["result"],
        report=saved["report"],
        seq=saved["seq"],
        judged_version=result.get("judged_version"),
        incidents=tuple(i["incident_id"] for i in opened),
    )


@dataclass(frozen=True)
class Alert:
    """What the audit DAG's notifiers send: a one-line message, its severity and the audit's identity."""

    message: str
    severity: str
    payload: dict[str, str] = field(default_factory=dict)


def alert(audit: Audit, model: str) -> Alert:
    """The alert for an audit that was not healthy: critical when degraded, information otherwise."""
    reasons = "; ".join(audit.reasons or audit.insufficient)[:1000]
    return Alert(
        message=f"[{model}] Fairgate audit {audit.date}: {audit.status}. {reasons} Report: {audit.report.uri}"
        + (f" Incident(s) opened: {', '.join(audit.incidents)} (fairgate incidents)." if audit.incidents else ""),
        severity="critical" if audit.status == "degraded" else "info",
        payload={"model": model, "date": audit.date, "status": audit.status, "audit_uri": audit.result.uri},
    )


def retraining_request(audit: Audit) -> dict[str, str] | None:
    """What a degraded audit asks of the lifecycle (the retraining asset's extra), or None for a backfill run:
    backfills rebuild audit history, they do not request retraining."""
    if audit.run_type == "backfill":
        return None
    return {"reason": "; ".join(audit.reasons)[:1000], "audit_date": audit.date, "audit_uri": audit.result.uri}
