"""The lifecycle stages: the store I/O around the pure domain functions, one function per stage.

Each stage reads its inputs from the artifact store (checked against the sha256 recorded when
they were written), calls one pure function (:mod:`fairgate.data.quality`, :mod:`fairgate.fairness.bias`,
:mod:`fairgate.models.training`, :mod:`fairgate.models.evaluation`), writes what it produced under the run's
prefix and returns a small typed result (:mod:`fairgate.contracts`). What a run concludes is
decided here too (:func:`conclude`), and the evidence record is built from the stored artifacts
(:func:`evidence_record`), so a notebook can run, conclude and record a lifecycle without Airflow.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

from fairgate.contracts import (
    Artifact,
    Bias,
    CandidateResult,
    Decision,
    Deployment,
    GateResult,
    Mitigation,
    Quality,
    Recorded,
    Review,
    RolledBack,
    Snapshot,
    TrainedModel,
)
from fairgate.data import datasheet
from fairgate.data.quality import duplicate_rows, validate_frame
from fairgate.data.sources import read_source, to_parquet_bytes
from fairgate.errors import (
    CODE_VERSION,
    EvidenceIntegrityError,
    InputError,
    MitigationError,
    PromotionConflict,
    RegistryError,
    StageError,
)
from fairgate.fairness import bias
from fairgate.fairness.gate import panel_decision, review_decision, short_of_evidence
from fairgate.governance import approval, evidence, registry
from fairgate.governance.records import (
    DataRef,
    DeploymentRef,
    GateRef,
    LifecycleRecord,
    ModelRef,
    PolicyRef,
    QualityRef,
    Ref,
)
from fairgate.mitigation import search as mitigation
from fairgate.mitigation.search import plan, route_after_bias
from fairgate.models import evaluation, recourse, training
from fairgate.models.evaluation import assess
from fairgate.models.training import assign_split, load_model_bytes, split_frame
from fairgate.policy.rules import check_params
from fairgate.reporting.report import model_card, quality_report, review_body, run_report
from fairgate.storage import layout
from fairgate.storage.base import get_verified, sha256_bytes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.governance.registry import Pointer
    from fairgate.policy.schema import Policy
    from fairgate.storage.base import ArtifactStore, Written

log = logging.getLogger(__name__)

NO_BIAS = "disparity within policy"


@dataclass(frozen=True)
class RunInfo:
    """Which run this is: its DAG id, run id and kind (``manual``, ``scheduled``, ``backfill``), the data
    interval and who triggered it. In Airflow the operators fill it from the task's context."""

    dag_id: str
    run_id: str
    run_type: str = "manual"
    interval_start: datetime | None = None
    interval_end: datetime | None = None
    triggered_by: str | None = None  # the Airflow user who triggered the run (None: the scheduler, or not known)

    @property
    def prefix(self) -> str:
        """Where the run's artifacts live; run ids keep only characters safe in paths and S3 keys."""
        return layout.run_prefix(self.dag_id, self.run_id)

    @property
    def is_backfill(self) -> bool:
        return self.run_type == "backfill"


# --- store I/O shared by the stages --------------------------------------------------------------


def _artifact(written: Written) -> Artifact:
    return Artifact(key=written.key, uri=written.uri, sha256=written.sha256)


def _put_json(store: ArtifactStore, key: str, obj: Any) -> Artifact:
    return _artifact(store.put(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode()))


def _read(store: ArtifactStore, artifact: Artifact, what: str) -> bytes:
    return get_verified(store, artifact.key, artifact.sha256, what=what)


def read_json(store: ArtifactStore, artifact: Artifact, what: str) -> Any:
    return json.loads(_read(store, artifact, what))


def _read_frame(store: ArtifactStore, artifact: Artifact, what: str) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(_read(store, artifact, what)))


def _put_frame(store: ArtifactStore, key: str, df: pd.DataFrame) -> Artifact:
    return _artifact(store.put(key, to_parquet_bytes(df)))


def _load_model(store: ArtifactStore, artifact: Artifact, what: str) -> Any:
    return load_model_bytes(store.get(artifact.key), expected_sha256=artifact.sha256, where=f"{what} {artifact.uri}")


# --- the stages ----------------------------------------------------------------------------------


def collect(store: ArtifactStore, policy: Policy, run: RunInfo) -> Snapshot:
    """Read the source (the run's interval when partitioned) into an immutable Parquet snapshot.

    Only the columns the policy names are kept (row key, features, protected attributes, label);
    one the source lacks is left for the quality gate to name.
    """

    interval = (run.interval_start, run.interval_end) if run.interval_start and run.interval_end else None
    df = read_source(policy, interval=interval)
    dupes = duplicate_rows(df, policy)
    wanted = dict.fromkeys(
        [
            *([policy.dataset.row_key] if policy.dataset.row_key else []),
            *policy.features,
            *policy.protected_columns,
            policy.dataset.label,
        ]
    )
    df = df[[c for c in wanted if c in df.columns]]
    written = store.put_new(f"{run.prefix}/snapshot.parquet", to_parquet_bytes(df))
    period = (interval[0].isoformat(), interval[1].isoformat()) if interval and policy.dataset.partitioned else None
    return Snapshot(
        data=_artifact(written),
        rows=len(df),
        columns=tuple(df.columns),
        source=policy.dataset.source,
        duplicate_rows=dupes,
        period=period,
    )


