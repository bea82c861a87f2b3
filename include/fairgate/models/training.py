"""Split, train and serialise the scikit-learn pipeline the policy describes.

Models are written with skops and read back only through :func:`load_model_bytes`, which checks
the sha256 first and then allows exactly the types in :data:`TRUSTED_TYPES`: nothing from the
store is ever unpickled.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.data.features import feature_frame
from fairgate.errors import InputError, ModelIntegrityError
from fairgate.groups import codes_and_labels, labels
from fairgate.policy.estimators import classifier
from fairgate.storage.base import verify

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from fairgate.policy.schema import Policy

# Every type a Fairgate pipeline is built from (beyond skops' own defaults); a stored model that
# needs anything else is refused.
TRUSTED_TYPES = [
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.compose._column_transformer._RemainderColsList",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
    "numpy.dtype",
    "numpy.ndarray",
    "builtins.slice",
    "builtins.object",
    "builtins.str",
    "builtins.float",
    "builtins.list",
    "fairgate.mitigation.fitted.Mixture",
    "fairgate.mitigation.fitted.GroupThresholds",
    "fairgate.mitigation.fitted.RepairedInputs",
]
SPLITS = ("train", "validation", "test")
Reference = dict[str, float | str]  # a typical training record: per input, the median or the most common value


def split_rows(df: pd.DataFrame, policy: Policy, strata: np.ndarray) -> np.ndarray:
    """Assign each row to train / validation / test, stratified on ``strata`` (label × group cell).

    Strata too small to split fall back to stratifying on the label alone.
    """
    import numpy as np
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(df))
    y = labels(df, policy)
    holdout = policy.model.test_size + policy.model.validation_size
    strat = strata if np.bincount(strata).min(initial=len(df)) >= 4 else y
    rest, held = train_test_split(idx, test_size=holdout, random_state=policy.model.seed, stratify=strat)
    val_share = policy.model.validation_size / holdout
    strat_held = strat[held] if np.bincount(strat[held]).min(initial=len(held)) >= 2 else y[held]
    val, test = train_test_split(held, test_size=1 - val_share, random_state=policy.model.seed, stratify=strat_held)
    out = np.empty(len(df), dtype=object)
    out[rest], out[val], out[test] = "train", "validation", "test"
    return out


def classifier_for(policy: Policy, estimator: str | None = None) -> Any:
    """The policy's classifier, or another allowed ``estimator`` (``model.params`` apply to the policy's own)."""
    estimator = estimator or policy.model.estimator
    return classifier(estimator, policy.model.params if estimator == policy.model.estimator else {}, policy.model.seed)


def build_pipeline(policy: Policy, *, estimator: str | None = None) -> Pipeline:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    clf = classifier_for(policy, estimator)
    categorical = [c for c in policy.features if c not in policy.numeric]
    numeric = [c for c in policy.features if c in policy.numeric]
    encode: Any = OneHotEncoder(handle_unknown="ignore")
    scale: Any = StandardScaler()
    if policy.dataset.missing == "impute":  # learned on the training rows, applied alike when scoring
        from sklearn.impute import SimpleImputer

        encode = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("encode", encode)])
        scale = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", scale)])
    # Tree ensembles need dense rows (HistGradientBoosting refuses sparse ones, which the encoder makes
    # when many categories leave the one-hot rows mostly zeros); the linear model keeps them sparse.
    dense = (estimator or policy.model.estimator) != "logistic_regression"
    pre = ColumnTransformer(
        [("categorical", encode, categorical), ("numeric", scale, numeric)],
        remainder="drop",
        sparse_threshold=0.0 if dense else 0.3,
    )
    return Pipeline([("features", pre), ("classifier", clf)])


def fit(
    df: pd.DataFrame, policy: Policy, *, estimator: str | None = None, sample_weight: np.ndarray | None = None
) -> Pipeline:
    pipe = build_pipeline(policy, estimator=estimator)
    kwargs: dict[str, Any] = {}
    if sample_weight is not None:
        kwargs["classifier__sample_weight"] = sample_weight
    return pipe.fit(feature_frame(df, policy), labels(df, policy), **kwargs)


def predict(model: Pipeline, df: pd.DataFrame, policy: Policy) -> tuple[np.ndarray, np.ndarray]:
    """Scores (probability of the favorable label) and 0/1 decisions at the policy's threshold (a rank
    selection's batch cutoff is applied by the caller that knows the batch: :func:`rank_cutoff`)."""
    scores = model.predict_proba(feature_frame(df, policy, model))[:, 1]
    return scores, (scores >= policy.model.decision_threshold).astype("int8")


class Selection(TypedDict):
    """Decisions made by rank, as a batch saw them: the rule, the score cutoff, how many it selected of how many."""

    rule: str  # model.selection: top_k | top_fraction
    cutoff: float
    selected: int
    rows: int


