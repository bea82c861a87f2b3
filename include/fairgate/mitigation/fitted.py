"""What a mitigation method fitted, in a form the registry can store with skops and serve.

fairlearn's fitted objects hold pandas frames and closures that skops cannot store safely, so
the fitted result is copied into one of these small classes: plain scikit-learn estimators,
numbers and strings. Each has ``predict_proba(X)`` like a scikit-learn classifier; the scores of
:class:`Mixture` and :class:`GroupThresholds` are the library's probability of the favourable
decision (its ``_pmf_predict``), and the tests check them against the library's own prediction
on the same rows.

A model that needs the protected attribute when it decides (``group_attributes`` not empty) is
given the rows' group as the column :data:`GROUP_COLUMN` by :func:`fairgate.data.features.feature_frame`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fairgate.data.features import GROUP_COLUMN
from fairgate.errors import GroupError
from fairgate.fairness.aif360_adapter import repair_inputs

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def _split(X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    return X.drop(columns=[GROUP_COLUMN]), X[GROUP_COLUMN].astype(str).to_numpy()


def _two_columns(p: np.ndarray) -> np.ndarray:
    import numpy as np

    p = np.asarray(p, dtype=float)
    return np.column_stack([1.0 - p, p])


class Mixture:
    """Exponentiated gradient's randomized classifier: the weighted vote of its fitted predictors."""

    group_attributes: tuple[str, ...] = ()

    def __init__(self, features: Any, classifiers: list[Any], weights: list[float]) -> None:
        self.features = features  # the ColumnTransformer fitted on the training rows
        self.classifiers = classifiers
        self.weights = weights

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        import numpy as np

        encoded = self.features.transform(X)
        p = np.zeros(len(X))
        for clf, w in zip(self.classifiers, self.weights, strict=True):
            p += w * clf.predict(encoded)
        return _two_columns(p)


class GroupThresholds:
    """Threshold optimizer's group-specific, randomized thresholds on a scoring pipeline's scores.

    ``rules`` maps a group to ``[p0, operator0, threshold0, p1, operator1, threshold1]``: with
    probability p0 the decision is ``score operator0 threshold0``, else the second rule.
    """

    def __init__(self, scorer: Any, rules: dict[str, list[Any]], group_attributes: list[str]) -> None:
        self.scorer = scorer
        self.rules = rules
        self.group_attributes = tuple(group_attributes)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        import numpy as np

        features, groups = _split(X)
        unknown = sorted(set(groups) - set(self.rules))
        if unknown:
            raise GroupError(f"rows of group(s) {unknown} that the thresholds were not fitted for")
        scores = self.scorer.predict_proba(features)[:, 1]
        p = np.zeros(len(X))
        for group, (p0, op0, t0, p1, op1, t1) in self.rules.items():
            at = groups == group
            s = scores[at]
            p[at] = p0 * _compare(s, op0, t0) + p1 * _compare(s, op1, t1)
        return _two_columns(p)


def _compare(scores: np.ndarray, op: str, threshold: float) -> np.ndarray:
    return scores > threshold if op == ">" else scores < threshold


class RepairedInputs:
    """A pipeline fitted on inputs repaired by AIF360's disparate impact remover.

    The remover moves each numeric input's distribution within every group towards a common one
    (``repair_level`` 1: identical). It repairs a batch from that batch's own distributions, so
    rows are repaired the same way at training, evaluation and scoring: as a whole batch.
    """

    def __init__(self, pipeline: Any, repair_level: float, columns: list[str], group_attributes: list[str]) -> None:
        self.pipeline = pipeline
        self.repair_level = repair_level
        self.columns = columns  # the numeric inputs the remover repairs
        self.group_attributes = tuple(group_attributes)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        features, groups = _split(X)
        repaired = repair_inputs(features, groups, self.columns, self.repair_level)
        return self.pipeline.predict_proba(repaired)  # type: ignore[no-any-return]  # a scikit-learn pipeline: untyped