def validate(store: ArtifactStore, policy: Policy, run: RunInfo, snapshot: Snapshot) -> Quality:
    """Run the quality suite; store the full result (JSON and its page) and return a capped summary."""

    result = validate_frame(
        _read_frame(store, snapshot.data, "snapshot"), policy, duplicate_rows=snapshot.duplicate_rows
    )
    full = _put_json(store, f"{run.prefix}/quality.json", result.as_dict())
    page = _artifact(
        store.put(
            f"{run.prefix}/quality.html",
            quality_report(result, title=f"Data quality — {run.dag_id} {run.run_id}").encode(),
        )
    )
    s = result.summary()
    return Quality(
        passed=s["passed"],
        rows=s["rows"],
        checks=s["checks"],
        failed=s["failed"],
        failures=tuple(s["failures"]),
        failures_not_shown=s["failures_not_shown"],
        result=full,
        page=page,
        snapshot=snapshot,
    )


def check_bias(store: ArtifactStore, policy: Policy, run: RunInfo, quality: Quality) -> Bias:
    """AIF360 dataset metrics per attribute and intersection; ``detected`` if any is outside policy."""
    if not quality.passed:
        raise StageError(
            f"The snapshot failed its quality checks ({'; '.join(quality.failures)}); bias is not measured on it."
        )

    snapshot = quality.snapshot
    df = _read_frame(store, snapshot.data, "snapshot")
    # The split is made here, before any mitigation, so reweighing and the bias figures see the
    # training rows only and the test rows stay unseen until the gate.
    split = assign_split(df, policy)
    stored_split = _put_frame(store, f"{run.prefix}/split.parquet", split_frame(split, df, policy))
    train = df[split == "train"]
    measured = bias.measure(train, policy)
    measured["measured_on"] = f"training rows ({len(train)} of the snapshot's {snapshot.rows})"
    # Said now, not after training: groups the test split is too small for can only end in review.
    measured["short_of_evidence"], _ = short_of_evidence(df[split == "test"], policy, share=1.0)
    written = _put_json(store, f"{run.prefix}/bias.json", measured)
    return Bias(
        detected=measured["detected"],
        reasons=tuple(measured["reasons"]),
        warnings=tuple(measured["warnings"]),
        measured_on=measured["measured_on"],
        result=written,
        split=stored_split,
        quality=quality,
        short_of_evidence=tuple(measured["short_of_evidence"]),
    )


def _training_rows(store: ArtifactStore, bias: Bias) -> tuple[pd.DataFrame, np.ndarray]:
    """The snapshot and its split (as stored by the bias check)."""
    df = _read_frame(store, bias.quality.snapshot.data, "snapshot")
    split = _read_frame(store, bias.split, "split")["split"].to_numpy()
    if len(split) != len(df):
        raise StageError(f"The stored split has {len(split)} rows but the snapshot has {len(df)}.")
    return df, split


class CandidateSpec(TypedDict):
    """One candidate of the search as a mapped task receives it (:class:`fairgate.mitigation.search.Spec`)."""

    name: str
    method: str
    params: dict[str, Any]  # the method's own parameters, as the policy gives them
    estimator: str


class PlannedCandidate(TypedDict):
    """One mapped task's input: its candidate, and the bias result it is fitted on."""

    candidate: CandidateSpec
    bias: dict[str, Any]  # Bias.to_json(): read back with Bias.from_json


def search_plan(store: ArtifactStore, policy: Policy, run: RunInfo, bias: Bias) -> list[PlannedCandidate]:
    """The candidates of the mitigation search: one ``{"candidate": spec, "bias": bias}`` per mapped task.

    Each item carries the bias result it is fitted on, so the mapped task needs no edge from the
    branching bias check (a branch skips every direct downstream task it does not choose).
    """
    from dataclasses import asdict

    if not bias.quality.passed:
        raise StageError("The snapshot failed its quality checks; no mitigation is searched on it.")
    specs = [cast(CandidateSpec, asdict(s)) for s in plan(policy)]
    _put_json(
        store,
        f"{run.prefix}/search_plan.json",
        {"candidates": specs, "bias_detected": bias.detected, "search": policy.mitigation.search},
    )
    return [{"candidate": spec, "bias": bias.to_json()} for spec in specs]


