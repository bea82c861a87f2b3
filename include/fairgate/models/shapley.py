"""Shapley values of the policy's inputs: the developer's view of why a model scores as it does.

Each record's score, in the model's own output space, is split among its inputs so that the parts
add up exactly: ``base + Σ values = output`` (additivity), where ``base`` is the average output over
a background of training rows. Inputs are the policy's columns (``occupation``), never the encoded
columns a pipeline makes of them: the values of an input's encoded columns are summed, which keeps
additivity.

Three methods, and every result says which it used (``method``) and in what space (``output``):

- **linear, exact.** Fairgate's logistic-regression pipeline: with inputs taken as independent,
  the Shapley value of input *j* is ``Σ_c coef_c · (x_c − mean_c)`` over its encoded columns *c*,
  the mean taken over the background, in log-odds. This closed form is what ``shap``'s
  ``LinearExplainer`` computes with an independent masker (a test holds the two equal); it is
  computed here directly, so the default model pays no ``shap`` import.
- **tree, exact.** A histogram gradient-boosting (log-odds) or random-forest (probability) pipeline:
  ``shap.TreeExplainer``'s path-dependent algorithm on the encoded rows, exact for the trees.
- **model-agnostic.** Any other model (a mitigation wrapper, an imputing encoder), on the probability
  of the favourable label, over the raw inputs against the first :data:`AGNOSTIC_BACKGROUND`
  background rows: with up to
  :data:`EXHAUSTIVE_MAX_INPUTS` inputs ``shap``'s exact explainer evaluates every coalition (exact
  for that background); with more, its permutation explainer samples orders (an estimate, additive
  by construction). ``detail`` says which, with the background rows and evaluations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.data.features import feature_frame
from fairgate.errors import MissingExtra
from fairgate.groups import group_codes
from fairgate.models.explain import encoded_blocks
from fairgate.policy.schema import Policy

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

BACKGROUND_ROWS = 100  # training rows the base value and the sampled explainer average over
SAMPLED_ROWS = 40  # records the gate explains with a model-agnostic explainer (tree and linear: every test row)
AGNOSTIC_BACKGROUND = 25  # background rows of a model-agnostic explainer (each evaluation scores all of them)
EXHAUSTIVE_MAX_INPUTS = 6  # up to this many inputs, every coalition is evaluated (2^k per record)
PERMUTATION_EVALS = 500  # model evaluations per record of the permutation explainer (shap's default)
SUMMARY_EVALS = 200  # the same for the gate's summary, a mean over its records (each pair of orders is one model call)


@dataclass(frozen=True)
class Explanation:
    """Shapley values of ``features`` for each record (rows of ``values``), and how they were computed."""

    features: list[str]
    values: np.ndarray  # records × features
    base: float  # the average output over the background
    output: str  # "log-odds" | "probability"
    method: str  # "linear (exact)" | "tree (exact)" | "permutation (sampled)"
    detail: str  # the method in a sentence: background rows, evaluations

    @property
    def outputs(self) -> np.ndarray:
        """Each record's model output in ``output`` space: ``base`` plus its values."""
        total: np.ndarray = self.base + self.values.sum(axis=1)
        return total

    def record(self, i: int) -> RecordJSON:
        return {
            "method": self.method,
            "output": self.output,
            "base": self.base,
            "values": {f: float(v) for f, v in zip(self.features, self.values[i], strict=True)},
        }


class RecordJSON(TypedDict):
    method: str
    output: str
    base: float
    values: dict[str, float]  # input → its Shapley value


class Summary(TypedDict):
    """Mean absolute Shapley value per input, over all explained rows and per protected group side."""

    method: str
    output: str
    detail: str
    measured_on: str
    rows: int
    base: float
    overall: dict[str, float]
    by_group: dict[str, dict[str, float]]  # "sex=privileged" → input → mean |value|
    max_additivity_error: float  # the largest |base + Σ values − the model's own output| over the rows


