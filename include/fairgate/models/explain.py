"""Why a model decides what it decides, in two views.

- :func:`importance`: permutation importance of each input column on held-out data, overall and
  inside each protected group (a feature the model leans on for one group only shows up here).
- :func:`reason_codes`: for one scored record, the few input columns that pushed its score most
  towards the decision it got, in plain words for the person the decision is about.
How well the inputs stand in for a protected attribute is :func:`fairgate.fairness.proxies.proxy_check`.

Both work on the policy's input columns (``capital_gain``), never on the encoded columns the
pipeline makes of them (``categorical__occupation_Sales``).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.data import sampling
from fairgate.data.features import feature_frame
from fairgate.fairness.metrics import cell_ids, rank_auc
from fairgate.groups import group_codes, labels
from fairgate.models.training import Reference
from fairgate.values import plain

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from fairgate.policy.schema import Policy


class Reason(TypedDict):
    """One principal reason for a decision: an input, its value, the typical value, its push and the sentence."""

    feature: str
    value: Any  # the record's value as given (a number or a category)
    typical: float | str
    push: float  # in log-odds; towards the decision the record got
    text: str


class Spread(TypedDict):
    mean: float
    std: float


class Importance(TypedDict):
    """Permutation importance per input column, overall and per group side (``sex=privileged``)."""

    metric: str
    repeats: int
    rows: int
    measured_on: str
    overall: dict[str, Spread]
    by_group: dict[str, dict[str, Spread]]
    skipped: dict[str, str]  # group side (or "all rows") → why it was not measured


# --- reference record and contributions ----------------------------------------------------------

ONE_CALL_ROWS = 250_000  # up to this many rows (records × (inputs + 1)), contributions make one model call


def _log_odds(p: np.ndarray) -> np.ndarray:
    import numpy as np

    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.asarray(np.log(p / (1 - p)))


def scored_contributions(
    model: Pipeline, records: pd.DataFrame, policy: Policy, reference: Reference
) -> tuple[np.ndarray, pd.DataFrame]:
    """Each record's score (the model's probability of the favourable label) and :func:`contributions`.

    A logistic regression's pushes are its coefficients times each input's encoded change, from one
    transform of the records. Any other model's are measured by swapping: up to
    :data:`ONE_CALL_ROWS` rows in one model call on the records and every one-column swap of them
    (a call costs milliseconds of fixed overhead, so one call on (k+1)·n rows beats k+1 calls on n
    rows, and the scores come with it).
    """
    X = feature_frame(records, policy, model).reset_index(drop=True)
    typical = {col: reference[col] if col in policy.numeric else str(reference[col]) for col in policy.features}
    columns = list(policy.features)
    blocks = _linear_blocks(model, columns)
    if blocks is not None and len(X) <= FEW_ROWS:
        return _linear_few(model, X, typical)
    if blocks is not None:
        return _linear_contributions(model, X, typical, blocks)
    return _swapped_contributions(model, X, typical, columns)


FEW_ROWS = 256  # up to this many records (a served request), a linear model is scored without its encoder


def _linear_few(model: Any, X: pd.DataFrame, typical: Reference) -> tuple[np.ndarray, pd.DataFrame]:
    """:func:`_linear_contributions` for a few records, read off the fitted encoder's own parameters instead
    of calling it: a number's term is ``coef · (x − mean) / scale``, a category's the coefficient of its
    one-hot column (0 for a category unseen in training, as ``handle_unknown="ignore"`` encodes it), the
    score ``expit(intercept + Σ terms)``. The same arithmetic as the pipeline's, without the per-call cost
    of a ColumnTransformer (about 8 ms a call): equal to the pipeline to 1e-12 (tests/unit/models/test_explain.py)."""
    import numpy as np
    import pandas as pd
    from scipy.special import expit

    pre, clf = model.steps[0][1], model.steps[1][1]
    coef, terms, ref = clf.coef_[0], {}, {}
    for name, transformer, cols in pre.transformers_:
        if name == "remainder":
            continue
        start = pre.output_indices_[name].start
        if hasattr(transformer, "categories_"):  # one-hot: each category's coefficient, by its value as text
            for col, categories in zip(cols, transformer.categories_, strict=True):
                weights = {str(c): float(coef[start + k]) for k, c in enumerate(categories)}
                terms[col] = np.array([weights.get(str(v), 0.0) for v in X[col]], dtype=float)
                ref[col] = weights.get(str(typical.get(col, X[col].iloc[0])), 0.0)
                start += len(categories)
        else:  # scaled numbers
            mean = transformer.mean_ if transformer.mean_ is not None else np.zeros(len(cols))
            scale = transformer.scale_ if transformer.scale_ is not None else np.ones(len(cols))
            for i, col in enumerate(cols):
                w = float(coef[start + i])
                terms[col] = w * ((X[col].to_numpy(dtype=float) - mean[i]) / scale[i])
                ref[col] = w * ((float(typical.get(col, X[col].iloc[0])) - mean[i]) / scale[i])
    logit = clf.intercept_[0] + np.sum([terms[c] for c in terms], axis=0)
    return expit(logit), pd.DataFrame({col: terms[col] - ref[col] for col in X.columns if col in terms})


def _swapped_contributions(
    model: Any, X: pd.DataFrame, typical: Reference, columns: list[str]
) -> tuple[np.ndarray, pd.DataFrame]:
    """Any model's pushes: the log-odds of each record minus those with one input swapped to its typical value."""
    import pandas as pd

    if len(X) * (len(columns) + 1) <= ONE_CALL_ROWS:
        frames = [X, *(X.assign(**{col: typical[col]}) for col in columns)]
        p = model.predict_proba(pd.concat(frames, ignore_index=True))[:, 1].reshape(len(columns) + 1, len(X))
        odds = _log_odds(p)
        return p[0], pd.DataFrame({col: odds[0] - odds[i + 1] for i, col in enumerate(columns)})
    scores = model.predict_proba(X)[:, 1]
    base = _log_odds(scores)
    return scores, pd.DataFrame(
        {col: base - _log_odds(model.predict_proba(X.assign(**{col: typical[col]}))[:, 1]) for col in columns}
    )


