"""Shapley values for developers, on synthetic credit data (not Adult): additivity against the model's
own output for every method, the linear values equal to the closed form by hand and to shap's own
LinearExplainer, and the sampled explainer close to exact Shapley values enumerated by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from fairgate.data.features import feature_frame
from fairgate.models import shapley
from fairgate.models.training import build_pipeline
from fairgate.policy.loader import parse_policy
from fairgate_dev.synthetic import credit_applications

RAW = {
    "model_name": "credit",
    "dataset": {
        "source": "/credit.csv",
        "label": "approved",
        "favorable_label": 1,
        "features": {
            "categorical": ["savings_band", "employment", "postcode_area"],
            "numeric": ["income", "loan_amount", "duration_months", "age"],
        },
    },
    "protected_attributes": [{"column": "gender", "privileged": ["male"], "allowed": ["female", "male"]}],
}


def _policy(**model):
    return parse_policy({**RAW, "model": {"estimator": "logistic_regression", **model}})


@pytest.fixture(scope="module")
def credit():
    data = credit_applications(3000, seed=11)
    return data.iloc[:2500].reset_index(drop=True), data.iloc[2500:].reset_index(drop=True)


def _fit(policy, train):
    model = build_pipeline(policy)
    return model.fit(feature_frame(train, policy), (train["approved"] == 1).astype(int))


def test_linear_values_are_the_closed_form_and_shaps_own(credit):
    shap = shapley.import_shap()

    train, test = credit
    policy = _policy()
    model = _fit(policy, train)
    reference = shapley.background(train, seed=0)
    found = shapley.explain(model, test, policy, reference)
    assert found.method == "linear (exact)" and found.output == "log-odds"
    # additivity: base + the values = the model's margin, record by record
    margin = model.decision_function(feature_frame(test, policy))
    assert np.abs(found.outputs - margin).max() < 1e-9
    # one numeric input by hand: coefficient / scale × (x − the background's mean)
    pre, clf = model.steps
    scaler = pre[1].named_transformers_["numeric"]
    j = list(scaler.feature_names_in_).index("income")
    coef = clf[1].coef_[0][pre[1].output_indices_["numeric"].start + j]
    by_hand = coef / scaler.scale_[j] * (test["income"] - reference["income"].mean())
    assert found.values[:, found.features.index("income")] == pytest.approx(by_hand.to_numpy(), abs=1e-9)
    # shap's LinearExplainer on the encoded rows, summed over each input's encoded columns
    encode = pre[1]
    dense = lambda m: m.toarray() if hasattr(m, "toarray") else np.asarray(m)  # noqa: E731
    masker = shap.maskers.Independent(dense(encode.transform(feature_frame(reference, policy))), max_samples=100)
    theirs = shap.LinearExplainer(clf[1], masker).shap_values(dense(encode.transform(feature_frame(test, policy))))
    names = list(encode.get_feature_names_out())
    for col in found.features:
        block = [i for i, n in enumerate(names) if n.split("__", 1)[1].split("_")[0] == col.split("_")[0]]
        block = [i for i in block if n_belongs(names[i], col)]
        assert found.values[:, found.features.index(col)] == pytest.approx(theirs[:, block].sum(axis=1), abs=1e-9)


def n_belongs(encoded: str, col: str) -> bool:
    """Whether an encoded column name (``categorical__savings_band_low``) is one of ``col``'s."""
    name = encoded.split("__", 1)[1]
    return name == col or name.startswith(f"{col}_")


@pytest.mark.parametrize("estimator", ["hist_gradient_boosting", "random_forest"])
def test_tree_values_are_exact_and_add_up(credit, estimator):
    train, test = credit
    policy = _policy(
        estimator=estimator, params={"max_iter": 50} if estimator.startswith("hist") else {"n_estimators": 30}
    )
    model = _fit(policy, train)
    found = shapley.explain(model, test, policy, shapley.background(train))
    assert found.method == "tree (exact)"
    own = shapley.model_output(model, test, policy, found.output)
    if estimator == "random_forest":
        assert found.output == "probability"
        assert np.array_equal(own, model.predict_proba(feature_frame(test, policy))[:, 1])
    else:
        assert found.output == "log-odds"
    assert np.abs(found.outputs - own).max() < 1e-6
    # the latent creditworthiness drives income and savings: they outweigh the random age
    mean_abs = dict(zip(found.features, np.abs(found.values).mean(axis=0), strict=True))
    assert mean_abs["income"] > mean_abs["age"] and mean_abs["savings_band"] > mean_abs["age"]