def import_shap() -> Any:
    """``shap``, imported without the notice matplotlib gives on its import (shap's colour maps call a
    matplotlib function that is marked for deprecation; nothing of ours uses it)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        try:
            import shap
        except ImportError as exc:  # an optional extra: the linear model never needs it
            raise MissingExtra(
                "shapley.enabled: Shapley values of this model (a tree, a mitigation wrapper or another "
                'non-linear pipeline) need the shap package: pip install "fairgate[explain]", or set '
                "shapley.enabled: false in the policy"
            ) from exc
    return shap


def background(training: pd.DataFrame, *, rows: int = BACKGROUND_ROWS, seed: int = 0) -> pd.DataFrame:
    """A fixed sample of training rows the values are measured against (all of them when fewer)."""
    return training.sample(n=min(rows, len(training)), random_state=seed).reset_index(drop=True)


def explain(
    model: Any, records: pd.DataFrame, policy: Policy, reference: pd.DataFrame, *, evals: int = PERMUTATION_EVALS
) -> Explanation:
    """Shapley values of each record's inputs under ``model``, against the ``reference`` rows (background);
    ``evals``: model evaluations per record, where the permutation explainer runs."""
    X = feature_frame(records, policy, model).reset_index(drop=True)
    B = feature_frame(reference, policy, model).reset_index(drop=True)
    kind = exact_kind(model, policy)
    if kind == "linear":
        return _linear(model, X, B, _blocks(model, X))
    if kind == "tree":
        return _tree(model, X, B, _blocks(model, X))
    return _sampled(model, X, B, evals)


def exact_kind(model: Any, policy: Policy) -> str | None:
    """Which exact method explains ``model`` (``linear`` or ``tree``), or None for a model-agnostic one."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if encoded_blocks(model, list(policy.features)) is None or getattr(model, "group_attributes", None):
        return None
    clf = model.steps[1][1]
    if isinstance(clf, LogisticRegression) and clf.coef_.shape[0] == 1:
        return "linear"
    if isinstance(clf, (HistGradientBoostingClassifier, RandomForestClassifier)):
        return "tree"
    return None


def _blocks(model: Any, X: pd.DataFrame) -> dict[str, np.ndarray]:
    blocks = encoded_blocks(model, list(X.columns))
    assert blocks is not None  # exact_kind said so
    return blocks


def _dense(matrix: Any) -> np.ndarray:
    import numpy as np

    dense: np.ndarray = np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=float)
    return dense


def _by_input(encoded_values: np.ndarray, blocks: dict[str, np.ndarray], columns: list[str]) -> np.ndarray:
    import numpy as np

    return np.column_stack([encoded_values[:, blocks[c]].sum(axis=1) for c in columns])


def _linear(model: Any, X: pd.DataFrame, B: pd.DataFrame, blocks: dict[str, np.ndarray]) -> Explanation:
    pre, clf = model.steps[0][1], model.steps[1][1]
    mean = _dense(pre.transform(B)).mean(axis=0)
    coef = clf.coef_[0]
    values = (_dense(pre.transform(X)) - mean) * coef
    return Explanation(
        features=list(X.columns),
        values=_by_input(values, blocks, list(X.columns)),
        base=float(clf.intercept_[0] + mean @ coef),
        output="log-odds",
        method="linear (exact)",
        detail=f"closed form coef x (x - mean) over {len(B)} background rows, inputs taken as independent",
    )


def _tree(model: Any, X: pd.DataFrame, B: pd.DataFrame, blocks: dict[str, np.ndarray]) -> Explanation:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    shap = import_shap()
    pre, clf = model.steps[0][1], model.steps[1][1]
    explainer = shap.TreeExplainer(clf)  # path-dependent: the trees' own cover, no background needed
    values = np.asarray(explainer.shap_values(_dense(pre.transform(X)), check_additivity=False))
    base = np.ravel(explainer.expected_value)
    forest = isinstance(clf, RandomForestClassifier)
    if forest:  # one output per class: the favourable label's (class 1)
        values = values[..., 1] if values.ndim == 3 else values
        base = base[-1:]
    return Explanation(
        features=list(X.columns),
        values=_by_input(values, blocks, list(X.columns)),
        base=float(base[0]),
        output="probability" if forest else "log-odds",
        method="tree (exact)",
        detail="shap TreeExplainer, path-dependent (the trees' own training cover as background)",
    )


