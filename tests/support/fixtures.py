"""Small policies and frames several test modules share: a tiny hand-checkable model, synthetic credit
with a chosen mitigation search, and the impact-assessment answers a reviewer gives."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairgate.policy.loader import parse_policy

THRESHOLDS = {"disparate_impact": {"kind": "ratio_band", "min": 0.8, "max": 1.25}}


def tiny_policy():
    return parse_policy(
        {
            "model_name": "tiny",
            "dataset": {
                "source": "unused.csv",
                "label": "approved",
                "favorable_label": "yes",
                "row_key": "id",
                "features": {"categorical": ["job_type"], "numeric": ["income_k", "tenure"]},
                "feature_labels": {"job_type": "type of job", "income_k": "income in thousands"},
            },
            "protected_attributes": [{"column": "sex", "privileged": ["M"], "allowed": ["M", "F"]}],
            "bias": {"thresholds": THRESHOLDS},
            "fairness": {"thresholds": THRESHOLDS, "min_group_size": 5, "min_positives": 1},
            "model": {"estimator": "logistic_regression", "params": {"max_iter": 1000}},
        }
    )


def tiny_frame(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    job = rng.choice(["clerk", "engineer", "seasonal"], size=n, p=[0.5, 0.4, 0.1])
    income = rng.normal(50, 15, n)
    tenure = rng.integers(0, 20, n).astype(float)
    logit = (
        0.08 * (income - 50) + 0.1 * (tenure - 10) + np.select([job == "engineer", job == "seasonal"], [1.0, -2.5], 0.0)
    )
    approved = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "job_type": job,
            "income_k": income,
            "tenure": tenure,
            "sex": rng.choice(["M", "F"], n),
            "approved": approved,
        }
    )


def linear_push(model, policy, record, reference):
    """Each column's push straight from the fitted coefficients: coef x change in the encoded input."""
    pre, clf = model.named_steps["features"], model.named_steps["classifier"]
    coef = dict(zip(pre.get_feature_names_out(), clf.coef_[0], strict=True))
    scaler = pre.named_transformers_["numeric"]
    push = {}
    for i, col in enumerate(c for c in policy.features if c in policy.numeric):
        push[col] = coef[f"numeric__{col}"] * (record[col] - reference[col]) / scaler.scale_[i]
    for col in (c for c in policy.features if c not in policy.numeric):
        push[col] = coef[f"categorical__{col}_{record[col]}"] - coef[f"categorical__{col}_{reference[col]}"]
    return push


def credit_policy(**mitigation_section) -> object:
    raw = {
        "model_name": "credit",
        "dataset": {
            "source": "credit.csv",
            "label": "approved",
            "favorable_label": 1,
            "row_key": "application_id",
            "features": {
                "categorical": ["savings_band", "employment", "postcode_area"],
                "numeric": ["income", "loan_amount", "duration_months", "age"],
            },
        },
        "protected_attributes": [{"column": "gender", "privileged": ["male"], "allowed": ["female", "male"]}],
        "quality": {"min_rows": 100},
    }
    if mitigation_section:
        raw["mitigation"] = mitigation_section
    return parse_policy(raw)


ANSWERED = {
    "impact_assessment": {
        "affected_groups": "applicants refused credit, women more often than men",
        "misuse": "used to set prices, which it was not validated for",
        "redress": "every refusal may be contested; a person reviews it within 10 days",
        "severity": "high",
        "mitigations": ["reweighing", "nightly fairness audit"],
    },
    "owners": {"retraining": "credit-ml team", "monitoring": "risk analytics", "complaints": "customer care"},
}
