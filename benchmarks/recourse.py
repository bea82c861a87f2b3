"""Cost of recourse: the vectorised exact answer for a logistic regression (the nightly audit's path; the
rows whose fractional answer is not in whole steps get the integer program one by one), one decision
at a time (the CLI's path), and the grid search for a gradient-boosted model.

Synthetic credit data (20,000 rows); actionable: income (up, steps of 100), loan amount (down to 500,
steps of 100) and the savings band (medium or high).

    python benchmarks/recourse.py
"""

from __future__ import annotations

import sys
import time

from fairgate.data.features import feature_frame

RAW_POLICY = {
    "model_name": "credit",
    "dataset": {
        "source": "unused.csv",
        "label": "approved",
        "favorable_label": 1,
        "row_key": "application_id",
        "features": {
            "categorical": ["savings_band", "employment", "postcode_area"],
            "numeric": ["age", "income", "loan_amount", "duration_months"],
        },
    },
    "protected_attributes": [{"column": "gender", "privileged": ["male"], "allowed": ["male", "female"]}],
    "audit": {"incoming": "unused"},
    "recourse": {
        "actionable": {
            "income": {"direction": "increase", "step": 100},
            "loan_amount": {"direction": "decrease", "min": 500, "step": 100},
            "savings_band": {"values": ["medium", "high"]},
        }
    },
}


def main() -> int:
    from fairgate.models import recourse, training
    from fairgate.policy.loader import parse_policy
    from fairgate_dev.synthetic import credit_applications

    data = credit_applications(20_000, seed=1)
    policy = parse_policy(RAW_POLICY)
    X = feature_frame(data, policy)
    scale = {c: float(data[c].std(ddof=0)) for c in policy.numeric}
    spec, _ = recourse.actionable(policy, [])
    linear = training.build_pipeline(policy).fit(X, data["approved"])
    rows = data[linear.predict_proba(X)[:, 1] < 0.5].head(2000).reset_index(drop=True)
    started = time.perf_counter()
    feasible, _ = recourse.linear_batch(linear, rows, policy, spec, scale)
    batch = time.perf_counter() - started
    started = time.perf_counter()
    for record in rows.head(200).to_dict("records"):
        recourse.compute(linear, record, policy, scale=scale)
    one = (time.perf_counter() - started) / 200
    boosted = training.build_pipeline(policy, estimator="hist_gradient_boosting").fit(X, data["approved"])
    refused = data[boosted.predict_proba(X)[:, 1] < 0.5].head(20)
    started = time.perf_counter()
    for record in refused.to_dict("records"):
        recourse.compute(boosted, record, policy, scale=scale)
    search = (time.perf_counter() - started) / 20
    method = recourse.compute(boosted, refused.iloc[0].to_dict(), policy, scale=scale).method
    print(
        f"logistic regression, vectorised: {len(rows):,} unfavourable decisions in {batch:.2f} s "
        f"({feasible.mean():.0%} with recourse)"
    )
    print(f"logistic regression, one decision at a time: {one * 1000:.1f} ms per decision")
    print(f"gradient boosting, {method}: {search * 1000:.0f} ms per decision")
    return 0


if __name__ == "__main__":
    sys.exit(main())
