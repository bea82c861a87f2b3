"""The model's inputs as every model reads them: the policy's feature columns, typed, and checked.

Categorical inputs become plain strings (so an encoder sees one dtype), numeric ones floats with a
value that is not a number named; infinities are refused, and gaps unless ``dataset.missing: impute``.
A model that decides with the protected attributes also gets each row's joint group as
:data:`GROUP_COLUMN` (fairgate.mitigation.fitted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fairgate.errors import InputError
from fairgate.groups import group_labels

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.policy.schema import Policy

GROUP_COLUMN = "__group__"


def feature_frame(df: pd.DataFrame, policy: Policy, model: Any = None) -> pd.DataFrame:
    """The model's input columns; categoricals as plain strings so encoders see one dtype.

    A ``model`` that decides with the protected attributes (``group_attributes``) also gets each
    row's joint group as :data:`GROUP_COLUMN`.
    """
    import numpy as np

    X = df[list(policy.features)].copy()
    for col in X.columns:
        if col not in policy.numeric:
            X[col] = X[col].astype(str)  # a missing category stays missing: its own category, or imputed
            continue
        values = pd_numeric(X[col], col)
        infinite = int(np.isinf(values).sum())
        if infinite:
            raise InputError(
                f"Column {col!r} holds {infinite} infinite value(s) ({infinite / len(X):.2%} of the rows): not a "
                "measurement. Fix them in the source, or filter those rows (dataset.filters)."
            )
        gaps = int(np.isnan(values).sum())
        if gaps and policy.dataset.missing == "refuse":
            raise InputError(
                f"Column {col!r} has {gaps} missing value(s) ({gaps / len(X):.2%} of the rows) and policy key "
                "'dataset.missing' is 'refuse': fill them in the source, or set 'dataset.missing: impute' "
                "(the median, learned inside the model)."
            )
    if getattr(model, "group_attributes", ()):
        X[GROUP_COLUMN] = group_labels(df, policy)
    return X


def pd_numeric(column: pd.Series, name: str) -> np.ndarray:
    """A numeric feature's values as floats (a value that is not a number is named)."""
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna()
    if bad.any():
        raise InputError(f"Column {name!r} must hold numbers; it holds {column[bad].iloc[0]!r}.")
    return np.asarray(values, dtype=float)