def fit_candidate(
    store: ArtifactStore, policy: Policy, run: RunInfo, bias: Bias, candidate: CandidateSpec | dict[str, Any]
) -> CandidateResult:
    """Fit one candidate on the training rows and measure it on the validation rows (never the test rows).

    A candidate the library cannot fit is returned as ``failed`` with the library's message: the
    search goes on without it.
    """
    import math
    import time

    import pandas as pd

    spec = mitigation.Spec(**candidate)
    df, split = _training_rows(store, bias)
    train, val = df[split == "train"], df[split == "validation"].reset_index(drop=True)
    base: dict[str, Any] = {
        "id": spec.id,
        "name": spec.name,
        "method": spec.method,
        "estimator": spec.estimator,
        "params": check_params(spec.method, spec.params, f"mitigation.candidates[{spec.name}]"),
        "group_aware": spec.group_aware,
    }
    started = time.perf_counter()
    try:
        model, extra = mitigation.fit(spec, train, policy)
    except MitigationError as exc:
        log.warning("Candidate %s failed: %s", spec.id, exc)
        return CandidateResult(**base, status="failed", error=str(exc), fit_s=round(time.perf_counter() - started, 3))
    fit_s = round(time.perf_counter() - started, 3)
    perf, fairness, _ = assess(model, val, policy)
    gap = mitigation.band_gap(fairness, policy)
    prefix = f"{run.prefix}/candidates/{spec.id}"
    stored = _artifact(store.put(f"{prefix}/model.skops", training.dump_model(model)))
    weights = None
    if "weights" in extra:
        rows = train[policy.dataset.row_key].to_numpy() if policy.dataset.row_key else (split == "train").nonzero()[0]
        weights = _put_frame(
            store, f"{prefix}/weights.parquet", pd.DataFrame({"row": rows, "weight": extra["weights"]})
        )
    result = _put_json(
        store,
        f"{prefix}/validation.json",
        {
            **base,
            "measured_on": f"validation split ({len(val)} rows)",
            "performance": perf,
            "fairness": fairness,
            "band_gap": gap if math.isfinite(gap) else None,
            "fit_s": fit_s,
            "method_report": {k: v for k, v in extra.items() if k != "weights"},
        },
    )
    return CandidateResult(
        **base,
        status="fitted",
        model=stored,
        weights=weights,
        result=result,
        balanced_accuracy=perf["balanced_accuracy"],
        band_gap=gap if math.isfinite(gap) else None,
        fit_s=fit_s,
    )


def select_candidate(
    store: ArtifactStore, policy: Policy, run: RunInfo, bias: Bias, candidates: list[CandidateResult]
) -> TrainedModel:
    """Choose among the fitted candidates on their validation figures (the policy's rule) and record the whole search.

    The chosen candidate goes to the gate; ``none`` of the same estimator goes with it as the
    unmitigated comparison. Every candidate, failed ones included, is in ``search.json``.
    """
    import math

    if not candidates:
        raise StageError("The mitigation search produced no candidate results.")
    rows = [
        {
            "id": c.id,
            "status": c.status,
            "balanced_accuracy": c.balanced_accuracy,
            "band_gap": math.inf if c.band_gap is None else c.band_gap,
        }
        for c in candidates
    ]
    choice = mitigation.select(rows, policy.mitigation.selection)
    table = []
    for c in candidates:
        full = read_json(store, c.result, f"validation result of {c.id}") if c.result else {}
        table.append(
            {
                **c.to_json(),
                "chosen": c.id == choice.candidate,
                "within_bands": c.id in choice.within_bands,
                "validation": {
                    "performance": full.get("performance"),
                    "fairness": {k: r["metrics"] for k, r in (full.get("fairness") or {}).items()},
                },
            }
        )
    search = _put_json(
        store,
        f"{run.prefix}/search.json",
        {
            "rule": choice.rule,
            "chosen": choice.candidate,
            "note": choice.note,
            "within_bands": list(choice.within_bands),
            "measured_on": "validation split",
            "candidates": table,
        },
    )
    if choice.candidate is None:
        errors = "; ".join(f"{c.id}: {c.error}" for c in candidates)
        raise StageError(f"Every candidate of the mitigation search failed ({errors}); nothing to evaluate.")
    chosen = next(c for c in candidates if c.id == choice.candidate)
    twin = next(
        (
            c
            for c in candidates
            if c.method == "none" and c.estimator == chosen.estimator and c.status == "fitted" and c.id != chosen.id
        ),
        None,
    )
    assert chosen.model is not None  # fitted
    df, split = _training_rows(store, bias)
    full = read_json(store, chosen.result, "chosen candidate") if chosen.result else {}
    train_rows = {name: int((split == name).sum()) for name in training.SPLITS}
    result = _put_json(
        store,
        f"{run.prefix}/train.json",
        {
            "features": list(policy.features),
            "rows": train_rows,
            "validation": full.get("performance"),
            "reference": training.reference_record(df[split == "train"], policy),
            "weighted": chosen.weights is not None,
            "candidate": chosen.id,
        },
    )
    applied = chosen.method != "none"
    method = f"{mitigation.LIBRARY[chosen.method]}" + (f" {chosen.params}" if chosen.params else "")
    report = full.get("method_report", {})
    if report.get("rows", train_rows["train"]) < train_rows["train"]:
        method += f", fitted on the {report['fitted_on']}"
    after = None
    if chosen.method == "reweighing" and chosen.weights is not None:
        after = _put_json(
            store,
            f"{run.prefix}/mitigation.json",
            {"method": method, "measured_on": bias.measured_on, **full.get("method_report", {}).get("after", {})},
        )
    reason = f"chosen by the mitigation search ({choice.note})"
    reweighed = full.get("method_report", {}).get("after", {})
    mitigation_used = (
        Mitigation(
            applied=True,
            reason=reason,
            method=method,
            weights=chosen.weights,
            result=after,
            max_abs_di_error=reweighed.get("max_abs_di_error"),
        )
        if applied
        else Mitigation.not_applied(reason)
    )
    return TrainedModel(
        model=chosen.model,
        split=bias.split,
        weighted=chosen.weights is not None,
        estimator=chosen.estimator,
        rows=train_rows,
        validation=full.get("performance") or {},
        result=result,
        bias=bias,
        mitigation=mitigation_used,
        unmitigated=twin.model if twin else None,
        search=search,
        group_aware=tuple(policy.protected_columns) if chosen.group_aware else (),
    )