def _sampled(model: Any, X: pd.DataFrame, B: pd.DataFrame, evals: int) -> Explanation:
    """The permutation explainer on the raw inputs, categories as integer codes it can mask."""
    import numpy as np
    import pandas as pd

    shap = import_shap()
    B = B.head(AGNOSTIC_BACKGROUND)  # ~500 evaluations x these rows per record: the cost, bounded
    columns = list(X.columns)
    categories = {
        c: sorted(set(X[c].astype(str)) | set(B[c].astype(str)))
        for c in columns
        if not pd.api.types.is_numeric_dtype(X[c])
    }

    def encode(frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(columns)))
        for j, c in enumerate(columns):
            if c in categories:
                out[:, j] = pd.Categorical(frame[c].astype(str), categories=categories[c]).codes
            else:
                out[:, j] = frame[c].to_numpy(dtype=float)
        return out

    def score(rows: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(
            {
                c: np.asarray(categories[c], dtype=object)[rows[:, j].astype(int)] if c in categories else rows[:, j]
                for j, c in enumerate(columns)
            }
        )
        return np.asarray(model.predict_proba(frame)[:, 1], dtype=float)

    masker = shap.maskers.Independent(encode(B), max_samples=len(B))
    if len(columns) <= EXHAUSTIVE_MAX_INPUTS:  # every coalition: exact for this background
        result = shap.ExactExplainer(score, masker)(encode(X), silent=True)
        method, detail = (
            "exhaustive (exact over the background)",
            f"shap ExactExplainer, all {2 ** len(columns)} coalitions against {len(B)} background rows",
        )
    else:
        evals = max(evals, 2 * len(columns) + 1)
        result = shap.PermutationExplainer(score, masker, seed=0)(encode(X), max_evals=evals, silent=True)
        method, detail = (
            "permutation (sampled)",
            f"shap PermutationExplainer, {evals} evaluations per record against {len(B)} background rows",
        )
    return Explanation(
        features=columns,
        values=np.asarray(result.values, dtype=float),
        base=float(np.ravel(result.base_values)[0]),
        output="probability",
        method=method,
        detail=detail,
    )


def model_output(model: Any, records: pd.DataFrame, policy: Policy, output: str) -> np.ndarray:
    """The model's own output for ``records`` in ``output`` space (what the values add up to)."""
    import numpy as np

    p = model.predict_proba(feature_frame(records, policy, model))[:, 1]
    if output == "probability":
        return np.asarray(p, dtype=float)
    steps = getattr(model, "steps", None)
    if steps and hasattr(steps[-1][1], "decision_function"):  # the exact margin, not a clipped log of p
        return np.asarray(model.decision_function(feature_frame(records, policy, model)), dtype=float)
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.asarray(np.log(p / (1 - p)), dtype=float)


def summary(model: Any, test: pd.DataFrame, policy: Policy, training: pd.DataFrame, *, measured_on: str) -> Summary:
    """Mean |Shapley value| per input on the test rows, overall and inside each protected group side.

    Exact methods explain every test row; the sampled one a seeded sample of :data:`SAMPLED_ROWS`.
    The largest additivity error against the model's own output is kept, so the record shows it holds.
    """
    import numpy as np

    reference = background(training, seed=policy.model.seed)
    rows = test
    if exact_kind(model, policy) is None and len(test) > SAMPLED_ROWS:
        rows = test.sample(n=SAMPLED_ROWS, random_state=policy.model.seed)
        measured_on = f"{measured_on}, a sample of {SAMPLED_ROWS}"
    rows = rows.reset_index(drop=True)
    found = explain(model, rows, policy, reference, evals=SUMMARY_EVALS)
    magnitude = np.abs(found.values)
    codes = group_codes(rows, policy)
    by_group: dict[str, dict[str, float]] = {}
    for col in codes.columns:
        for side, flag in (("unprivileged", 0), ("privileged", 1)):
            mask = codes[col].to_numpy() == flag
            if mask.any():
                by_group[f"{col}={side}"] = dict(
                    zip(found.features, magnitude[mask].mean(axis=0).round(6).tolist(), strict=True)
                )
    error = np.abs(found.outputs - model_output(model, rows, policy, found.output))
    return {
        "method": found.method,
        "output": found.output,
        "detail": found.detail,
        "measured_on": measured_on,
        "rows": len(rows),
        "base": found.base,
        "overall": dict(zip(found.features, magnitude.mean(axis=0).round(6).tolist(), strict=True)),
        "by_group": by_group,
        "max_additivity_error": float(error.max()) if len(error) else 0.0,
    }