def _linear_blocks(model: Any, columns: list[str]) -> dict[str, np.ndarray] | None:
    """For Fairgate's logistic-regression pipeline (one-hot and scaled inputs), the encoded columns
    each input becomes; None for any other model (its pushes are measured by swapping)."""
    from sklearn.linear_model import LogisticRegression

    blocks = encoded_blocks(model, columns)
    clf = model.steps[1][1] if blocks is not None else None
    if not isinstance(clf, LogisticRegression) or clf.coef_.shape[0] != 1:
        return None
    return blocks


def encoded_blocks(model: Any, columns: list[str]) -> dict[str, np.ndarray] | None:
    """For a two-step pipeline of Fairgate's encoder (one-hot categories, scaled numbers) and a
    classifier, the encoded columns each input becomes (``occupation`` → its one-hot columns); None
    for any other shape (an imputing encoder, a mitigation wrapper)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    steps = getattr(model, "steps", None) or []
    if len(steps) != 2 or not isinstance(steps[0][1], ColumnTransformer):
        return None
    pre = steps[0][1]
    blocks: dict[str, np.ndarray] = {}
    for name, transformer, cols in pre.transformers_:
        if name == "remainder":
            continue
        start = pre.output_indices_[name].start
        if isinstance(transformer, OneHotEncoder) and transformer.drop is None:
            widths = [len(c) for c in transformer.categories_]
        elif isinstance(transformer, StandardScaler):
            widths = [1] * len(cols)
        else:
            return None
        for col, width in zip(cols, widths, strict=True):
            blocks[col] = np.arange(start, start + width)
            start += width
    return blocks if set(blocks) == set(columns) else None


def _linear_contributions(
    model: Any, X: pd.DataFrame, typical: Reference, blocks: dict[str, np.ndarray]
) -> tuple[np.ndarray, pd.DataFrame]:
    """Exact pushes of a linear model: each input's coefficients times its encoded change from the typical
    record (what swapping the input to its typical value changes in the log-odds), from one transform."""
    import numpy as np
    import pandas as pd

    pre, clf = model.steps[0][1], model.steps[1][1]
    encoded = pre.transform(X)
    coef = clf.coef_[0]
    scores = clf.predict_proba(encoded)[:, 1]
    if hasattr(encoded, "tocsc"):
        encoded = encoded.tocsc()  # column blocks of a sparse matrix, without densifying it
    ref = _encoded_typical(pre, typical, X)
    push = {
        col: np.asarray(encoded[:, idx] @ coef[idx]).ravel() - float(ref[idx] @ coef[idx])
        for col, idx in blocks.items()
    }
    return scores, pd.DataFrame({col: push[col] for col in X.columns if col in push})


# The typical record, encoded, per fitted encoder: a server explains one request after another against
# the same record, so it is encoded once (a weak reference: a replaced model takes its entry with it).
_TYPICAL: weakref.WeakKeyDictionary[Any, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()


def _encoded_typical(pre: Any, typical: Reference, X: pd.DataFrame) -> np.ndarray:
    """The typical record encoded by ``pre`` (an input it does not name takes the first record's value)."""
    import json

    import numpy as np
    import pandas as pd

    columns = list(X.columns)
    complete = all(c in typical for c in columns)
    key = json.dumps([[c, typical.get(c)] for c in columns], default=str)
    cached = _TYPICAL.setdefault(pre, {}) if complete else {}
    if key not in cached:
        row = pre.transform(pd.DataFrame([{c: typical.get(c, X[c].iloc[0]) for c in columns}]))
        cached[key] = row.toarray()[0] if hasattr(row, "toarray") else np.asarray(row)[0]
    return cached[key]


def contributions(model: Pipeline, records: pd.DataFrame, policy: Policy, reference: Reference) -> pd.DataFrame:
    """Each input column's push on each record's score, in log-odds.

    The push of column *j* is the record's log-odds minus the log-odds of the same record with
    column *j* set to its value in ``reference``. For a logistic regression this is exactly the
    coefficient times the change in the encoded column(s); for other models it is the effect of
    that one column with the others held fixed.
    """
    return scored_contributions(model, records, policy, reference)[1]


def feature_label(policy: Policy, col: str) -> str:
    """The plain name of an input column: the policy's ``dataset.feature_labels`` or the column spelled out."""
    return policy.dataset.feature_labels.get(col) or col.replace("_", " ").replace("-", " ")


def _number(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"


def describe(policy: Policy, col: str, value: Any, typical: Any, push: float) -> str:
    """One reason in plain words, e.g. "Capital gain of 15,024 (typical: 0) raised the score"."""
    name = feature_label(policy, col)
    effect = "raised" if push > 0 else "lowered"
    if col in policy.numeric:
        value, typical = float(value), float(typical)
        where = "above" if value > typical else "below" if value < typical else "at"
        text = f"{name} of {_number(value)} ({where} the typical {_number(typical)})"
    else:
        names = policy.dataset.value_labels.get(col, {})
        text = f"{name} is {names.get(str(value), value)} (most common: {names.get(str(typical), typical)})"
    return f"{text[0].upper()}{text[1:]} {effect} the score"


def reason_codes(
    model: Pipeline, records: pd.DataFrame, policy: Policy, reference: Reference, *, top: int = 3
) -> list[list[Reason]]:
    """For each record, up to ``top`` columns that pushed its score towards the decision it got.

    A favourable decision lists the largest positive pushes, an unfavourable one the largest
    negative pushes (the "principal reasons" of an adverse-action notice). Each reason holds the
    column, its value, the typical value, the push in log-odds and the sentence for end users.
    """
    return explained(model, records, policy, reference, top=top)[2]


def explained(
    model: Pipeline, records: pd.DataFrame, policy: Policy, reference: Reference, *, top: int = 3
) -> tuple[np.ndarray, np.ndarray, list[list[Reason]]]:
    """Scores, 0/1 decisions at the policy's threshold, and :func:`reason_codes`, from one model call."""
    import numpy as np

    scores, push = scored_contributions(model, records, policy, reference)
    decisions = (scores >= policy.model.decision_threshold).astype("int8")
    cols = list(push.columns)
    values = push.to_numpy()
    signed = values * np.where(decisions == 1, 1.0, -1.0)[:, None]
    order = np.argsort(-signed, axis=1, kind="stable")[:, :top]
    raw = {c: records[c].to_numpy() for c in cols}
    out = []
    for i in range(len(values)):
        reasons: list[Reason] = []
        for j in order[i]:
            if signed[i, j] <= 1e-9:
                break
            col = cols[j]
            value = plain(raw[col][i])
            reasons.append(
                {
                    "feature": col,
                    "value": value,
                    "typical": reference[col],
                    "push": float(values[i, j]),
                    "text": describe(policy, col, value, reference[col], values[i, j]),
                }
            )
        out.append(reasons)
    return scores, decisions, out


# --- permutation importance ----------------------------------------------------------------------


def importance(
    model: Pipeline, test: pd.DataFrame, policy: Policy, *, repeats: int = 5, min_rows: int = 50
) -> Importance:
    """Permutation importance (drop in ROC AUC when one input column is shuffled) on held-out rows.

    Each column is shuffled across all test rows ``repeats`` times; every shuffled prediction is
    scored on all rows (``overall``) and inside each protected attribute's privileged and
    unprivileged rows (``by_group``), so all groups see the same perturbation. A group with
    fewer than ``min_rows`` rows or one label class is listed under ``skipped`` instead. Above
    ``sampling.max_rows`` test rows, a sample stratified by joint group and label is used (the
    spread over repeats is in ``std``; ``measured_on`` says which rows).
    """
    import numpy as np

    test = test.reset_index(drop=True)
    of = len(test)
    codes = group_codes(test, policy)
    keep = sampling.stratified(
        cell_ids(codes) * 2 + labels(test, policy), policy.sampling.max_rows, seed=policy.model.seed
    )
    if keep is not None:
        test, codes = test.iloc[keep].reset_index(drop=True), codes.iloc[keep].reset_index(drop=True)
    X = feature_frame(test, policy, model)
    y = labels(test, policy)
    measured_on = sampling.described(len(test), of, "test rows")
    masks = {"overall": np.ones(len(X), dtype=bool)}
    skipped: dict[str, str] = {}
    for attr in policy.protected_attributes:
        for code, side in ((0, "unprivileged"), (1, "privileged")):
            mask = codes[attr.column].to_numpy() == code
            if mask.sum() < min_rows or len(np.unique(y[mask])) < 2:
                skipped[f"{attr.column}={side}"] = (
                    f"{int(mask.sum())} rows" if mask.sum() < min_rows else "one label class only"
                )
            else:
                masks[f"{attr.column}={side}"] = mask
    if len(np.unique(y)) < 2:  # ROC AUC is undefined; the gate reports the missing evidence
        return {
            "metric": "drop in ROC AUC",
            "repeats": repeats,
            "rows": len(X),
            "measured_on": measured_on,
            "overall": {},
            "by_group": {},
            "skipped": {"all rows": f"one class of {policy.dataset.label!r} only"},
        }

    def auc(scores: np.ndarray) -> dict[str, float]:
        return {name: rank_auc(y[m], scores[m]) for name, m in masks.items()}

    base = auc(model.predict_proba(X)[:, 1])
    rng = np.random.default_rng(policy.model.seed)
    drops: dict[str, dict[str, list[float]]] = {name: {} for name in masks}
    for col in policy.features:
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[col] = X[col].to_numpy()[rng.permutation(len(X))]
            for name, value in auc(model.predict_proba(shuffled)[:, 1]).items():
                drops[name].setdefault(col, []).append(base[name] - value)
    summary: dict[str, dict[str, Spread]] = {
        name: {col: {"mean": float(np.mean(d)), "std": float(np.std(d))} for col, d in cols.items()}
        for name, cols in drops.items()
    }
    return {
        "metric": "drop in ROC AUC",
        "repeats": repeats,
        "rows": len(X),
        "measured_on": measured_on,
        "overall": summary.pop("overall"),
        "by_group": summary,
        "skipped": skipped,
    }