def train(store: ArtifactStore, policy: Policy, run: RunInfo, bias: Bias) -> TrainedModel:
    """Fit the policy's pipeline without mitigation: the route when the bias check found nothing to mitigate."""
    if bias.detected:
        raise StageError(
            "Bias was detected but the model was about to be trained without mitigation: the bias "
            "check's `detected` route must lead to the mitigation search."
        )
    df, split = _training_rows(store, bias)
    fitted = training.train_candidate(df, policy, split)
    model = _artifact(store.put(f"{run.prefix}/model.skops", training.dump_model(fitted["model"])))
    result = _put_json(
        store,
        f"{run.prefix}/train.json",
        {
            "features": list(policy.features),
            "rows": fitted["rows"],
            "validation": fitted["validation"],
            "reference": fitted["reference"],
            "weighted": False,
        },
    )
    return TrainedModel(
        model=model,
        split=bias.split,
        weighted=False,
        estimator=policy.model.estimator,
        rows=fitted["rows"],
        validation=fitted["validation"],
        result=result,
        bias=bias,
        mitigation=Mitigation.not_applied(NO_BIAS),
    )


def evaluate(store: ArtifactStore, policy: Policy, run: RunInfo, trained: TrainedModel) -> GateResult:
    """Measure the candidate on the held-out test rows and decide pass / fail / review."""
    df = _read_frame(store, trained.bias.quality.snapshot.data, "snapshot")
    split = _read_frame(store, trained.split, "split")["split"].to_numpy()
    test = df[split == "test"].reset_index(drop=True)
    current = registry.production_version(store, policy.model_name)
    attributes = (read_json(store, trained.bias.result, "bias result").get("proxies") or {}).get("attributes", {})
    scale = recourse.cost_unit(df[split == "train"], policy)
    result = evaluation.evaluate(
        test,
        _load_model(store, trained.model, "candidate model"),
        policy,
        proxies={col: list(a.get("flagged", [])) for col, a in attributes.items()},
        recourse_scale=scale,
        unmitigated=_load_model(store, trained.unmitigated, "unmitigated model") if trained.unmitigated else None,
        production=(current, registry.load_model(store, policy.model_name, current)) if current else None,
        training_rows=df[split == "train"],
    )
    written = _put_json(store, f"{run.prefix}/gate.json", {**result, "recourse_cost_unit": scale})
    return GateResult(
        champion=current,
        outcome=result["outcome"],
        reasons=tuple(result["reasons"]),
        balanced_accuracy=result["performance"]["balanced_accuracy"],
        result=written,
        trained=trained,
    )


def request_review(
    store: ArtifactStore,
    policy: Policy,
    run: RunInfo,
    gate: GateResult,
    *,
    report_url: str,
    earlier: Review | None = None,
) -> tuple[str, Artifact]:
    """What a reviewer is shown: the Markdown body and the run report as it stands (written first).
    ``earlier``: the panel's answers so far, when ``review.quorum`` asks for more than one."""
    record = evidence_record(store, policy, run, decision="awaiting_review", gate=gate)
    report = _artifact(store.put(f"{run.prefix}/report.html", run_report(record, policy).encode()))
    return review_body(record, policy, report_url=report_url, stored_uri=report.uri, earlier=earlier), report


def bias_route(bias: Bias, policy: Policy) -> tuple[Literal["search", "train"], str]:
    """Where a run goes after its bias check: ``search`` (bias detected, or the policy searches always)
    or ``train``, and why."""
    route, why = route_after_bias(bias.detected, bias.reasons, policy)
    return ("search" if route == "search" else "train"), why


def decide_review(
    policy: Policy,
    run: RunInfo,
    gate: GateResult | None,
    earlier: Review | None,
    *,
    choice: str | None,
    rationale: str | None,
    reviewer: str | None,
    timed_out: bool,
    responded_at: str | None = None,
) -> tuple[Review, Literal["approved", "rejected"]]:
    """One reviewer's answer taken with the panel's ``earlier`` answers (:func:`fairgate.fairness.gate.panel_decision`),
    and where the run goes: ``approved`` when the panel approves (and nothing else the policy asks of a
    promotion is missing) or when more approvals are still needed, else ``rejected``."""
    review = panel_decision(
        earlier,
        review_decision(choice, rationale, reviewer=reviewer, timed_out=timed_out, responded_at=responded_at),
        policy.review,
        triggered_by=run.triggered_by,
        second_person=policy.override_needs_a_second_person,
    )
    counted = len(review.approvals) > len(earlier.approvals if earlier else ())
    more_needed = counted and len(review.approvals) < review.needed
    if review.approved:  # the panel is complete: what else the policy asks of a promotion
        refused = promotion_refusal(policy, gate, review)
        if refused:
            review = dataclasses.replace(review, approved=False, note=refused)
    return review, "approved" if review.approved or more_needed else "rejected"


def recorded_entry(store: ArtifactStore, model: str, run_id: str, seq: int) -> dict[str, Any] | None:
    """The evidence record this run appended as ``seq`` (None when the log's newest for the run is another)."""
    entry = evidence.find(store, model, run_id)
    return None if entry is None or entry["seq"] != seq else dict(entry["record"])


