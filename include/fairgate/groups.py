"""Protected groups: which rows are privileged, and which pairs of groups are compared.

Every attribute is reduced to a 0/1 code (1 = privileged). A *comparison* pairs an
unprivileged group with a privileged one: for an attribute, everyone outside the privileged
values against everyone inside; for an intersection such as ``sex × race``, each cell that is
not all-privileged against the all-privileged cell (three comparisons for two attributes).
"""

from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fairgate.errors import GroupError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.policy.schema import Policy, ProtectedAttribute

_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}


@dataclass(frozen=True)
class Comparison:
    """An unprivileged group compared with a privileged one, each a cell of 0/1 codes."""

    key: str
    unprivileged: tuple[tuple[str, int], ...]
    privileged: tuple[tuple[str, int], ...]


def is_numeric(col: pd.Series) -> bool:
    """Whether ``privileged_if`` can compare this column's values with a number."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)


def privileged_codes(df: pd.DataFrame, attr: ProtectedAttribute) -> np.ndarray:
    """1 where a row belongs to the privileged group of ``attr``, else 0 (as ``int8``)."""
    import numpy as np

    if attr.column not in df.columns:
        raise GroupError(
            f"Protected attribute column {attr.column!r} is missing from the data "
            f"(columns: {sorted(map(str, df.columns))})."
        )
    col = df[attr.column]
    nulls = int(col.isna().sum())
    if nulls:
        raise GroupError(
            f"Protected attribute column {attr.column!r} has {nulls} null value(s) of "
            f"{len(col)} rows; every row needs a group."
        )
    if attr.is_threshold:
        if not is_numeric(col):
            raise GroupError(
                f"Protected attribute column {attr.column!r} uses 'privileged_if' "
                f"({attr.op} {attr.value:g}), which needs a numeric column; it holds {col.dtype} "
                "values. Use 'privileged' with a list of values instead."
            )
        assert attr.op is not None and attr.value is not None  # is_threshold
        return np.asarray(_OPS[attr.op](col.to_numpy(dtype=float), attr.value), dtype=np.int8)
    if attr.allowed:
        unknown = sorted(set(col.unique()) - set(attr.allowed), key=str)
        if unknown:
            raise GroupError(
                f"Protected attribute column {attr.column!r} has values {unknown} that are not "
                f"in its allowed list {list(attr.allowed)}."
            )
    return col.isin(attr.privileged_values).to_numpy().astype(np.int8)


def group_codes(df: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """A frame with one 0/1 column per protected attribute (1 = privileged)."""
    import pandas as pd

    return pd.DataFrame({a.column: privileged_codes(df, a) for a in policy.protected_attributes}, index=df.index)


def comparisons(policy: Policy) -> list[Comparison]:
    """Every comparison the policy asks for: each attribute, then each intersection cell."""
    out = [
        Comparison(key=a.column, unprivileged=((a.column, 0),), privileged=((a.column, 1),))
        for a in policy.protected_attributes
    ]
    for combo in policy.intersections:
        privileged = tuple((c, 1) for c in combo)
        for cell in itertools.product((0, 1), repeat=len(combo)):
            if all(cell):
                continue
            unpriv = tuple(zip(combo, cell, strict=True))
            key = " & ".join(f"{c}:{'privileged' if v else 'unprivileged'}" for c, v in unpriv)
            out.append(Comparison(key=key, unprivileged=unpriv, privileged=privileged))
    return out


def cell_mask(codes: pd.DataFrame, cell: tuple[tuple[str, int], ...]) -> np.ndarray:
    """Rows whose codes equal ``cell`` on every listed attribute."""
    import numpy as np

    mask = np.ones(len(codes), dtype=bool)
    for col, value in cell:
        mask &= codes[col].to_numpy() == value
    return mask


def labels(df: pd.DataFrame, policy: Policy) -> np.ndarray:
    """The label as 0/1 (1 = the policy's favorable value)."""
    import numpy as np

    return np.asarray(df[policy.dataset.label] == policy.dataset.favorable_label, dtype="int8")


def codes_and_labels(df: pd.DataFrame, policy: Policy) -> tuple[pd.DataFrame, np.ndarray]:
    """Group codes (1 = privileged) per protected column, and the label as 0/1."""
    return group_codes(df, policy), labels(df, policy)


def group_labels(df: pd.DataFrame, policy: Policy) -> np.ndarray:
    """Each row's joint group over the protected attributes, e.g. ``sex=1,race=0`` (1 = privileged)."""
    import numpy as np

    codes = group_codes(df, policy)
    joined = None
    for col in codes.columns:
        part = f"{col}=" + codes[col].astype(str)
        joined = part if joined is None else joined + "," + part
    assert joined is not None  # a policy names at least one protected attribute
    return np.asarray(joined.to_numpy(), dtype=str)
