"""The candidate on the held-out test rows: performance, fairness with intervals, and the gate.

Pure: frames and fitted models in, the evaluation out. The candidate, its unmitigated twin (when
reweighing ran) and the production model are measured on the same rows, so the comparison in the
report is like for like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.fairness import estimation, gate, subgroups
from fairgate.fairness.metrics import measure, score_disparities
from fairgate.groups import codes_and_labels, comparisons
from fairgate.models import explain, robustness, shapley, training
from fairgate.models import recourse as rc

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from fairgate.contracts import GateOutcome
    from fairgate.fairness.estimation import Calibration
    from fairgate.fairness.gate import FindingJSON
    from fairgate.fairness.metrics import GroupFigures
    from fairgate.fairness.subgroups import Discovery
    from fairgate.policy.schema import Policy


class Evaluation(TypedDict):
    """What the gate measured on the test rows and decided: the run's ``gate.json`` (the run report, the
    model card and the evidence record read it by these keys)."""

    outcome: GateOutcome
    reasons: list[str]
    findings: list[FindingJSON]
    performance: dict[str, Any]  # balanced_accuracy, accuracy, ... (None where undefined)
    fairness: dict[str, GroupFigures]  # per comparison key
    champion: dict[str, Any] | None  # production's performance on the same rows, or why not comparable
    thresholds: dict[str, str]  # metric → its bound in words
    comparison: dict[str, dict[str, Any]]  # candidate / unmitigated / production on the fairness-accuracy plane
    importance: dict[str, explain.Importance]
    measured_on: str
    robustness: robustness.Robustness | None
    recourse: rc.RecourseAudit | None
    calibration: Calibration
    subgroups: Discovery | None
    selection: training.Selection | None
    shapley: shapley.Summary | None


def assess(model: Pipeline, test: pd.DataFrame, policy: Policy) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    """Performance, per-comparison fairness (with intervals) and the 0/1 decisions of ``model`` on ``test``.

    The fairness figures are those of the decisions (:func:`~fairgate.fairness.metrics.measure`) and of
    the scores: ROC AUC and calibration per side (:func:`~fairgate.fairness.metrics.score_disparities`).
    """

    codes, y = codes_and_labels(test, policy)
    scores, pred = training.predict(model, test, policy)
    cutoff = training.rank_cutoff(scores, policy, day=False)
    if cutoff is not None:  # decisions made by rank: the selection this model makes of these rows
        pred = (scores >= cutoff).astype("int8")
    comps, level = comparisons(policy), policy.fairness.confidence_level
    fairness = measure(codes, y, pred, comps, confidence=level)
    for key, figures in score_disparities(codes, y, scores, comps, confidence=level).items():
        fairness[key]["metrics"].update(figures["metrics"])
    return training.performance(y, scores, pred), fairness, pred


def position(perf: dict[str, Any], fair: dict[str, Any]) -> dict[str, Any]:
    """Where a model sits on the fairness-accuracy plane: its performance and each metric's value."""
    return {**perf, "fairness": {k: {m: v["value"] for m, v in r["metrics"].items()} for k, r in fair.items()}}


def not_comparable(production: Pipeline, policy: Policy) -> str | None:
    """Why the production model cannot be scored on this policy's rows (it needs inputs the policy dropped)."""
    lacking = sorted(set(getattr(production, "feature_names_in_", ())) - set(policy.features))
    return f"it needs input columns {lacking} that the policy no longer names" if lacking else None


def evaluate(
    test: pd.DataFrame,
    candidate: Pipeline,
    policy: Policy,
    *,
    unmitigated: Pipeline | None = None,
    production: tuple[str, Pipeline] | None = None,
    proxies: dict[str, list[str]] | None = None,
    recourse_scale: dict[str, float] | None = None,
    training_rows: pd.DataFrame | None = None,
) -> Evaluation:
    """Measure the candidate (and its comparators) on ``test`` and decide pass / fail / review.

    ``proxies`` (inputs the proxy check flagged, per protected attribute) are flipped with their
    attribute by the counterfactual check when the policy enables robustness. ``training_rows`` are the
    background of the candidate's Shapley values (not measured without them).
    """
    import numpy as np

    cutoff = None
    if policy.model.selection != "threshold":  # robustness, recourse and the rest judge the rank selection
        cutoff = training.rank_cutoff(training.predict(candidate, test, policy)[0], policy, day=False)
        policy = training.at_cutoff(policy, cutoff)
    perf, fairness, pred = assess(candidate, test, policy)
    compared = {"candidate": position(perf, fairness)}
    importance = {"candidate": explain.importance(candidate, test, policy)}
    if unmitigated is not None:
        compared["unmitigated"] = position(*assess(unmitigated, test, policy)[:2])
        importance["unmitigated"] = explain.importance(unmitigated, test, policy)
    champion = None
    if production is not None:
        version, model = production
        why = not_comparable(model, policy)
        if why:
            champion = {"version": version, "not_comparable": why}
        else:
            p_perf, p_fair, _ = assess(model, test, policy)
            champion = {"version": version, **p_perf}
            compared["production"] = {"version": version, **position(p_perf, p_fair)}
    robust = None
    if policy.robustness.enabled:
        robust = robustness.measure(candidate, test, policy, proxies=proxies)
    recourse = None
    if policy.recourse.actionable and policy.recourse.max_share_gap is not None and recourse_scale:
        flagged = sorted({c for cols in (proxies or {}).values() for c in cols})
        recourse = rc.audit(
            candidate,
            test,
            pred,
            policy,
            scale=recourse_scale,
            proxies=flagged,
            sample=policy.recourse.audit_sample,
            seed=policy.model.seed,
        )

    codes, y = codes_and_labels(test, policy)
    calibration = estimation.calibration_by_group(
        codes, training.predict(candidate, test, policy)[0], y, comparisons(policy)
    )
    found = (
        subgroups.discover(test, pred, policy, labels=y, measured_on=f"test split ({len(test)} rows)")
        if policy.subgroups.enabled
        else None
    )
    decision = gate.decide(
        fairness,
        perf,
        policy,
        constant_predictor=len(np.unique(pred)) < 2,
        champion=champion,
        subgroups=found,
        more=[
            *(robustness.gate_findings(robust, policy) if robust is not None else []),
            *(rc.gate_findings(recourse, policy) if recourse is not None else []),
        ],
    )
    return {
        "outcome": decision.outcome,
        "reasons": decision.reasons,
        "findings": decision.as_dict()["findings"],
        "performance": perf,
        "fairness": fairness,
        "champion": champion,
        "thresholds": {t.metric: t.describe() for t in policy.fairness.bounds},
        "comparison": compared,
        "importance": importance,
        "measured_on": f"test split ({len(test)} rows)",
        "robustness": robust,
        "recourse": recourse,
        "calibration": calibration,
        "subgroups": found,
        "selection": None
        if cutoff is None
        else training.Selection(rule=policy.model.selection, cutoff=cutoff, selected=int(pred.sum()), rows=len(test)),
        "shapley": shapley.summary(candidate, test, policy, training_rows, measured_on=f"test split ({len(test)} rows)")
        if policy.shapley.enabled and training_rows is not None
        else None,
    }
