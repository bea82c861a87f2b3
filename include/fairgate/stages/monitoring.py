"""The monitoring stages: the store I/O around scoring and the audit, one function per stage.

:func:`score` scores a day's incoming records with the production model into the prediction
log; :func:`audit` measures the window ending on a day and stores the audit, its page and its
evidence record. The computation is in :mod:`fairgate.monitoring.scoring` and :mod:`fairgate.monitoring.audit`, the
storage in :mod:`fairgate.monitoring.prediction_log`, the page in :mod:`fairgate.reporting.report`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.contracts import Audit
from fairgate.errors import CODE_VERSION, StageError
from fairgate.governance import approval, evidence, incidents, registry
from fairgate.models import recourse
from fairgate.models.training import reference_record
from fairgate.monitoring import cases, log_table, prediction_log, retention, scoring, served_log, sql_audit
from fairgate.monitoring.audit import AuditResult, changes_since, measure_window, with_recourse
from fairgate.monitoring.review_triggers import training_ranges
from fairgate.reporting.report import audit_report
from fairgate.storage import layout

if TYPE_CHECKING:
    import pandas as pd

    from fairgate.policy.schema import Policy
    from fairgate.storage.base import ArtifactStore

logger = logging.getLogger(__name__)


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
    _, training_rows = prediction_log.deployment_baseline(store, policy, version)
    unseen = scoring.unseen_categories(records, training_rows, policy) if training_rows is not None else {}
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
        log_table.write_day(policy, day, log, outcomes)
    out = {
        "day": day.isoformat(),
        "rows": len(log),
        "model_version": version,
        "uri": written.uri,
        "sha256": written.sha256,
        "selection_rate": float(log["decision"].mean()),
    }
    if unseen:  # scored as the model scores any category it never saw (no effect of its own), and said so
        out["unseen_categories"] = unseen
        logger.warning(
            "Scored %s records of %s with categories the model never saw in training: %s", len(records), day, unseen
        )
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


class Ingested(TypedDict):
    """What one ingestion of served decisions did (the ``fairgate_ingest`` DAG's summary)."""

    compacted: list[served_log.Compacted]
    new_decisions: int  # served decisions ingested by this run
    since_trigger: int  # ingested since the served-decisions asset was last updated (after this run)
    trigger: bool  # this run reached ``audit.min_new_decisions``: the asset is updated, an audit starts
    review_cases: list[str]  # review cases opened or still open for served decisions


class IngestState(TypedDict):
    since_trigger: int
    mark: str | None  # with audit.log_table: the time of the newest served decision ingested


def ingest_state_key(model: str) -> str:
    return f"{layout.model_prefix('ingest', model)}state.json"


def ingest(store: ArtifactStore, policy: Policy, *, run_id: str) -> Ingested:
    """Ingest the decisions served since the last run: compact each day's parts (the review cap applied,
    :func:`fairgate.monitoring.served_log.compact`), open a review case for each decision queued for
    review, and say whether ``audit.min_new_decisions`` have arrived since the audit was last triggered.

    With ``audit.log_table`` the decisions are already in the table: the run reads those served
    since its last mark (their time), and queues the flagged ones while the day's cap has room.
    """
    import json

    state: IngestState = {"since_trigger": 0, "mark": None}
    key = ingest_state_key(policy.model_name)
    if store.exists(key):
        stored = json.loads(store.get(key))
        state = {"since_trigger": int(stored.get("since_trigger", 0)), "mark": stored.get("mark")}
    compacted: list[served_log.Compacted] = []
    review_cases: list[str] = []
    new_total = 0
    if policy.audit.log_table:
        rows = log_table.online_since(policy, state["mark"])
        new_total = len(rows)
        if new_total:
            state["mark"] = str(rows["scored_at"].max())
            if policy.reviews_before_harm:
                review_cases = _queue_online_in_sql(store, policy, rows)
    else:
        rules = served_log.rules_for(store, policy)
        for day in served_log.days_with_parts(store, policy.model_name):
            d = date.fromisoformat(day)
            batch_queue = prediction_log.review_queue_key(policy.model_name, d)
            pending = 0
            if store.exists(batch_queue):
                queue = prediction_log.read_frame(store, batch_queue)
                pending = int((queue["review_status"] == "pending").sum())
            done, new = served_log.compact(store, policy, d, rules=rules, batch_pending=pending)
            compacted.append({**done, "merged": {}})  # the summary stays small: the record binds the parts
            if done["merged"] or done["quarantined"]:  # the day's parts bound by hash, and what was set aside
                evidence.append(
                    store,
                    policy.model_name,
                    {
                        "kind": "compaction",
                        "run_id": run_id,
                        "day": done["day"],
                        "file": done["key"] and {"key": done["key"], "sha256": done["sha256"]},
                        "parts": done["merged"],
                        "decisions": done["decisions"],
                        "quarantined": done["quarantined"],
                    },
                    key=f"ingest/{run_id}/compaction/{done['day']}",
                )
            new_total += done["decisions"]
            if len(new) and "review_status" in new.columns:
                review_cases += cases.open_reviews(store, policy, d, prediction_log.review_queue(policy, new))
    since = state["since_trigger"] + new_total
    trigger = since >= policy.audit.min_new_decisions
    state["since_trigger"] = 0 if trigger else since
    store.put(key, json.dumps({**state, "run_id": run_id}, sort_keys=True).encode())
    return {
        "compacted": compacted,
        "new_decisions": new_total,
        "since_trigger": since,
        "trigger": trigger,
        "review_cases": review_cases,
    }


def _queue_online_in_sql(store: ArtifactStore, policy: Policy, rows: pd.DataFrame) -> list[str]:
    """Review cases for the flagged served decisions in ``rows``, per day while its cap has room."""
    opened: list[str] = []
    flagged = rows[rows["review_status"] == "pending"]
    for day, of_day in flagged.groupby(flagged["scored_on"].astype(str)):
        queued = sum(1 for c in cases.cases_of(store, policy.model_name) if c["kind"] == "review" and c["date"] == day)
        room = max(policy.review_triggers.daily_cap - queued, 0)
        queue = prediction_log.review_queue(policy, of_day)
        hold = policy.review_triggers.above_cap == "hold"
        queue.loc[queue.index[room:], "review_status"] = "over_cap"
        opened += cases.open_reviews(store, policy, date.fromisoformat(day), queue if hold else queue.head(room))
    return opened


def audit_day(store: ArtifactStore, policy: Policy, day: date, *, run_id: str) -> AuditResult:
    """Measure the window ending ``day`` and classify it healthy / degraded / insufficient evidence."""
    fetched = prediction_log.fetch_outcomes(store, policy, day)
    if policy.audit.log_table:
        return _audit_in_sql(store, policy, day, run_id=run_id, fetched=fetched)
    quarantined: list[served_log.Quarantined] = []
    df, days, versions = prediction_log.read_window(
        store,
        policy.model_name,
        day,
        policy.audit.window_days,
        row_key=policy.dataset.row_key or "",
        label_lag_days=policy.audit.label_lag_days,
        case_outcomes=cases.outcomes_by_day(store, policy.model_name),
        rules=served_log.rules_for(store, policy),
        quarantined=quarantined,
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
        return _with_losses(
            store,
            policy,
            {
                **base,
                "status": "insufficient_evidence",
                "reasons": ["no predictions in the window"],
                "rows": 0,
                "labeled_rows": 0,
            },
            quarantined,
        )
    manifest, snapshot = prediction_log.deployment_baseline(store, policy, versions[-1])
    result: AuditResult = {**base, **measure_window(df, versions, policy, manifest=manifest, training=snapshot)}
    result["channels"] = {str(k): int(v) for k, v in df["channel"].value_counts().sort_index().items()}
    result = _with_losses(store, policy, result, quarantined)
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
        result = with_recourse(result, found, policy)
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


def _with_losses(
    store: ArtifactStore, policy: Policy, result: AuditResult, quarantined: list[served_log.Quarantined] | None = None
) -> AuditResult:
    """The count of served decisions answered but not logged in the window, and the served-log files set
    aside as failing a check, each said as a reason to look."""
    moved = list(quarantined or [])
    lost = served_log.losses(store, policy.model_name, result.get("window_days", []), moved)
    result["unlogged_decisions"] = lost
    result["quarantined"] = moved
    if lost:
        result["insufficient"] = [
            *result.get("insufficient", []),
            f"{lost} served decision(s) in the window were answered but not logged (audit.on_log_failure: answer): "
            "the figures leave them out",
        ]
    if moved:
        result["insufficient"] = [
            *result.get("insufficient", []),
            f"{len(moved)} served-log file(s) failed a check and were quarantined, their decisions left out: "
            + "; ".join(f"{q['key'].rsplit('/', 1)[-1][:40]} ({q['why']})" for q in moved[:5]),
        ]
    return result


def open_incidents(
    store: ArtifactStore, policy: Policy, result: AuditResult, *, run_type: str
) -> list[incidents.Incident]:
    """The incidents the policy opens for one audit: degraded, or reviews overturned too often. A
    backfill rebuilds history and opens none."""
    if run_type == "backfill":
        return []
    rules, out = policy.incidents, []
    day, version = str(result["date"]), result.get("judged_version")
    if rules.open_on_degraded_audit and result["status"] == "degraded":
        out.append(
            incidents.open_incident(
                store, policy, source="audit_degraded", link=f"audit {day}", seen=result["reasons"], version=version
            )
        )
    queue = result.get("review_queue") or {}
    reviewed, overturned = int(queue.get("reviewed") or 0), int(queue.get("overturned") or 0)
    if rules.max_overturn_rate is not None and reviewed and overturned / reviewed > rules.max_overturn_rate:
        seen = [
            f"reviewers overturned {overturned} of {reviewed} reviewed decisions ({overturned / reviewed:.1%}) in the "
            f"window ending {day}, above incidents.max_overturn_rate {rules.max_overturn_rate:g}"
        ]
        out.append(
            incidents.open_incident(
                store, policy, source="overturn_rate", link=f"audit {day}", seen=seen, version=version
            )
        )
    return out


def audit(store: ArtifactStore, policy: Policy, day: date, *, run_id: str, run_type: str = "manual") -> Audit:
    """The audit stage: measure the window ending ``day``, write its report, store it and append the evidence."""
    result = audit_day(store, policy, day, run_id=run_id)
    trend = prediction_log.audit_trend(store, policy.model_name, result)
    page = audit_report(result, trend, list(policy.fairness.bounds))
    saved = prediction_log.save_audit(store, policy.model_name, result, report_html=page)
    opened = open_incidents(store, policy, result, run_type=run_type)
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


# --- the steps a person takes part in: a contest decided, incidents past their clock, retention --------


def contest_request(store: ArtifactStore, policy: Policy, case_id: str) -> tuple[cases.Case, cases.ReviewRequest]:
    """The open case and what its reviewer is asked (refused when the case was already decided)."""
    case = cases.read(store, policy.model_name, case_id)
    return case, cases.review_request(case, policy)


class ContestDecided(TypedDict):
    """What a reviewer's answer to a case recorded: the outcome's evidence entry, and the incident the
    reviewer reported with it, if any."""

    case_id: str
    choice: str
    final_decision: int
    seq: int
    incident: incidents.Incident | None


def decide_contest(
    store: ArtifactStore,
    policy: Policy,
    case_id: str,
    *,
    choice: str | None,
    rationale: str | None,
    reviewer: str | None,
    timed_out: bool,
    report_incident: bool = False,
) -> ContestDecided:
    """Record the reviewer's outcome of a case (:func:`fairgate.monitoring.cases.decide`); with
    ``report_incident`` (and an answer in time), also open an incident record linked to the case."""
    outcome = cases.decide(
        store, policy, case_id, choice=choice, rationale=rationale, reviewer=reviewer, timed_out=timed_out
    )
    opened = None
    if report_incident and not timed_out:
        case = cases.read(store, policy.model_name, case_id)
        opened = incidents.open_incident(
            store,
            policy,
            source="reported",
            link=f"case {case_id}",
            seen=[f"reviewer of case {case_id} ({case['row']}, {case['date']}): {rationale or ''}"],
            opened_by=reviewer or "a reviewer",
            version=case["model_version"],
        )
    return {
        "case_id": outcome["case_id"],
        "choice": outcome["choice"],
        "final_decision": outcome["final_decision"],
        "seq": int(outcome.get("seq", 0)),
        "incident": opened,
    }


class Deadlines(TypedDict):
    """The incidents of a model past their reporting deadline (each recorded overdue once), in words,
    and how many are open."""

    overdue: list[str]
    open: int


def incident_deadlines(store: ArtifactStore, model: str) -> Deadlines:
    """Record every open incident past its deadline as overdue (once) and describe each."""
    overdue = incidents.sweep(store, model)
    still_open = [i for i in incidents.incidents(store, model) if i["status"] == "open"]
    return {"overdue": [incidents.describe(i) for i in overdue], "open": len(still_open)}


def apply_retention(store: ArtifactStore, policy: Policy, today: date, *, run_id: str) -> retention.Retention:
    """Remove the prediction-log days past ``audit.retention_days`` and record it
    (:func:`fairgate.monitoring.retention.apply`)."""
    return retention.apply(store, policy, today, run_id=run_id)