def promotion_refusal(policy: Policy, gate: GateResult | None, review: Review | None) -> str | None:
    """Why the policy does not let this run's model be promoted (None: it may be).

    A reviewer's answer that does not approve, a gate that did not pass with nobody approving; with
    ``review.required: always``, no review at all, or an impact assessment or owners left unanswered;
    a panel short of ``review.quorum`` approvals.
    """
    rules = policy.review
    if review is not None and not review.approved:
        why = f": {review.note}" if review.note else ""
        return f"The reviewer's answer ({review.choice}) does not approve this model{why}."
    if review is None and (gate is None or gate.outcome != "pass"):
        return f"The fairness gate said {gate.outcome if gate else 'nothing'!r} and nobody approved."
    if review is None and policy.override_needs_a_second_person:
        return (
            "This run overrides gate thresholds and policy key 'fairness.overrides' is 'reviewed': a second "
            "person must approve the exception, and nobody did."
        )
    if rules.required == "always":
        if review is None:
            return "Policy key 'review.required' is 'always': a person must approve every promotion, and nobody did."
        missing = policy.unanswered()
        if missing:
            return (
                "Policy key 'review.required' is 'always', and the impact assessment and owners leave "
                f"{len(missing)} question(s) unanswered: {', '.join(missing)}."
            )
    if review is not None and len(set(review.approvals)) < rules.quorum:
        return (
            f"Policy key 'review.quorum' asks for {rules.quorum} approvals by different people; "
            f"{len(set(review.approvals))} counted ({', '.join(review.approvals) or 'none'})."
        )
    return None


def deploy(
    store: ArtifactStore, policy: Policy, run: RunInfo, gate: GateResult, review: Review | None = None
) -> Deployment:
    """Register the approved model and put it in production, evidence first (never from a backfill).

    The order leaves no moment in which production names a version the evidence does not approve:

    1. refuse if production is no longer the champion the gate compared against (the comparison is
       part of the promotion: a run that lost that race must be gated again);
    2. register the version (content-addressed: a retry writes nothing new);
    3. append a ``deployment`` record naming the version, its manifest's sha256, the approval and
       the champion it replaces (keyed by the run: a retry finds it instead of appending twice);
    4. move the pointer by compare-and-swap on the champion the gate compared against.

    Killed after 3, a retry finds its record and the unmoved pointer and moves it; killed after 4,
    a retry finds the pointer already naming this run's version and changes nothing. A record
    whose pointer never moved (the swap lost) approves nothing: serving needs the pointer's run.
    """
    refused = promotion_refusal(policy, gate, review)
    if refused:
        raise StageError(f"{refused} The model is not deployed.")
    trained, snapshot = gate.trained, gate.trained.bias.quality.snapshot
    approver = (review.reviewer or "unknown reviewer") if review else "fairness_gate (automatic)"
    record = evidence_record(store, policy, run, decision="deployed", gate=gate, review=review)
    expected = registry.read_pointer(store, policy.model_name)
    pointer = expected[0]
    done = pointer is not None and pointer["run_id"] == run.run_id and pointer["action"] == "deploy"
    if not done and not run.is_backfill:
        _check_champion(policy, gate, pointer["version"] if pointer else None)
    manifest = registry.register(
        store,
        policy.model_name,
        _read(store, trained.model, "candidate model"),
        {
            "model": policy.model_name,
            "approved": True,
            "approver": approver,
            "review": review.to_json() if review else None,
            "gate_outcome": gate.outcome,
            "gate_reasons": list(gate.reasons),
            "registered_at": datetime.now(UTC).isoformat(),
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "data_sha256": snapshot.data.sha256,
            "data_uri": snapshot.data.uri,
            "data_key": snapshot.data.key,
            "policy_sha256": policy.sha256,
            "code_version": CODE_VERSION,
            "performance": record.performance,
            "fairness": {k: {m: v for m, v in r.items() if m != "counts"} for k, r in (record.fairness or {}).items()},
            "weighted": trained.weighted,
            "estimator": trained.estimator,
            "mitigation": trained.mitigation.method if trained.mitigation.applied else None,
            # The serving contract: a group-aware model needs these columns in every record it scores.
            "decides_with_protected_attributes": list(trained.group_aware),
            "reference": read_json(store, trained.result, "training summary")["reference"],
            # Per group on the test split: whether the audit's label-free estimates may be trusted.
            "calibration": record.calibration,
            # What a numeric change costs in recourse (models.recourse.cost_unit), for the audit and serving.
            "recourse_cost_unit": read_json(store, gate.result, "gate result").get("recourse_cost_unit"),
            # Decisions by rank: the cutoff of the gate's selection, which one-record-at-a-time serving uses.
            "selection": read_json(store, gate.result, "gate result").get("selection"),
            # A manual run's exception to the policy's thresholds, with its reason and who asked for it.
            "threshold_overrides": record.overrides,
            # Who had to approve, what deploying it could do to people, and who answers for it.
            "review_rules": {
                "required": policy.review.required,
                "approvers": list(policy.review.approvers),
                "quorum": policy.review.quorum,
                "separate_from_trigger": policy.review.separate_from_trigger,
            },
            "impact_assessment": {
                "affected_groups": policy.impact_assessment.affected_groups,
                "misuse": policy.impact_assessment.misuse,
                "redress": policy.impact_assessment.redress,
                "severity": policy.impact_assessment.severity,
                "mitigations": list(policy.impact_assessment.mitigations),
            },
            "owners": {
                "retraining": policy.owners.retraining,
                "monitoring": policy.owners.monitoring,
                "complaints": policy.owners.complaints,
            },
        },
        card_md=model_card(record, policy),
    )
    version = manifest["version"]
    bound = registry.manifest_sha256(store, policy.model_name, version)
    if run.is_backfill:
        return Deployment(
            version=version,
            promoted=False,
            previous=pointer["version"] if pointer else None,
            gate=gate,
            review=review,
            note="backfill runs register versions but never move the production pointer",
            manifest_sha256=bound,
        )
    _keep_policy(store, policy, run)  # bound by the deployment record: the policy the version serves under
    intent = approval.deploy_recorded(
        store,
        policy.model_name,
        version,
        run_id=run.run_id,
        dag_id=run.dag_id,
        gate_outcome=gate.outcome,
        replaces=gate.champion,
        approver=approver,
        review=review.to_json() if review else None,
        reason="; ".join(gate.reasons)[:500],
        expected=expected,
    )
    previous = intent["record"]["replaces"]
    return Deployment(
        version=version, promoted=True, previous=previous, gate=gate, review=review, manifest_sha256=bound
    )


