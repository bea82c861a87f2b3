"""Disparity in the training data, before any model: pure functions, frames in, figures out.

Per protected attribute and intersection cell, AIF360's dataset metrics (disparate impact and
statistical parity difference of the favourable label), judged against ``bias.thresholds``; and
the proxy check (how well the inputs predict each protected attribute).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fairgate.errors import BiasInputError
from fairgate.fairness import aif360_adapter as aif
from fairgate.fairness.proxies import proxy_check
from fairgate.groups import codes_and_labels, comparisons

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.policy.schema import Policy


def findings(measured: dict[str, dict[str, float]], policy: Policy) -> list[str]:
    """Which data-stage disparities fall outside the policy's ``bias.thresholds``."""
    out = []
    for key, m in measured.items():
        for t in policy.bias.bounds:
            value = m[t.metric]
            if not t.contains(value):
                out.append(f"{key}: {t.metric}={value:.4f} outside {t.describe()}")
    return out


def measure(df: pd.DataFrame, policy: Policy) -> dict[str, Any]:
    """AIF360 dataset metrics per comparison, the findings against policy, and the proxy check."""

    codes, y = codes_and_labels(df, policy)
    measured = {}
    for comp in comparisons(policy):
        aif.check_measurable(codes, y, comp, label=policy.dataset.label)
        measured[comp.key] = aif.dataset_metrics(codes, y, comp)
    reasons = findings(measured, policy)
    try:
        proxies = proxy_check(df, policy)
    except ValueError as exc:  # e.g. a column sklearn cannot encode
        raise BiasInputError(f"Proxy check failed: {exc}") from None
    return {
        "detected": bool(reasons),
        "reasons": reasons,
        "comparisons": measured,
        "proxies": proxies,
        "warnings": proxies["flagged"],
    }


def reweigh(df: pd.DataFrame, policy: Policy) -> tuple[np.ndarray, dict[str, Any]]:
    """AIF360 reweighing weights per joint cell of all protected attributes, and the figures under them."""

    codes, y = codes_and_labels(df, policy)
    weights = aif.reweighing_weights(codes, y)
    after = {c.key: aif.dataset_metrics(codes, y, c, weights=weights) for c in comparisons(policy)}
    return weights, {
        "after": after,
        "max_abs_di_error": max(abs(m["disparate_impact"] - 1.0) for m in after.values()),
        "weight_min": float(weights.min()),
        "weight_max": float(weights.max()),
    }
