"""Robustness of the candidate's decisions on the test rows: small input noise, and flipped groups.

Two checks, each a share of decisions with a Wilson interval, gated like any fairness metric
(:func:`fairgate.fairness.gate.decide`):

- **Decision stability**: every numeric input is moved by Gaussian noise with a standard
  deviation of ``perturbation_scale`` times that column's standard deviation on the test rows,
  ``repeats`` times with a fixed seed. A row *flips* if its decision changes in any repeat (so
  each row counts once and the rows are independent). Reported per protected group and overall.
- **Counterfactual flip**: for each protected attribute, every row's attribute value (and, with
  ``flip_proxies``, the value of each input the proxy check flagged for it) is replaced by the
  other group's typical value: the most frequent one for a categorical column, the median for a
  numeric one. The share of decisions that change is reported per attribute and per side. A model
  that reads neither the attribute nor a proxy changes no decision, and the result says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.fairness.gate import Finding, judge_metric
from fairgate.fairness.metrics import wilson_interval
from fairgate.groups import is_numeric, privileged_codes
from fairgate.models.training import predict
from fairgate.policy.schema import Threshold
from fairgate.values import plain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.policy.schema import Policy


class Flips(TypedDict):
    """How many of ``n`` decisions changed, as a share with its Wilson interval (None when ``n`` is 0)."""

    n: int
    changed: int
    value: float | None
    ci_low: float | None
    ci_high: float | None


class Stability(TypedDict):
    columns: list[str]
    scale: float
    repeats: int
    overall: Flips
    groups: dict[str, Flips]  # per group side, e.g. ``sex=privileged``
    note: str | None


class Counterfactual(TypedDict, total=False):
    """One protected attribute's counterfactual check (``note`` alone when there was nothing to flip)."""

    columns: list[str]
    swapped: dict[str, dict[str, Any]]
    overall: Flips
    privileged: Flips
    unprivileged: Flips
    note: str | None


class Robustness(TypedDict):
    measured_on: str
    stability: Stability
    counterfactual: dict[str, Counterfactual]
    max_flip_rate: float
    max_counterfactual_rate: float


def _share(hits: np.ndarray, confidence: float) -> Flips:
    n, k = int(hits.size), int(hits.sum())
    low, high = wilson_interval(k, n, confidence)
    return {
        "n": n,
        "changed": k,
        "value": k / n if n else None,
        "ci_low": low if n else None,
        "ci_high": high if n else None,
    }


def stability(model: Any, test: pd.DataFrame, policy: Policy, *, scale: float, repeats: int, seed: int) -> Stability:
    """Share of decisions that flip under noise on the numeric inputs, overall and per protected group."""
    import numpy as np

    _, base = predict(model, test, policy)
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(test), dtype=bool)
    columns = [c for c in policy.numeric if c in policy.features]
    spread = {c: float(test[c].astype(float).std(ddof=0)) for c in columns}
    for _ in range(repeats):
        noisy = test.copy()
        for c in columns:
            noisy[c] = test[c].astype(float) + rng.normal(0.0, scale * spread[c], size=len(test))
        flipped |= predict(model, noisy, policy)[1] != base
    groups = {}
    for attr in policy.protected_attributes:
        codes = privileged_codes(test, attr)
        for side, code in (("privileged", 1), ("unprivileged", 0)):
            groups[f"{attr.column}={side}"] = _share(flipped[codes == code], policy.fairness.confidence_level)
    return {
        "columns": columns,
        "scale": scale,
        "repeats": repeats,
        "overall": _share(flipped, policy.fairness.confidence_level),
        "groups": groups,
        "note": None if columns else "no numeric inputs: nothing to perturb",
    }


def _typical(values: pd.Series, numeric: bool) -> Any:
    return float(values.median()) if numeric else values.mode(dropna=True).iloc[0]


def counterfactual(
    model: Any, test: pd.DataFrame, policy: Policy, *, proxies: dict[str, list[str]] | None = None
) -> dict[str, Counterfactual]:
    """Per protected attribute: the share of decisions that change when each row's attribute (and its
    flagged proxies) takes the other group's typical value."""

    _, base = predict(model, test, policy)
    out: dict[str, Counterfactual] = {}
    for attr in policy.protected_attributes:
        codes = privileged_codes(test, attr)
        if codes.min() == codes.max():
            out[attr.column] = {"note": "the test rows hold one group only: nothing to flip"}
            continue
        columns = [attr.column, *(c for c in (proxies or {}).get(attr.column, []) if c in test.columns)]
        flipped = test.copy()
        swapped = {}
        for col in columns:
            numeric = is_numeric(test[col]) and (col in policy.numeric or (attr.is_threshold and col == attr.column))
            to_unprivileged = _typical(test.loc[codes == 0, col], numeric)
            to_privileged = _typical(test.loc[codes == 1, col], numeric)
            flipped[col] = test[col].where(codes == 0, to_unprivileged).where(codes == 1, to_privileged)
            swapped[col] = {
                "privileged_rows_get": plain(to_unprivileged),
                "unprivileged_rows_get": plain(to_privileged),
            }
        changed = predict(model, flipped, policy)[1] != base
        reads = [c for c in columns if c in policy.features] + (
            [attr.column] if getattr(model, "group_attributes", ()) and attr.column not in policy.features else []
        )
        out[attr.column] = {
            "columns": columns,
            "swapped": swapped,
            "overall": _share(changed, policy.fairness.confidence_level),
            "privileged": _share(changed[codes == 1], policy.fairness.confidence_level),
            "unprivileged": _share(changed[codes == 0], policy.fairness.confidence_level),
            "note": None
            if reads
            else f"the model reads neither {attr.column} nor a flagged proxy of it, so no decision can change",
        }
    return out


def measure(model: Any, test: pd.DataFrame, policy: Policy, *, proxies: dict[str, list[str]] | None) -> Robustness:
    """Both checks with the policy's settings (``robustness`` section)."""
    settings = policy.robustness
    return {
        "measured_on": f"test split ({len(test)} rows)",
        "stability": stability(
            model, test, policy, scale=settings.perturbation_scale, repeats=settings.repeats, seed=policy.model.seed
        ),
        "counterfactual": counterfactual(model, test, policy, proxies=proxies if settings.flip_proxies else None),
        "max_flip_rate": settings.max_flip_rate,
        "max_counterfactual_rate": settings.max_counterfactual_rate,
    }


def gate_findings(robustness: Robustness, policy: Policy) -> list[Finding]:
    """The robustness checks judged like a metric: each share's interval against its maximum.

    Decision stability per protected group against ``max_flip_rate``; the counterfactual flip per
    attribute against ``max_counterfactual_rate``. A group with no rows is insufficient evidence.
    """
    checks = [
        (f"robustness {group}", Threshold("decision_flip_rate", "abs_difference", robustness["max_flip_rate"]), share)
        for group, share in robustness["stability"]["groups"].items()
    ]
    checks += [
        (
            f"robustness {column}",
            Threshold("counterfactual_change_rate", "abs_difference", robustness["max_counterfactual_rate"]),
            result["overall"],
        )
        for column, result in robustness["counterfactual"].items()
        if "overall" in result
    ]
    findings = []
    for scope, threshold, share in checks:
        if not share["n"]:
            findings.append(
                Finding("review", scope, f"{threshold.metric}: no rows in the test split: insufficient evidence")
            )
            continue
        outcome, message = judge_metric(
            threshold, share["value"], share["ci_low"], share["ci_high"], policy.fairness.review_margin
        )
        findings.append(Finding(outcome, scope, f"{message} ({share['changed']} of {share['n']} decisions)"))
    return findings
