"""What Shapley values cost: 10,000 records of a gradient-boosting model, and of the linear default.

- Gradient boosting (``hist_gradient_boosting``, 100 iterations, on Adult's ten inputs): Fairgate's
  exact tree path (``shap.TreeExplainer`` on the encoded rows, summed back to the inputs) for
  10,000 records, against what a user without it would run on the pipeline: shap's model-agnostic
  permutation explainer on the raw inputs (timed on 100 records, per record given), and against
  Fairgate's one-at-a-time reason codes for the same 10,000 records.
- Logistic regression (the default model): the closed form for 10,000 records against shap's
  ``LinearExplainer`` on the encoded rows; the two are compared (max abs difference).

Every figure's additivity error (``base + Σ values`` against the model's own output) is printed.
Data: UCI Adult (bundled). Run: ``.venv/bin/python benchmarks/shapley.py``.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    from fairgate.data.features import feature_frame
    from fairgate.data.sources import read_source
    from fairgate.models import explain, shapley, training
    from fairgate.policy.loader import load_policy, parse_policy

    shap = shapley.import_shap()
    base = load_policy()
    df = read_source(base).sample(frac=1.0, random_state=0).reset_index(drop=True)
    train, test = df.iloc[:20000], df.iloc[20000:30000].reset_index(drop=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"shap {shap.__version__}; {len(test):,} records explained; {len(base.features)} inputs\n")

    raw = base.model_dump()
    raw["model"] = {**raw["model"], "estimator": "hist_gradient_boosting", "params": {"max_iter": 100}}
    gb_policy = parse_policy(raw)
    gb = training.fit(train, gb_policy)
    reference = shapley.background(train, seed=0)

    seconds, found = _timed(lambda: shapley.explain(gb, test, gb_policy, reference))
    error = np.abs(found.outputs - shapley.model_output(gb, test, gb_policy, found.output)).max()
    print(
        f"gradient boosting, Fairgate {found.method}: {seconds:.2f} s for {len(test):,} records "
        f"({len(test) / seconds:,.0f} records/s), additivity error {error:.1e}"
    )

    X, B = feature_frame(test.head(100), gb_policy), feature_frame(reference, gb_policy)
    columns = list(X.columns)
    cats = {c: sorted(set(X[c]) | set(B[c])) for c in columns if c not in gb_policy.numeric}

    def encode(frame):
        return np.column_stack(
            [
                np.array([cats[c].index(v) for v in frame[c]]) if c in cats else frame[c].to_numpy(dtype=float)
                for c in columns
            ]
        )

    def score(rows):
        import pandas as pd

        frame = pd.DataFrame(
            {
                c: np.asarray(cats[c], dtype=object)[rows[:, j].astype(int)] if c in cats else rows[:, j]
                for j, c in enumerate(columns)
            }
        )
        return gb.predict_proba(frame)[:, 1]

    explainer = shap.PermutationExplainer(score, shap.maskers.Independent(encode(B), max_samples=len(B)), seed=0)
    seconds_first, _ = _timed(lambda: explainer(encode(X.head(1)), max_evals=500, silent=True))
    print(f"gradient boosting, shap PermutationExplainer's first call (numba compiles): {seconds_first:.1f} s")
    seconds_perm, _ = _timed(lambda: explainer(encode(X), max_evals=500, silent=True))
    per = seconds_perm / len(X)
    print(
        f"gradient boosting, shap PermutationExplainer on the pipeline (500 evaluations, {len(B)} background "
        f"rows): {per * 1000:.0f} ms per record, {per * len(test) / 60:.1f} min for {len(test):,} records (estimate)"
    )

    ref_record = training.reference_record(train, gb_policy)
    seconds_rc, _ = _timed(lambda: explain.reason_codes(gb, test, gb_policy, ref_record))
    print(f"gradient boosting, one-at-a-time reason codes: {seconds_rc:.2f} s for {len(test):,} records\n")

    lr = training.fit(train, base)
    seconds_lin, linear = _timed(lambda: shapley.explain(lr, test, base, reference))
    error = np.abs(linear.outputs - shapley.model_output(lr, test, base, linear.output)).max()
    pre, clf = lr.steps[0][1], lr.steps[1][1]

    def dense(m):
        return m.toarray() if hasattr(m, "toarray") else np.asarray(m)

    masker = shap.maskers.Independent(dense(pre.transform(feature_frame(reference, base))), max_samples=len(reference))
    seconds_theirs, theirs = _timed(
        lambda: shap.LinearExplainer(clf, masker).shap_values(dense(pre.transform(feature_frame(test, base))))
    )
    blocks = explain.encoded_blocks(lr, list(base.features))
    summed = np.column_stack([theirs[:, blocks[c]].sum(axis=1) for c in base.features])
    print(
        f"logistic regression, Fairgate closed form: {seconds_lin:.3f} s for {len(test):,} records, "
        f"additivity error {error:.1e}"
    )
    print(
        f"logistic regression, shap LinearExplainer (encode + explain): {seconds_theirs:.3f} s; "
        f"max abs difference from the closed form {np.abs(summed - linear.values).max():.1e}"
    )


if __name__ == "__main__":
    main()
