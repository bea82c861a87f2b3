"""Reason codes, permutation importance and the proxy check, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.support.fixtures import linear_push, tiny_frame, tiny_policy
from tests.support.policies import default_policy_dict, edited

from fairgate import groups
from fairgate.data.features import feature_frame
from fairgate.fairness import proxies
from fairgate.governance.records import LifecycleRecord
from fairgate.models import explain, training
from fairgate.policy.loader import parse_policy


@pytest.mark.parametrize(
    "record,expected_decision",
    [
        ({"job_type": "seasonal", "income_k": 48.0, "tenure": 9.0}, 0),  # the job category dominates
        ({"job_type": "clerk", "income_k": 20.0, "tenure": 10.0}, 0),  # low income dominates
        ({"job_type": "engineer", "income_k": 52.0, "tenure": 19.0}, 1),  # favourable: its main reasons
    ],
)
def test_top_reason_is_the_one_the_coefficients_say(record, expected_decision):
    policy = tiny_policy()
    df = tiny_frame()
    model = training.fit(df, policy)
    reference = training.reference_record(df, policy)
    assert reference["job_type"] == "clerk" and reference["tenure"] == df["tenure"].median()

    row = pd.DataFrame([{**record, "id": 1, "sex": "F", "approved": "no"}])
    reasons = explain.reason_codes(model, row, policy, reference)[0]
    push = linear_push(model, policy, record, reference)
    sign = 1 if expected_decision == 1 else -1
    expected = max(push, key=lambda c: sign * push[c])
    assert training.predict(model, row, policy)[1][0] == expected_decision
    assert reasons[0]["feature"] == expected
    for r in reasons:
        assert r["push"] == pytest.approx(push[r["feature"]], abs=1e-6)
        assert sign * r["push"] > 0  # only factors that pushed towards the decision are listed
    assert [r["feature"] for r in reasons] == sorted(push, key=lambda c: -sign * push[c])[: len(reasons)]


def test_reason_text_is_plain_words():
    policy = tiny_policy()
    df = tiny_frame()
    model = training.fit(df, policy)
    reference = training.reference_record(df, policy)
    rows = tiny_frame(n=200, seed=1)
    texts = [r["text"] for rs in explain.reason_codes(model, rows, policy, reference) for r in rs]
    assert texts
    for text in texts:
        assert "__" not in text and "income_k" not in text and "job_type" not in text
        assert text.endswith(("raised the score", "lowered the score"))
    assert any(t.startswith("Income in thousands of ") for t in texts)
    assert any(t.startswith("Type of job is seasonal (most common: clerk)") for t in texts)


def test_a_record_at_the_reference_has_no_reasons():
    policy = tiny_policy()
    df = tiny_frame()
    model = training.fit(df, policy)
    reference = training.reference_record(df, policy)
    row = pd.DataFrame([{**reference, "id": 1, "sex": "F", "approved": "no"}])
    assert explain.reason_codes(model, row, policy, reference) == [[]]


@pytest.fixture(scope="module")
def adult():
    from fairgate.data.sources import read_source

    policy = parse_policy(default_policy_dict())
    return policy, read_source(policy)


@pytest.mark.lifecycle
def test_permutation_importance_agrees_with_scikit_learn(adult):
    from sklearn.inspection import permutation_importance

    policy, df = adult
    model = training.fit(df.iloc[:15000], policy)
    test = df.iloc[15000:21000]
    ours = explain.importance(model, test, policy, repeats=5)
    theirs = permutation_importance(
        model,
        feature_frame(test, policy),
        groups.labels(test, policy),
        scoring="roc_auc",
        n_repeats=5,
        random_state=0,
    )
    reference = dict(zip(feature_frame(test, policy).columns, theirs.importances_mean, strict=True))
    for col, value in reference.items():
        assert ours["overall"][col]["mean"] == pytest.approx(value, abs=0.006), col
    top = sorted(reference, key=lambda c: -reference[c])[:3]
    assert sorted(ours["overall"], key=lambda c: -ours["overall"][c]["mean"])[:3] == top
    assert set(ours["by_group"]) == {"sex=unprivileged", "sex=privileged", "race=unprivileged", "race=privileged"}


@pytest.mark.lifecycle
def test_proxy_check_flags_an_engineered_stand_in_and_not_the_adult_inputs(adult):
    policy, df = adult
    measured = proxies.proxy_check(df, policy)
    assert measured["flagged"] == []
    per_column = measured["attributes"]["sex"]["per_column"]
    assert max(per_column.values()) < policy.bias.proxy_auc_warning
    # relationship (husband / wife) is the strongest single stand-in for sex in Adult
    assert max(per_column, key=per_column.get) == "relationship"
    assert 0.5 <= measured["attributes"]["race"]["all_columns"] < measured["attributes"]["sex"]["all_columns"]

    # A postcode-like column equal to sex for 95% of rows: a binary score with TPR 0.95 and
    # FPR 0.05 has ROC AUC (0.95 + 0.95) / 2 = 0.95.
    rng = np.random.default_rng(7)
    male = (df["sex"] == "Male").to_numpy()
    flip = rng.random(len(df)) < 0.05
    raw = default_policy_dict()
    raw["dataset"]["features"]["categorical"].append("postcode_area")
    del raw["audit"]["incoming"]  # a column the simulated Adult feed lacks: this model has no feed
    engineered = parse_policy(raw)
    measured = proxies.proxy_check(df.assign(postcode_area=np.where(male ^ flip, "north", "south")), engineered)
    auc = measured["attributes"]["sex"]["per_column"]["postcode_area"]
    assert auc == pytest.approx(0.95, abs=0.01)
    assert measured["attributes"]["sex"]["flagged"] == ["postcode_area"]
    assert measured["flagged"] and "postcode_area predicts sex" in measured["flagged"][0]
    assert measured["attributes"]["race"]["flagged"] == []


def test_importance_on_one_label_class_is_skipped_not_guessed():
    policy = tiny_policy()
    df = tiny_frame()
    model = training.fit(df, policy)
    result = explain.importance(model, df.assign(approved="no"), policy)
    assert result["overall"] == {} and result["by_group"] == {}
    assert result["skipped"] == {"all rows": "one class of 'approved' only"}
    from fairgate.reporting.report import run_report

    record = LifecycleRecord(
        kind="lifecycle",
        run_id="r",
        dag_id="d",
        decision="rejected",
        model_name="m",
        policy={"sha256": ""},
        importance={"candidate": result},
    )
    page = run_report(record, policy)
    import html

    assert "Not measured: all rows: one class of 'approved' only" in html.unescape(page) and "<img" not in page


def test_explain_cli_rejects_a_malformed_date(capsys):
    from fairgate.cli.main import main

    assert main(["explain", "1", "--date", "23/11/2026"]) == 1
    assert "--date must be YYYY-MM-DD. Got '23/11/2026'" in capsys.readouterr().err


def test_value_labels_name_category_codes_in_reasons():

    policy = edited(tiny_policy(), {"dataset.value_labels": {"job_type": {"seasonal": "seasonal work (A14)"}}})
    text = explain.describe(policy, "job_type", "seasonal", "clerk", -1.0)
    assert text == "Type of job is seasonal work (A14) (most common: clerk) lowered the score"
    plain = explain.describe(tiny_policy(), "job_type", "seasonal", "clerk", -1.0)
    assert plain.startswith("Type of job is seasonal (")


def test_a_logistic_regressions_pushes_from_its_coefficients_equal_the_swapped_ones():
    """The linear shortcut (one transform) and the generic measurement (one swap per input) agree."""
    import numpy as np

    from fairgate.data.adult import read_adult
    from fairgate.models import explain, training
    from fairgate.policy.loader import load_policy

    policy = load_policy()
    df = read_adult("data").head(3000)
    model = training.fit(df, policy)
    reference = training.reference_record(df, policy)
    rows = df.sample(400, random_state=3).reset_index(drop=True)
    X = feature_frame(rows, policy, model)
    typical = {c: reference[c] if c in policy.numeric else str(reference[c]) for c in policy.features}
    blocks = explain._linear_blocks(model, list(policy.features))
    assert blocks is not None and sum(len(b) for b in blocks.values()) == model.steps[0][1].transform(X).shape[1]
    fast_scores, fast = explain._linear_contributions(model, X, typical, blocks)
    slow_scores, slow = explain._swapped_contributions(model, X, typical, list(policy.features))
    assert list(fast.columns) == list(slow.columns) == list(policy.features)
    # Swapping measures log-odds from probabilities, which saturate (a capital gain of 99,999 puts the
    # score at 1 - 1e-14); the coefficients do not. Away from saturation the two agree.
    inside = np.abs(np.log(fast_scores / (1 - fast_scores))) < 20
    assert inside.sum() > 390
    assert np.allclose(fast.to_numpy()[inside], slow.to_numpy()[inside], atol=1e-8)
    assert np.allclose(fast_scores, model.predict_proba(X)[:, 1])
    assert np.array_equal(fast_scores, slow_scores) or np.allclose(fast_scores, slow_scores, atol=1e-15)


def test_a_few_records_read_off_the_encoders_parameters_equal_the_pipeline():
    """A served request's records (up to FEW_ROWS) are scored and explained from the fitted encoder's
    parameters without calling it: equal to the pipeline's probabilities and to the one-transform pushes,
    an unseen category included (the encoder ignores it: no term)."""
    policy = tiny_policy()
    df = tiny_frame()
    model = training.fit(df, policy)
    reference = training.reference_record(df, policy)
    rows = df.sample(200, random_state=4).reset_index(drop=True)
    rows.loc[0, "job_type"] = "astronaut"  # never seen in training
    X = feature_frame(rows, policy, model)
    typical = {c: reference[c] if c in policy.numeric else str(reference[c]) for c in policy.features}
    few_scores, few = explain._linear_few(model, X, typical)
    blocks = explain._linear_blocks(model, list(policy.features))
    scores, pushes = explain._linear_contributions(model, X, typical, blocks)
    assert np.abs(few_scores - scores).max() < 1e-12
    assert np.abs(few_scores - model.predict_proba(X)[:, 1]).max() < 1e-12
    assert list(few.columns) == list(pushes.columns)
    assert np.abs(few.to_numpy() - pushes.to_numpy()).max() < 1e-12
    by_hand = linear_push(model, policy, rows.iloc[5], reference)
    assert few.iloc[5].to_dict() == pytest.approx(by_hand, abs=1e-12)
    # the served path takes it for a request, the batch path the transform
    assert len(rows) <= explain.FEW_ROWS
    assert np.array_equal(explain.scored_contributions(model, rows, policy, reference)[0], few_scores)
