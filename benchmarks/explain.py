"""What the transparency features cost: reason codes, permutation importance by group, proxy check.

- Reason codes: rows per second for the three reasons stored with every prediction
  (one extra prediction per input column).
- Permutation importance overall and inside the four protected groups: Fairgate's single pass
  (each shuffle scored on every group) against scikit-learn's ``permutation_importance`` called
  once per group, which is what a user would otherwise write; the overall figures are compared.
- Proxy check: the whole data-stage check (two attributes, ten inputs alone and together).

Data: UCI Adult (bundled), replicated for the larger sizes. Run: ``.venv/bin/python benchmarks/explain.py``.
"""

from __future__ import annotations

import platform
import time

import numpy as np
import pandas as pd

from fairgate.data.features import feature_frame


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    from sklearn.inspection import permutation_importance

    from fairgate import groups
    from fairgate.data.sources import read_source
    from fairgate.fairness import proxies
    from fairgate.groups import group_codes
    from fairgate.models import explain, training
    from fairgate.policy.loader import load_policy

    policy = load_policy()
    df = read_source(policy)
    model = training.fit(df.iloc[:20000], policy)
    reference = training.reference_record(df.iloc[:20000], policy)
    print(f"{platform.machine()}, {platform.python_version()}, Adult {len(df)} rows, logistic regression")

    print("\nReason codes (3 per record)")
    for n in (600, 10_000, 100_000):
        rows = df.sample(n, replace=n > len(df), random_state=0).reset_index(drop=True)
        seconds, _ = _timed(lambda rows=rows: explain.reason_codes(model, rows, policy, reference))
        print(f"  {n:>7,} rows: {seconds:6.2f} s  ({n / seconds:,.0f} rows/s)")

    print("\nPermutation importance, overall + 4 groups, 5 repeats")
    for copies in (1, 10):
        test = pd.concat([df.iloc[20000:]] * copies, ignore_index=True)
        ours_s, ours = _timed(lambda test=test: explain.importance(model, test, policy, repeats=5))
        X, y = feature_frame(test, policy), groups.labels(test, policy)
        codes = group_codes(test, policy)
        masks = [np.ones(len(X), dtype=bool)] + [
            codes[a.column].to_numpy() == c for a in policy.protected_attributes for c in (0, 1)
        ]

        def sklearn_per_group(X=X, y=y, masks=masks):
            return [
                permutation_importance(model, X[m], y[m], scoring="roc_auc", n_repeats=5, random_state=0) for m in masks
            ]

        theirs_s, theirs = _timed(sklearn_per_group)
        diff = max(abs(ours["overall"][c]["mean"] - theirs[0].importances_mean[i]) for i, c in enumerate(X.columns))
        print(
            f"  {len(test):>7,} test rows: Fairgate {ours_s:6.2f} s, scikit-learn per group {theirs_s:6.2f} s "
            f"({theirs_s / ours_s:.1f}x); max |difference| overall {diff:.4f}"
        )

    print("\nProxy check (sex and race; 10 inputs alone and together; 5 folds)")
    for copies in (1, 5):
        data = pd.concat([df] * copies, ignore_index=True)
        seconds, _ = _timed(lambda data=data: proxies.proxy_check(data, policy))
        print(f"  {len(data):>7,} rows: {seconds:6.2f} s")


if __name__ == "__main__":
    main()
