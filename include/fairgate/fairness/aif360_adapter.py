"""The one place Fairgate talks to AIF360.

AIF360 0.6 predates pandas 3, so its ``StandardDataset`` loaders are never used: callers pass
0/1 group codes (see :mod:`fairgate.groups`) and a 0/1 label, and this module builds the
numeric ``BinaryLabelDataset`` itself. Guards run first, because AIF360 returns misleading
numbers on degenerate input (DI = 1.0 for a one-class label, NaN for an empty group, inf when
the privileged group has no favorable outcome).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fairgate.errors import InsufficientDataError
from fairgate.groups import cell_mask

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.groups import Comparison

LABEL = "__label__"


@contextlib.contextmanager
def _quiet_imports() -> Iterator[None]:
    """AIF360 logs a warning on the root logger for every optional extra it lacks; we use none."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def binary_label_dataset(codes: pd.DataFrame, y: np.ndarray, *, weights: np.ndarray | None = None) -> Any:
    """A ``BinaryLabelDataset`` over 0/1 group codes and a 0/1 label (1 = favorable)."""
    import numpy as np
    import pandas as pd

    with _quiet_imports():
        from aif360.datasets import BinaryLabelDataset

    frame = pd.DataFrame({c: codes[c].to_numpy(dtype=np.float64) for c in codes.columns})
    frame[LABEL] = np.asarray(y, dtype=np.float64)
    ds = BinaryLabelDataset(
        df=frame,
        label_names=[LABEL],
        protected_attribute_names=list(codes.columns),
        favorable_label=1.0,
        unfavorable_label=0.0,
    )
    if weights is not None:
        ds.instance_weights = np.asarray(weights, dtype=np.float64)
    return ds


def _groups(comp: Comparison) -> tuple[list[dict[str, int]], list[dict[str, int]]]:
    return [dict(comp.unprivileged)], [dict(comp.privileged)]


def check_measurable(codes: pd.DataFrame, y: np.ndarray, comp: Comparison, *, label: str = "label") -> None:
    """Raise :class:`InsufficientDataError` naming the group and counts if a metric would mislead."""
    import numpy as np

    y = np.asarray(y)
    classes = np.unique(y)
    if len(classes) < 2:
        raise InsufficientDataError(
            f"Label column {label!r} has a single class ({int(classes[0]) if len(classes) else 'none'}) "
            f"in {len(y)} rows; disparities need both outcomes."
        )
    for name, cell in (("unprivileged", comp.unprivileged), ("privileged", comp.privileged)):
        mask = cell_mask(codes, cell)
        n, pos = int(mask.sum()), int(y[mask].sum())
        if n == 0:
            raise InsufficientDataError(f"Group {comp.key!r} ({name}) has no rows.")
        if pos == 0:
            raise InsufficientDataError(
                f"Group {comp.key!r} ({name}) has 0 favorable outcomes in column {label!r} out of {n} rows; "
                "its disparity is undefined and reweighing cannot correct it."
            )


def dataset_metrics(
    codes: pd.DataFrame, y: np.ndarray, comp: Comparison, *, weights: np.ndarray | None = None
) -> dict[str, float]:
    """AIF360 ``BinaryLabelDatasetMetric`` for one comparison (label in place of prediction)."""
    with _quiet_imports():
        from aif360.metrics import BinaryLabelDatasetMetric

    unpriv, priv = _groups(comp)
    m = BinaryLabelDatasetMetric(
        binary_label_dataset(codes, y, weights=weights), unprivileged_groups=unpriv, privileged_groups=priv
    )
    return {
        "disparate_impact": float(m.disparate_impact()),
        "statistical_parity_difference": float(m.statistical_parity_difference()),
        "base_rate_unprivileged": float(m.base_rate(privileged=False)),
        "base_rate_privileged": float(m.base_rate(privileged=True)),
        "n_unprivileged": float(m.num_instances(privileged=False)),
        "n_privileged": float(m.num_instances(privileged=True)),
    }


def classification_metrics(
    codes: pd.DataFrame, y: np.ndarray, y_pred: np.ndarray, comp: Comparison
) -> dict[str, float]:
    """AIF360 ``ClassificationMetric`` for one comparison: the reference our engine is tested against."""
    with _quiet_imports():
        from aif360.metrics import ClassificationMetric

    unpriv, priv = _groups(comp)
    truth = binary_label_dataset(codes, y)
    pred = truth.copy(deepcopy=True)
    pred.labels = pred.labels.copy()
    pred.labels[:, 0] = y_pred
    m = ClassificationMetric(truth, pred, unprivileged_groups=unpriv, privileged_groups=priv)
    return {
        "disparate_impact": float(m.disparate_impact()),
        "statistical_parity_difference": float(m.statistical_parity_difference()),
        "equal_opportunity_difference": float(m.equal_opportunity_difference()),
        "average_odds_difference": float(m.average_odds_difference()),
        "false_positive_rate_difference": float(m.false_positive_rate_difference()),
        "false_negative_rate_difference": float(m.false_negative_rate_difference()),
    }


def reweighing_weights(codes: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    """Kamiran & Calders reweighing over the joint cells of all protected attributes.

    Each row of cell ``s`` with label ``y`` gets ``w = P(s)·P(y) / P(s, y)``, which makes every
    cell, and so every attribute and intersection, independent of the label under the weights.
    AIF360's ``Reweighing`` is binary (privileged vs the rest); run once per cell with that cell
    as "privileged", the weights it gives that cell's rows are exactly the joint weights above.
    """
    import itertools

    import numpy as np

    with _quiet_imports():
        from aif360.algorithms.preprocessing.reweighing import Reweighing

    cols = list(codes.columns)
    ds = binary_label_dataset(codes, y)
    weights = np.full(len(y), np.nan)
    for values in itertools.product((0, 1), repeat=len(cols)):
        cell = tuple(zip(cols, values, strict=True))
        mask = cell_mask(codes, cell)
        if not mask.any():
            continue
        rest = [
            dict(zip(cols, other, strict=True))
            for other in itertools.product((0, 1), repeat=len(cols))
            if other != values
        ]
        rw = Reweighing(unprivileged_groups=rest, privileged_groups=[dict(cell)])
        weights[mask] = rw.fit_transform(ds).instance_weights[mask]
    return weights


def repair_inputs(X: pd.DataFrame, groups: np.ndarray, columns: list[str], repair_level: float) -> pd.DataFrame:
    """``X`` with its numeric ``columns`` repaired by AIF360's ``DisparateImpactRemover`` within ``groups``.

    The remover repairs a batch from that batch's own per-group distributions; the other columns
    are returned unchanged. ``groups`` is any label per row (a joint cell of protected attributes).
    """
    import numpy as np
    import pandas as pd

    with _quiet_imports():
        from aif360.algorithms.preprocessing import DisparateImpactRemover
        from aif360.datasets import BinaryLabelDataset

    if not columns or len(X) == 0:
        return X
    _names, codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    frame = pd.DataFrame({c: X[c].to_numpy(dtype=np.float64) for c in columns})
    frame["__group__"] = codes.astype(np.float64)
    frame[LABEL] = 0.0
    ds = BinaryLabelDataset(
        df=frame,
        label_names=[LABEL],
        protected_attribute_names=["__group__"],
        favorable_label=1.0,
        unfavorable_label=0.0,
    )
    repaired = DisparateImpactRemover(repair_level=repair_level, sensitive_attribute="__group__").fit_transform(ds)
    out = X.copy()
    values = repaired.features
    for i, name in enumerate(ds.feature_names):
        if name in columns:
            out[name] = values[:, i]
    return out
