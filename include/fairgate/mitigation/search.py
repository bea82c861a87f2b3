"""The mitigation search: which candidates run, fitting one, and choosing one on the validation split.

Every method comes from the library that implements it: reweighing and the disparate impact
remover from AIF360 (through :mod:`fairgate.fairness.aif360_adapter`), exponentiated gradient and the
threshold optimizer from fairlearn. A candidate is a method with its parameters crossed with
an estimator; ``none``, the same estimator without mitigation, is always a candidate, so every
other is measured against it.

The choice (:func:`select`) reads only validation-split figures. The test split is looked at
once, by the unchanged fairness gate, for the chosen candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fairgate import groups
from fairgate.data import sampling
from fairgate.data.features import feature_frame
from fairgate.errors import InputError, MitigationError
from fairgate.fairness import bias
from fairgate.fairness.aif360_adapter import repair_inputs
from fairgate.fairness.gate import short_groups
from fairgate.fairness.metrics import cell_ids
from fairgate.groups import labels
from fairgate.mitigation.fitted import GroupThresholds, Mixture, RepairedInputs
from fairgate.models import training
from fairgate.policy.rules import GROUP_AWARE_METHODS, check_params

if TYPE_CHECKING:
    import pandas as pd

    from fairgate.policy.schema import Policy

LIBRARY = {
    "none": "no mitigation",
    "reweighing": "reweighing (Kamiran & Calders, AIF360)",
    "disparate_impact_remover": "disparate impact remover (Feldman et al., AIF360)",
    "exponentiated_gradient": "exponentiated gradient reduction (Agarwal et al., fairlearn)",
    "threshold_optimizer": "threshold optimizer (Hardt et al., fairlearn)",
}


@dataclass(frozen=True)
class Spec:
    """One candidate of the search: a method, its parameters and the estimator it mitigates."""

    name: str
    method: str
    params: dict[str, Any]
    estimator: str

    @property
    def id(self) -> str:
        return f"{self.name}.{self.estimator}"

    @property
    def group_aware(self) -> bool:
        return self.method in GROUP_AWARE_METHODS


def plan(policy: Policy) -> list[Spec]:
    """The candidates of the search: ``none`` and each configured method, crossed with the estimators."""
    methods: list[tuple[str, str, dict[str, Any]]] = [("none", "none", {})] + [
        (c.name, c.method, dict(c.params)) for c in policy.mitigation.candidates if c.method != "none"
    ]
    return [
        Spec(name=name, method=method, params=dict(params), estimator=estimator)
        for estimator in policy.mitigation.estimators
        for name, method, params in methods
    ]


def route_after_bias(detected: bool, reasons: tuple[str, ...], policy: Policy) -> tuple[str, str]:
    """``search`` (bias detected, or the policy searches always) or ``train`` (no mitigation), and why."""
    if detected:
        return "search", "; ".join(reasons)
    if policy.mitigation.search == "always":
        return "search", "every disparity is within policy, but 'mitigation.search' is 'always'"
    return "train", "every disparity is within policy"


# --- fitting ---------------------------------------------------------------------------------------


def fit(spec: Spec, train: pd.DataFrame, policy: Policy) -> tuple[Any, dict[str, Any]]:
    """Fit ``spec`` on the training rows; the model and what the method reports about itself.

    A library that cannot fit (an infeasible constraint, a group missing) raises
    :class:`MitigationError` with the library's message.
    """
    params = check_params(spec.method, spec.params, f"mitigation.candidates[{spec.name}].params")
    try:
        if spec.method == "none":
            return training.fit(train, policy, estimator=spec.estimator), {}
        if spec.method == "reweighing":
            weights, after = bias.reweigh(train, policy)
            model = training.fit(train, policy, estimator=spec.estimator, sample_weight=weights)
            return model, {"weights": weights, "after": after}
        if spec.method == "disparate_impact_remover":
            return _fit_repaired(train, policy, spec, params["repair_level"]), {}
        if spec.method == "exponentiated_gradient":
            return _fit_exponentiated_gradient(train, policy, spec, params)
        if spec.method == "threshold_optimizer":
            return _fit_threshold_optimizer(train, policy, spec, params), {}
    except InputError:
        raise
    except (ValueError, ZeroDivisionError, IndexError, KeyError) as exc:
        raise MitigationError(
            f"{spec.method} could not be fitted on the training rows: {type(exc).__name__}: {exc}"
        ) from None
    raise MitigationError(f"unknown method {spec.method!r}")


def _repairable(policy: Policy) -> list[str]:
    return [c for c in policy.numeric if c not in policy.protected_columns]


def _fit_repaired(train: pd.DataFrame, policy: Policy, spec: Spec, level: float) -> Any:

    columns = _repairable(policy)
    if not columns:
        raise MitigationError(
            "the disparate impact remover repairs numeric inputs and the policy names none (besides protected columns)"
        )
    X = feature_frame(train, policy)
    repaired = repair_inputs(X, groups.group_labels(train, policy), columns, level)
    pipeline = training.build_pipeline(policy, estimator=spec.estimator)
    pipeline.fit(repaired, labels(train, policy))
    return RepairedInputs(pipeline, float(level), columns, list(policy.protected_columns))


def _fit_exponentiated_gradient(
    train: pd.DataFrame, policy: Policy, spec: Spec, params: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """fairlearn's exponentiated gradient on the encoded training rows (a sample above ``sampling.max_rows``).

    The reduction refits the classifier once per iteration (20 to 50 times), so its cost is that
    of 50 fits; above ``sampling.max_rows`` it runs on a sample stratified by joint group and
    label, whose constraint estimates are within about 1/sqrt(rows per group) of the full
    training rows'. The mixture it returns is measured on the full validation and test splits.
    """
    import numpy as np
    from fairlearn.reductions import (
        DemographicParity,
        EqualizedOdds,
        ExponentiatedGradient,
        TruePositiveRateParity,
    )

    constraint = {
        "demographic_parity": DemographicParity,
        "equalized_odds": EqualizedOdds,
        "true_positive_rate_parity": TruePositiveRateParity,
    }[params["constraint"]]()
    of = len(train)
    y = labels(train, policy)
    keep = sampling.stratified(
        cell_ids(groups.group_codes(train, policy)) * 2 + y, policy.sampling.max_rows, seed=policy.model.seed
    )
    if keep is not None:
        train, y = train.iloc[keep], y[keep]
    features = training.build_pipeline(policy, estimator=spec.estimator).named_steps["features"]
    encoded = features.fit_transform(feature_frame(train, policy))
    reduction = ExponentiatedGradient(
        _rows_of(encoded, training.classifier_for(policy, spec.estimator)),
        constraints=constraint,
        eps=float(params["eps"]),
        max_iter=int(params["max_iter"]),
    )
    reduction.fit(np.arange(len(train)).reshape(-1, 1), y, sensitive_features=groups.group_labels(train, policy))
    kept = [(clf.fitted_, float(w)) for clf, w in zip(reduction.predictors_, reduction.weights_, strict=True) if w > 0]
    if not kept:
        raise MitigationError("exponentiated gradient returned no predictor with positive weight")
    return (
        Mixture(features, [c for c, _ in kept], [w for _, w in kept]),
        {
            "predictors": len(kept),
            "iterations": int(reduction.n_oracle_calls_),
            "rows": len(train),
            "fitted_on": sampling.described(len(train), of, "training rows"),
        },
    )


def _rows_of(encoded: Any, classifier: Any) -> Any:
    """``classifier`` behind row numbers: fit and predict on ``encoded`` rows by position.

    fairlearn's reductions accept only dense inputs; the one-hot encoding is sparse, and a
    logistic regression fits about four times faster on it. The reduction sees an ``(n, 1)``
    array of row numbers, which it can slice and pass on; the rows themselves stay sparse. The
    class is made here so each copy fairlearn clones shares ``encoded`` rather than copying it.
    """
    from sklearn.base import BaseEstimator, ClassifierMixin, clone

    class RowsOf(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn ships no type stubs
        def __init__(self, classifier: Any = None) -> None:
            self.classifier = classifier

        def fit(self, rows: Any, y: Any, sample_weight: Any = None) -> RowsOf:
            self.fitted_ = clone(self.classifier).fit(encoded[rows[:, 0]], y, sample_weight=sample_weight)
            self.classes_ = self.fitted_.classes_
            return self

        def predict(self, rows: Any) -> Any:
            return self.fitted_.predict(encoded[rows[:, 0]])

    return RowsOf(classifier)


def _fit_threshold_optimizer(train: pd.DataFrame, policy: Policy, spec: Spec, params: dict[str, Any]) -> Any:
    from fairlearn.postprocessing import ThresholdOptimizer

    scorer = training.fit(train, policy, estimator=spec.estimator)
    optimizer = ThresholdOptimizer(
        estimator=scorer,
        constraints=params["constraint"],
        objective=params["objective"],
        prefit=True,
        predict_method="predict_proba",
    )
    optimizer.fit(
        feature_frame(train, policy),
        labels(train, policy),
        sensitive_features=groups.group_labels(train, policy),
    )
    rules = {}
    for group, rule in optimizer.interpolated_thresholder_.interpolation_dict.items():
        if "p_ignore" in rule and rule.p_ignore:
            raise MitigationError(
                "the threshold optimizer returned a rule with a constant part (p_ignore), "
                "which this version does not store"
            )
        rules[str(group)] = [
            float(rule.p0),
            rule.operation0.operator,
            float(rule.operation0.threshold),
            float(rule.p1),
            rule.operation1.operator,
            float(rule.operation1.threshold),
        ]
    return GroupThresholds(scorer, rules, list(policy.protected_columns))


# --- choosing on the validation split -------------------------------------------------------------


def band_gap(fairness: dict[str, Any], policy: Policy) -> float:
    """How far the intervals lie outside the gate's bands, summed over comparisons and metrics.

    0 when every interval is inside every band; infinite when a metric has no finite interval or a
    group is short of evidence (nothing can be said to be inside).
    """
    gap = 0.0
    for res in fairness.values():
        if short_groups(res["counts"], policy):
            return math.inf
        for t in policy.fairness.bounds:
            m = res["metrics"].get(t.metric, {})
            low, high = m.get("ci_low"), m.get("ci_high")
            if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
                return math.inf
            lo_b, hi_b = t.band
            gap += max(0.0, lo_b - low) + max(0.0, high - hi_b)
    return gap


@dataclass(frozen=True)
class Choice:
    candidate: str | None  # the chosen candidate's id; None when every candidate failed
    within_bands: tuple[str, ...]  # candidates whose validation intervals lie inside every band
    rule: str
    note: str


def select(results: list[dict[str, Any]], rule: str) -> Choice:
    """Choose a candidate from validation results, by the policy's ``rule``.

    Each result has ``id``, ``status`` (``fitted`` or ``failed``), and for fitted ones
    ``balanced_accuracy`` and ``band_gap`` (validation split). ``balanced_accuracy_within_bands``:
    the highest balanced accuracy among those with gap 0; with none inside, the smallest gap
    (flagged in ``note``). ``closest_to_bands``: the smallest gap, ties broken by balanced
    accuracy. Remaining ties go to the earlier candidate.
    """
    fitted = [r for r in results if r["status"] == "fitted"]
    inside = tuple(r["id"] for r in fitted if r["band_gap"] == 0.0)
    if not fitted:
        return Choice(None, (), rule, "no candidate could be fitted")

    def accuracy(r: dict[str, Any]) -> float:
        ba = r["balanced_accuracy"]
        return -math.inf if ba is None else float(ba)

    closest = min(fitted, key=lambda r: (r["band_gap"], -accuracy(r)))
    if all(math.isinf(r["band_gap"]) for r in fitted):  # nothing to compare: say so, and what decided
        return Choice(
            closest["id"],
            (),
            rule,
            "the validation split cannot judge fairness (a group is short of evidence or a metric has no "
            "interval there, for every candidate): chosen by balanced accuracy alone (flagged); "
            "`fairgate policy check --data` sizes the validation groups",
        )
    if rule == "closest_to_bands":
        return Choice(closest["id"], inside, rule, "closest to the bands on the validation split")
    if inside:
        best = max((r for r in fitted if r["id"] in inside), key=accuracy)
        return Choice(
            best["id"],
            inside,
            rule,
            f"{len(inside)} of {len(fitted)} candidates inside every band on the validation split; "
            "the highest balanced accuracy among them",
        )
    return Choice(
        closest["id"],
        inside,
        rule,
        "no candidate inside every band on the validation split: the closest to the bands (flagged)",
    )