def _check_champion(policy: Policy, gate: GateResult, current: str | None) -> None:
    """Production must still be the champion the gate compared the candidate against."""
    if current != gate.champion:
        raise PromotionConflict(
            f"Production of {policy.model_name!r} is {(current or 'nothing')[:12]} but the gate compared this "
            f"candidate against {(gate.champion or 'nothing')[:12]}: another run was promoted in between. "
            "Nothing was deployed; run the lifecycle again so the gate compares against the new champion."
        )


def reject(store: ArtifactStore, policy: Policy, gate: GateResult, review: Review | None = None) -> Deployment:
    """A rejection changes nothing; it reports what stays in production."""
    current = registry.production_version(store, policy.model_name)
    return Deployment(
        version=None, promoted=False, previous=current, gate=gate, review=review, note="rejected: production unchanged"
    )


def conclude(
    *,
    quality: Quality | None = None,
    gate: GateResult | None = None,
    review: Review | None = None,
    deployment: Deployment | None = None,
) -> Decision:
    """What a lifecycle run concluded, from its stage results.

    ``quality_failed`` when the quality gate failed; ``deployed`` when a deployment moved the
    pointer, ``approved_not_promoted`` when it registered a version without moving it (a
    backfill); ``awaiting_review`` while the gate's ``review`` has no answer; else ``rejected``.
    """
    if quality is not None and not quality.passed:
        return "quality_failed"
    if deployment is not None:
        if deployment.version is None:
            return "rejected"
        return "deployed" if deployment.promoted else "approved_not_promoted"
    if gate is not None and gate.outcome == "review" and review is None:
        return "awaiting_review"
    return "rejected"


def rollback(
    store: ArtifactStore,
    policy: Policy,
    *,
    to_version: str | None,
    actor: str,
    reason: str,
    run_id: str,
    dag_id: str | None = None,
) -> RolledBack:
    """Point production back to an earlier approved version and append the evidence record (CLI and DAG)."""
    model = policy.model_name
    pointer, etag = registry.read_pointer(store, model)
    checked = evidence.verify(store, model)
    if not checked.intact_to_head:
        raise EvidenceIntegrityError(
            f"The evidence log of {model!r} does not verify ({'; '.join(checked.problems[:2])}); no rollback "
            "is recorded on it."
        )
    entries = [evidence.entry(store, model, s) for s in range(checked.head, 0, -1)]  # newest first
    # Without --to: the version before the newest promotion, as the chain says (the pointer's history is
    # a convenience copy a store writer could edit).
    newest = approval.newest_promotion(entries)
    current = approval.promoted_version(newest["record"]) if newest else pointer["version"] if pointer else None
    # A promotion recorded by an earlier release bound no files: a person may promote that version again
    # (a rollback "to" it binds its files now, after checking its manifest against the old record).
    rebind = newest is not None and not isinstance(newest["record"].get("files"), dict) and to_version == current
    target = (
        to_version if rebind else registry.rollback_target(current, to_version or approval.previous_version(entries))
    )
    assert target is not None
    assert current is not None  # rollback_target refuses a model with nothing in production
    if not actor.strip():
        raise InputError("A rollback names the person who asks for it (its actor); it was blank.")
    if not approval.was_deployed(entries, target):
        raise RegistryError(
            f"Version {target[:12]} of {model!r} was never approved through a recorded deployment; only a "
            "version a recorded, approved run put in production can be rolled back to."
        )
    files = approval.rollback_binding(store, model, entries, target)
    why = reason or "(no reason given)"
    record = {
        "kind": "rollback",
        "model_name": model,
        "run_id": run_id,
        "dag_id": dag_id,
        "decision": "rolled_back",
        "from_version": current,
        "to_version": target,
        "manifest_sha256": files[approval.MANIFEST]["sha256"],
        "files": files,
        "actor": actor,
        "reason": why,
    }
    recorded = newest["record"].get("pointer") if newest else None  # the last pointer a record wrote
    moved = registry.next_pointer(
        store,
        model,
        target,
        current=cast("Pointer", recorded) if isinstance(recorded, dict) else pointer,
        action="rollback",
        run_id=run_id,
        actor=actor,
        reason=why,
    )
    entry = approval.promote_recorded(
        store, model, record, moved, key=f"{dag_id}/{run_id}/rollback/{target}", expected=(pointer, etag)
    )
    moved = entry["record"]["pointer"]
    shown = ("model_name", "run_id", "dag_id", "from_version", "to_version", "actor", "reason")
    return RolledBack.from_json({**{k: record[k] for k in shown}, "since": moved["since"], "seq": entry["seq"]})