def _exact_shapley(score, x: pd.DataFrame, reference: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Interventional Shapley values of one record by enumeration: v(S) = mean over the background of
    the score with the inputs in S taken from the record."""
    k = len(columns)

    def v(subset):
        frame = reference.copy()
        for c in subset:
            frame[c] = x[c].iloc[0]
        return score(frame).mean()

    values = np.zeros(k)
    for j, col in enumerate(columns):
        others = [c for c in columns if c != col]
        for size in range(k):
            for subset in itertools.combinations(others, size):
                weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
                values[j] += weight * (v((*subset, col)) - v(subset))
    return values


def test_a_model_agnostic_explainer_adds_up_and_equals_enumeration(credit):
    train, test = credit
    raw = {**RAW, "dataset": {**RAW["dataset"], "missing": "impute"}}
    raw["dataset"]["features"] = {"categorical": ["savings_band"], "numeric": ["income", "loan_amount"]}
    policy = parse_policy(raw)  # an imputing encoder: no encoded blocks, so the sampled explainer
    model = _fit(policy, train)
    reference = shapley.background(train, rows=shapley.AGNOSTIC_BACKGROUND)
    records = test.head(5)
    found = shapley.explain(model, records, policy, reference)
    assert found.method == "exhaustive (exact over the background)" and found.output == "probability"
    own = model.predict_proba(feature_frame(records, policy))[:, 1]
    assert np.abs(found.outputs - own).max() < 1e-9
    X = feature_frame(reference, policy)
    score = lambda frame: model.predict_proba(frame)[:, 1]  # noqa: E731
    for i in range(len(records)):
        exact = _exact_shapley(score, feature_frame(records.iloc[[i]], policy), X, found.features)
        assert found.values[i] == pytest.approx(exact, abs=1e-9)


def test_the_summary_splits_by_group_and_keeps_the_additivity_error(credit):
    train, test = credit
    policy = _policy()
    model = _fit(policy, train)
    found = shapley.summary(model, test, policy, train, measured_on="test split (500 rows)")
    assert found["rows"] == len(test) and found["max_additivity_error"] < 1e-9
    assert set(found["by_group"]) == {"gender=unprivileged", "gender=privileged"}
    women = (test["gender"] == "female").to_numpy()
    values = shapley.explain(model, test, policy, shapley.background(train, seed=policy.model.seed)).values
    col = found["overall"]
    assert list(col) == list(policy.features)
    j = list(policy.features).index("income")
    assert found["by_group"]["gender=unprivileged"]["income"] == pytest.approx(
        np.abs(values[women, j]).mean(), abs=1e-6
    )


def test_with_many_inputs_the_permutation_explainer_adds_up_and_comes_close(credit):
    train, test = credit
    raw = {**RAW, "dataset": {**RAW["dataset"], "missing": "impute"}}
    policy = parse_policy(raw)  # seven inputs: more than the exhaustive explainer takes
    model = _fit(policy, train)
    reference = shapley.background(train, rows=20)
    records = test.head(3)
    found = shapley.explain(model, records, policy, reference)
    assert found.method == "permutation (sampled)"
    assert np.abs(found.outputs - model.predict_proba(feature_frame(records, policy))[:, 1]).max() < 1e-9
    X = feature_frame(reference, policy)
    score = lambda frame: model.predict_proba(frame)[:, 1]  # noqa: E731
    exact = _exact_shapley(score, feature_frame(records.iloc[[0]], policy), X, found.features)
    assert found.values[0] == pytest.approx(exact, abs=0.02)


@pytest.mark.lifecycle
@pytest.mark.parametrize("estimator", ["logistic_regression", "hist_gradient_boosting"])
def test_explain_shapley_from_the_cli_adds_up_to_the_logged_score(tmp_path, capsys, estimator):
    """A deployed model, a scored day, and `fairgate explain ROW --shapley`: base + values is the
    log-odds of the score the prediction log holds for that record."""
    import json
    from datetime import date

    import yaml
    from tests.support.policies import synthetic_credit_policy

    from fairgate.cli.main import main
    from fairgate.policy.loader import load_policy
    from fairgate.stages import lifecycle, monitoring
    from fairgate.stages.lifecycle import RunInfo
    from fairgate.storage.local import LocalStore
    from fairgate_dev.synthetic import write_feed

    path, _ = synthetic_credit_policy(tmp_path, 3000, seed=31)
    write_feed(str(tmp_path / "feed"), "2026-06-01", 1, 200, seed=32)
    raw = yaml.safe_load(path.read_text())
    raw["audit"] = {**raw.get("audit", {}), "incoming": str(tmp_path / "feed")}
    raw["model"] = {**raw["model"], "estimator": estimator, "params": {}}
    path.write_text(yaml.safe_dump(raw))
    policy = load_policy(path)
    store = LocalStore(tmp_path / "store")
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r")).decision == "deployed"
    monitoring.score(store, policy, date(2026, 6, 1))
    log = pd.read_parquet(tmp_path / "store/predictions/model=credit/date=2026-06-01/part.parquet")
    row = log.iloc[7]
    args = [
        "--artifact-root",
        str(store.root),
        "--policy",
        str(path),
        "explain",
        str(row["application_id"]),
        "--shapley",
    ]
    capsys.readouterr()  # what `policy init` said while the data was set up
    assert main([*args, "--json"]) == 0
    said = json.loads(capsys.readouterr().out)["shapley"]
    assert said["method"] == ("linear (exact)" if estimator == "logistic_regression" else "tree (exact)")
    assert said["output"] == "log-odds" and set(said["values"]) == set(policy.features)
    score = float(row["score"])
    assert said["base"] + sum(said["values"].values()) == pytest.approx(math.log(score / (1 - score)), abs=1e-6)
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Shapley values (" in text and "base + values = " in text


def test_without_shap_a_tree_model_names_the_extra_and_the_policy_key_and_a_linear_one_needs_none(credit, monkeypatch):
    """shap is an optional extra (`fairgate[explain]`): where it is not installed, the linear model's values
    still come (closed form), and a tree model's request fails as bad input naming the extra and the key,
    not as a ModuleNotFoundError a task would retry."""
    import sys

    from fairgate.errors import MissingExtra

    train, test = credit
    reference = shapley.background(train, seed=0)
    monkeypatch.setitem(sys.modules, "shap", None)  # what `import shap` meets where it is not installed
    linear = _policy()
    assert shapley.explain(_fit(linear, train), test.iloc[:5], linear, reference).method == "linear (exact)"
    tree = _policy(estimator="hist_gradient_boosting")
    with pytest.raises(MissingExtra, match=r"fairgate\[explain\].*shapley\.enabled: false"):
        shapley.explain(_fit(tree, train), test.iloc[:5], tree, reference)
