"""How well the model's input columns predict each protected attribute: a stand-in for an attribute.

:func:`proxy_check` measures it one column at a time and all together, so a proxy is caught in the
data stage (the bias check) rather than in an audit months later; recourse and the gate read the
flagged columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from fairgate.data import sampling
from fairgate.data.features import feature_frame
from fairgate.fairness.metrics import auc_interval, cell_ids
from fairgate.groups import group_codes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.policy.schema import Policy


class AttributeProxies(TypedDict, total=False):
    """How well the inputs predict one protected attribute (``skipped`` alone when they could not be measured)."""

    skipped: str
    per_column: dict[str, float]
    all_columns: float
    flagged: list[str]
    per_column_interval: dict[str, list[float]]


class ProxyCheck(TypedDict):
    threshold: float
    folds: int
    attributes: dict[str, AttributeProxies]
    flagged: list[str]  # one sentence per flagged input
    rows: int
    measured_on: str


def _out_of_fold_lookup(values: pd.Series, target: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Score each row by the target mean of its value in the other folds (a one-column classifier)."""
    import numpy as np
    import pandas as pd

    prior = float(target.mean())
    scores = np.empty(len(target))
    for k in np.unique(folds):
        fit, held = folds != k, folds == k
        means = pd.Series(target[fit]).groupby(values[fit].to_numpy()).mean()
        scores[held] = values[held].map(means).fillna(prior).to_numpy(dtype=float)
    return scores


def proxy_check(df: pd.DataFrame, policy: Policy, *, n_folds: int = 5) -> ProxyCheck:
    """Cross-validated ROC AUC of predicting each protected attribute from the model's inputs.

    Per input column, the classifier is a lookup table of the attribute's rate per value (numeric
    columns in 20 quantile bins), fitted out of fold; for all columns together it is a logistic
    regression on the same encoding the model uses. A column whose AUC reaches the policy's
    ``bias.proxy_auc_warning`` is flagged: the model can learn the attribute through it even
    though the attribute itself is not an input. AUC 0.5 means no information; 1.0 means the
    column reveals the attribute exactly. Each AUC has its interval (Hanley & McNeil's standard
    error at the policy's confidence level). Above ``sampling.max_rows`` rows the check runs on a
    sample stratified by joint group (see :mod:`fairgate.data.sampling`), said in ``measured_on``.
    """
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    inputs = [c for c in policy.features if c not in policy.protected_columns]
    df = df.reset_index(drop=True)
    of = len(df)
    keep = sampling.stratified(cell_ids(group_codes(df, policy)), policy.sampling.max_rows, seed=policy.model.seed)
    if keep is not None:
        df = df.iloc[keep].reset_index(drop=True)
    X = feature_frame(df, policy)[inputs]
    codes = group_codes(df, policy)
    binned = {}
    for col in inputs:
        if col in policy.numeric:
            binned[col] = pd.qcut(X[col].astype(float), q=20, duplicates="drop").astype(str)
        else:
            binned[col] = X[col]
    threshold = policy.bias.proxy_auc_warning
    result: ProxyCheck = {
        "threshold": threshold,
        "folds": n_folds,
        "attributes": {},
        "flagged": [],
        "rows": len(df),
        "measured_on": sampling.described(len(df), of, "training rows"),
    }
    for attr in policy.protected_attributes:
        target = codes[attr.column].to_numpy()
        minority = int(min(target.sum(), len(target) - target.sum()))
        if minority < n_folds:
            result["attributes"][attr.column] = {"skipped": f"only {minority} rows in the smaller group"}
            continue
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=policy.model.seed)
        folds = np.empty(len(target), dtype=int)
        for k, (_, held) in enumerate(splitter.split(X, target)):
            folds[held] = k
        per_column = {
            col: float(roc_auc_score(target, _out_of_fold_lookup(binned[col], target, folds))) for col in inputs
        }
        encode = ColumnTransformer(
            [
                ("categorical", OneHotEncoder(handle_unknown="ignore"), [c for c in inputs if c not in policy.numeric]),
                ("numeric", StandardScaler(), [c for c in inputs if c in policy.numeric]),
            ]
        )
        combined = cross_val_score(
            Pipeline([("features", encode), ("classifier", LogisticRegression(max_iter=1000))]),
            X,
            target,
            cv=splitter,
            scoring="roc_auc",
        )
        flagged = sorted((c for c, auc in per_column.items() if auc >= threshold), key=lambda c: -per_column[c])
        positives = int(target.sum())
        result["attributes"][attr.column] = {
            "per_column": per_column,
            "all_columns": float(combined.mean()),
            "flagged": flagged,
            "per_column_interval": {
                col: auc_interval(auc, positives, len(target) - positives, confidence=policy.fairness.confidence_level)
                for col, auc in per_column.items()
            },
        }
        result["flagged"] += [
            f"{col} predicts {attr.column} with AUC {per_column[col]:.3f} (warning at {threshold:g})" for col in flagged
        ]
    return result