# --- evidence ------------------------------------------------------------------------------------


def evidence_record(
    store: ArtifactStore,
    policy: Policy,
    run: RunInfo,
    *,
    decision: Decision,
    quality: Quality | None = None,
    gate: GateResult | None = None,
    review: Review | None = None,
    deployment: Deployment | None = None,
) -> LifecycleRecord:
    """The DESIGN §7 evidence record of one lifecycle run, read from the artifacts the stages stored.

    Give the last result the run reached: ``deployment`` (it carries the gate result and the
    review), or ``gate`` (and ``review``) before a deployment, or ``quality`` alone when the run
    stopped at the quality gate.
    """
    if deployment is not None:
        gate, review = deployment.gate, deployment.review
    trained = gate.trained if gate else None
    bias = trained.bias if trained else None
    mitigation = trained.mitigation if trained else None
    quality = bias.quality if bias else quality
    snapshot = quality.snapshot if quality else None
    bias_full = read_json(store, bias.result, "bias result") if bias else {}
    after = read_json(store, mitigation.result, "mitigation result") if mitigation and mitigation.result else {}
    gate_full = read_json(store, gate.result, "gate result") if gate else {}
    fairness = gate and {k: {**r["metrics"], "counts": r["counts"]} for k, r in gate_full["fairness"].items()}
    bias_fields = ("detected", "reasons", "comparisons", "proxies", "warnings", "measured_on", "short_of_evidence")
    return LifecycleRecord(
        kind="lifecycle",
        run_id=run.run_id,
        dag_id=run.dag_id,
        run_type=run.run_type,
        decision=decision,
        model_name=policy.model_name,
        policy=PolicyRef(sha256=policy.sha256, path=policy.path),
        code_version=CODE_VERSION,
        data=snapshot
        and DataRef(
            rows=snapshot.rows,
            sha256=snapshot.data.sha256,
            uri=snapshot.data.uri,
            source=snapshot.source,
            period=list(snapshot.period) if snapshot.period else None,
        ),
        quality=quality
        and QualityRef(
            passed=quality.passed,
            rows=quality.rows,
            checks=quality.checks,
            failed=quality.failed,
            failures=list(quality.failures),
            uri=quality.result.uri,
            html_uri=quality.page.uri,
            page=Ref(uri=quality.page.uri, sha256=quality.page.sha256),
        ),
        bias=bias and {**{k: bias_full.get(k) for k in bias_fields}, "uri": bias.result.uri},
        mitigation=mitigation
        and (
            {
                "applied": True,
                "method": mitigation.method,
                "after": after.get("after"),
                "uri": mitigation.weights and mitigation.weights.uri,
                "sha256": mitigation.weights and mitigation.weights.sha256,
                "max_abs_di_error": mitigation.max_abs_di_error,
                "reason": mitigation.reason,
            }
            if mitigation.applied
            else {"applied": False, "reason": mitigation.reason}
        ),
        search=trained
        and trained.search
        and {**read_json(store, trained.search, "mitigation search"), "uri": trained.search.uri},
        model=trained
        and ModelRef(
            sha256=trained.model.sha256,
            uri=trained.model.uri,
            version=deployment.version if deployment else None,
            weighted=trained.weighted,
            estimator=trained.estimator,
            rows=trained.rows,
            group_aware=list(trained.group_aware),
        ),
        performance=gate and gate_full["performance"],
        fairness=fairness,
        gate=gate
        and GateRef(
            outcome=gate_full["outcome"],
            reasons=gate_full["reasons"],
            uri=gate.result.uri,
            champion=gate_full["champion"],
            thresholds=gate_full["thresholds"],
            measured_on=gate_full.get("measured_on"),
        ),
        overrides=policy.override.model_dump() if policy.override else None,
        comparison=gate and gate_full["comparison"],
        importance=gate and gate_full["importance"],
        robustness=gate and gate_full.get("robustness"),
        recourse=gate and gate_full.get("recourse"),
        calibration=gate and gate_full.get("calibration"),
        subgroups=gate and gate_full.get("subgroups"),
        shapley=gate and gate_full.get("shapley"),
        review=review and review.to_json(),
        deployment=deployment
        and DeploymentRef(
            version=deployment.version,
            promoted=deployment.promoted,
            previous=deployment.previous,
            note=deployment.note,
            manifest_sha256=deployment.manifest_sha256,
        ),
        report=None,
    )


def _keep_policy(store: ArtifactStore, policy: Policy, run: RunInfo) -> dict[str, Any]:
    """The policy file as the run read it, kept beside the run's artifacts (a release binds it, an
    auditor's bundle holds it): the bytes it was parsed from, never the file as it is on disk now."""
    from pathlib import Path

    data = policy.text
    if not data:  # a policy built from a mapping: the file on disk, if it is still the one
        try:
            data = Path(policy.path).read_bytes()
        except OSError:
            return {"kept": False, "note": f"policy file {policy.path} could not be read when the run was recorded"}
        if sha256_bytes(data) != policy.sha256:
            return {"kept": False, "note": "the policy file changed on disk during the run; it was not kept"}
    kept = _artifact(store.put(f"{run.prefix}/policy.yaml", data))
    return {"uri": kept.uri}