def rank_cutoff(scores: np.ndarray, policy: Policy, *, day: bool) -> float | None:
    """The score at or above which a batch's records are favourable when decisions are made by rank.

    ``model.selection: top_fraction`` selects the highest ``top_fraction`` of the batch (rounded up);
    ``top_k`` the ``top_k`` highest of a scored ``day``, and of any other batch (the test or the
    validation split) the same share, ``top_k / expected_daily_rows``. Records tied with the last one
    selected are selected too. None under ``selection: threshold`` (the fixed ``decision_threshold``);
    above every score when nothing is selected.
    """
    import math

    import numpy as np

    rule = policy.model
    if rule.selection == "threshold" or not len(scores):
        return None
    if rule.selection == "top_fraction":
        assert rule.top_fraction is not None
        count = math.ceil(rule.top_fraction * len(scores))
    else:
        assert rule.top_k is not None and rule.expected_daily_rows is not None
        count = rule.top_k if day else math.ceil(rule.top_k / rule.expected_daily_rows * len(scores))
    if count <= 0:
        return math.inf
    return float(np.sort(np.asarray(scores, dtype=float))[::-1][min(count, len(scores)) - 1])


def at_cutoff(policy: Policy, cutoff: float | None) -> Policy:
    """``policy`` deciding at ``cutoff`` (a batch's :func:`rank_cutoff`) instead of its own threshold."""
    if cutoff is None:
        return policy
    return policy.model_copy(update={"model": policy.model.model_copy(update={"decision_threshold": cutoff})})


def performance(y: np.ndarray, scores: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    import numpy as np
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

    two_classes = len(np.unique(y)) == 2
    return {
        "accuracy": float(accuracy_score(y, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, y_pred)) if two_classes else None,
        "roc_auc": float(roc_auc_score(y, scores)) if two_classes else None,
        "selection_rate": float(np.mean(y_pred)),
        "rows": len(y),
    }


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # skops resolves ufuncs by scanning sys.modules, which trips deprecation shims of unrelated
    # packages (Airflow's among them); their warnings say nothing about the model.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _skops() -> Any:
    with _quiet():  # importing skops.io runs the same scan
        import skops.io as sio
    return sio


def dump_model(model: Pipeline) -> bytes:
    sio = _skops()
    with _quiet():
        return bytes(sio.dumps(model))


def load_model_bytes(data: bytes, *, expected_sha256: str, where: str = "model") -> Pipeline:
    """Load a skops model after checking its sha256 and that it uses only trusted types."""
    sio = _skops()

    verify(data, expected_sha256, where=where, error=ModelIntegrityError)
    try:
        with _quiet():
            untrusted = set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES)
    except Exception as exc:  # a non-skops file fails here, before anything is constructed
        raise ModelIntegrityError(f"{where}: not a readable skops file ({exc}).") from exc
    if untrusted:
        raise ModelIntegrityError(f"{where}: holds types outside the trusted list: {sorted(untrusted)}.")
    with _quiet():
        return sio.loads(data, trusted=TRUSTED_TYPES)


def split_frame(split: np.ndarray, df: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """The persisted split: row key (or row position) and split name."""
    import pandas as pd

    key = df[policy.dataset.row_key].to_numpy() if policy.dataset.row_key else range(len(df))
    return pd.DataFrame({"row": key, "split": split})


def assign_split(df: pd.DataFrame, policy: Policy) -> np.ndarray:
    """train / validation / test per row, stratified by label × group cell; made once, before mitigation."""
    import numpy as np

    codes, y = codes_and_labels(df, policy)
    strata = y.astype(np.int64)
    for i, col in enumerate(codes.columns):
        strata = strata + codes[col].to_numpy(dtype=np.int64) * (2 << i)
    return split_rows(df, policy, strata)


def train_candidate(
    df: pd.DataFrame, policy: Policy, split: np.ndarray, *, weights: np.ndarray | None = None
) -> dict[str, Any]:
    """Fit the policy's pipeline on the training rows of ``split`` (with ``weights``, one per training row).

    With weights, the same pipeline is also fitted without them (the unmitigated twin), so the
    effect of reweighing is measured on the test rows rather than assumed. Returns the models, the
    validation performance and the typical training record.
    """
    is_train, is_val = split == "train", split == "validation"
    if len(split) != len(df):
        raise InputError(f"The stored split has {len(split)} rows but the snapshot has {len(df)}.")
    if weights is not None and len(weights) != int(is_train.sum()):
        raise InputError(
            f"Reweighing weights have {len(weights)} rows but the split has {int(is_train.sum())} training rows."
        )
    y = labels(df, policy)
    model = fit(df[is_train], policy, sample_weight=weights)
    scores, pred = predict(model, df[is_val], policy)
    return {
        "model": model,
        "unmitigated": fit(df[is_train], policy) if weights is not None else None,
        "rows": {name: int((split == name).sum()) for name in SPLITS},
        "validation": performance(y[is_val], scores, pred),
        "reference": reference_record(df[is_train], policy),
    }


def reference_record(df: pd.DataFrame, policy: Policy) -> Reference:
    """A typical record of the training data: the median of each numeric column, the mode of each other."""
    ref: Reference = {}
    for col in policy.features:
        if col in policy.numeric:
            ref[col] = float(df[col].median())
        else:
            ref[col] = str(df[col].astype(str).mode().iloc[0])
    return ref
