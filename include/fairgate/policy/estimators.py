"""The scikit-learn estimators a policy may name, built from ``model.params`` and checked up front."""

from __future__ import annotations

from typing import Any

from fairgate.errors import ModelParamsError


def classifier(estimator: str, params: dict[str, Any], seed: int) -> Any:
    """``estimator`` with ``params`` (``random_state`` defaults to ``seed``), its types and ranges checked now.

    sklearn checks parameters only at fit time, where its InvalidParameterError is both a ValueError
    and a TypeError; ``_validate_params`` is how its own ``fit`` checks them.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    estimators = {
        "logistic_regression": LogisticRegression,
        "hist_gradient_boosting": HistGradientBoostingClassifier,
        "random_forest": RandomForestClassifier,
    }
    try:
        clf = estimators[estimator](**{"random_state": seed, **params})
        clf._validate_params()
    except (TypeError, ValueError) as exc:
        raise ModelParamsError(f"Policy key 'model.params' does not fit {estimator}: {exc}") from None
    return clf