def _datasheet(
    store: ArtifactStore, policy: Policy, run: RunInfo, quality: Quality | None, bias: Bias | None
) -> dict[str, Any]:
    """The snapshot's datasheet (Gebru et al.), written beside the run's artifacts."""
    assert quality is not None  # record() refuses a run with neither a deployment nor a quality result
    df = _read_frame(store, quality.snapshot.data, "snapshot")
    split = _read_frame(store, bias.split, "split")["split"].to_numpy() if bias else None
    sheet = datasheet.datasheet(
        df,
        policy,
        snapshot=quality.snapshot.to_json(),
        quality=read_json(store, quality.result, "quality result"),
        split=split,
    )
    md = _artifact(store.put(f"{run.prefix}/datasheet.md", datasheet.markdown(sheet).encode()))
    data = _put_json(store, f"{run.prefix}/datasheet.json", sheet)
    return {
        "uri": md.uri,
        "sha256": md.sha256,
        "json_uri": data.uri,
        "json_sha256": data.sha256,
        "missing": sheet["missing"],
    }


def record(
    store: ArtifactStore,
    policy: Policy,
    run: RunInfo,
    *,
    quality: Quality | None = None,
    deployment: Deployment | None = None,
) -> Recorded:
    """Conclude the run, write its report (and model card when a model was trained), append the record.

    ``deployment`` (deployed or rejected) for a run that reached a decision on a model; ``quality``
    alone for a run that stopped at the quality gate.
    """
    if deployment is None and quality is None:
        raise StageError("Nothing to record: neither a deployment decision nor a quality result reached this stage.")
    decision = conclude(quality=quality, deployment=deployment)
    rec = evidence_record(store, policy, run, decision=decision, quality=quality, deployment=deployment)
    bias = deployment.gate.trained.bias if deployment is not None else None
    rec = rec.with_pages(
        policy={**rec.policy.to_json(), **_keep_policy(store, policy, run)},
        datasheet=_datasheet(store, policy, run, bias.quality if bias else quality, bias),
    )
    report = _artifact(store.put(f"{run.prefix}/report.html", run_report(rec, policy).encode()))
    rec = rec.with_pages(report={"uri": report.uri, "sha256": report.sha256})
    card = None
    if rec.model:
        card = _artifact(store.put(f"{run.prefix}/model_card.md", model_card(rec, policy).encode()))
        rec = rec.with_pages(model_card={"uri": card.uri, "sha256": card.sha256})
    entry = evidence.append(
        store, policy.model_name, rec.to_json(), key=f"{run.dag_id}/{run.run_id}/lifecycle/{decision}"
    )
    return Recorded(seq=entry["seq"], hash=entry["hash"], decision=decision, report=report, model_card=card)


def record_failure(
    store: ArtifactStore, policy: Policy, run: RunInfo, *, quality: Quality | None, failures: list[dict[str, str]]
) -> Recorded:
    """A run that failed after the quality gate leaves a record too: ``decision: failed``, with each
    failed stage and what it raised, its data and quality, and a report page saying so."""
    if not failures:
        raise StageError("Nothing failed: record_failure runs only when a stage of the run failed.")
    rec = evidence_record(store, policy, run, decision="failed", quality=quality)
    rec = rec.with_pages(
        policy={**rec.policy.to_json(), **_keep_policy(store, policy, run)},
        failures=[{"task": str(f["task"]), "error": str(f["error"])[:2000]} for f in failures],
    )
    report = _artifact(store.put(f"{run.prefix}/report.html", run_report(rec, policy).encode()))
    rec = rec.with_pages(report={"uri": report.uri, "sha256": report.sha256})
    entry = evidence.append(store, policy.model_name, rec.to_json(), key=f"{run.dag_id}/{run.run_id}/lifecycle/failed")
    return Recorded(seq=entry["seq"], hash=entry["hash"], decision="failed", report=report, model_card=None)


def run_in_process(store: ArtifactStore, policy: Policy, run: RunInfo) -> Recorded:
    """Every stage of one lifecycle run in this process, in the DAG's order, without Airflow.

    For notebooks, tests and benchmarks. No human is asked: a gate that wants review ends in a
    rejection here, as an unanswered review does in the DAG.

    Parameters
    ----------
    store
        Where the run's artifacts, the registry and the evidence log are written.
    policy
        The model's policy (:func:`fairgate.load_policy`).
    run
        The run's identity: artifacts go under ``runs/<dag_id>/<run_id>``.

    Returns
    -------
    Recorded
        What the run decided (``decision``: deployed, rejected, quality_failed, ...), with the
        evidence record and the run report it wrote.
    """
    snapshot = collect(store, policy, run)
    quality = validate(store, policy, run, snapshot)
    if not quality.passed:
        return record(store, policy, run, quality=quality)

    bias = check_bias(store, policy, run, quality)
    if route_after_bias(bias.detected, bias.reasons, policy)[0] == "search":
        plan = search_plan(store, policy, run, bias)
        fitted = [fit_candidate(store, policy, run, bias, item["candidate"]) for item in plan]
        trained = select_candidate(store, policy, run, bias, fitted)
    else:
        trained = train(store, policy, run, bias)
    gate = evaluate(store, policy, run, trained)
    automatic = gate.outcome == "pass" and not policy.promotion_needs_a_person
    decided = deploy(store, policy, run, gate) if automatic else reject(store, policy, gate)
    return record(store, policy, run, deployment=decided)
