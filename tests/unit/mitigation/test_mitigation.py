"""The mitigation search's domain: each method against its library called directly, the selection
rule on hand-built tables, the policy's refusals, and a search that never reads the test split.

The data is the synthetic credit set (gender disparity injected at DI 0.6), so nothing here
depends on Adult.
"""

from __future__ import annotations

import io
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
from tests.support.fixtures import credit_policy
from tests.support.policies import edited

from fairgate.data.features import feature_frame
from fairgate.errors import PolicyError, StageError
from fairgate.groups import labels
from fairgate.mitigation import search as mitigation
from fairgate.models import training
from fairgate_dev.synthetic import credit_applications


@pytest.fixture(scope="module")
def data():
    df = credit_applications(3000, seed=21)
    policy = credit_policy()
    split = training.assign_split(df, policy)
    return df, split


def _spec(method, **params):
    return mitigation.Spec(name=method, method=method, params=params, estimator="logistic_regression")


def _sensitive(df):
    return np.where(df["gender"] == "male", "gender=1", "gender=0")


# --- each method equals its library, called directly on the same rows ----------------------------


def test_reweighing_fits_with_aif360_weights(data):
    from aif360.algorithms.preprocessing import Reweighing
    from aif360.datasets import BinaryLabelDataset
    from sklearn.base import clone

    df, split = data
    policy = credit_policy()
    train, val = df[split == "train"], df[split == "validation"]
    model, extra = mitigation.fit(_spec("reweighing"), train, policy)

    frame = pd.DataFrame(
        {"g": (train["gender"] == "male").astype(float).to_numpy(), "y": train["approved"].astype(float).to_numpy()}
    )
    ds = BinaryLabelDataset(df=frame, label_names=["y"], protected_attribute_names=["g"])
    rw = Reweighing(unprivileged_groups=[{"g": 0}], privileged_groups=[{"g": 1}]).fit_transform(ds)
    np.testing.assert_allclose(extra["weights"], rw.instance_weights, rtol=1e-12)

    direct = clone(training.build_pipeline(policy)).fit(
        feature_frame(train, policy), labels(train, policy), classifier__sample_weight=rw.instance_weights
    )
    np.testing.assert_allclose(
        model.predict_proba(feature_frame(val, policy))[:, 1],
        direct.predict_proba(feature_frame(val, policy))[:, 1],
        rtol=1e-10,
    )


@pytest.mark.lifecycle
def test_exponentiated_gradient_equals_fairlearn(data):
    from fairlearn.reductions import EqualizedOdds, ExponentiatedGradient
    from sklearn.linear_model import LogisticRegression

    df, split = data
    policy = credit_policy()
    train, val = df[split == "train"], df[split == "validation"]
    model, extra = mitigation.fit(_spec("exponentiated_gradient", constraint="equalized_odds", eps=0.02), train, policy)

    pre = training.build_pipeline(policy).named_steps["features"]
    Xt = pre.fit_transform(feature_frame(train, policy))
    direct = ExponentiatedGradient(
        LogisticRegression(random_state=policy.model.seed), constraints=EqualizedOdds(), eps=0.02, max_iter=50
    )
    direct.fit(Xt, labels(train, policy), sensitive_features=_sensitive(train))
    expected = direct._pmf_predict(pre.transform(feature_frame(val, policy)))[:, 1]
    ours = model.predict_proba(feature_frame(val, policy, model))[:, 1]
    np.testing.assert_allclose(ours, expected, atol=1e-12)
    assert extra["predictors"] >= 1


def test_threshold_optimizer_equals_fairlearn(data):
    from fairlearn.postprocessing import ThresholdOptimizer

    df, split = data
    policy = credit_policy(allow_group_aware_decisions=True)
    train, val = df[split == "train"], df[split == "validation"]
    model, _ = mitigation.fit(_spec("threshold_optimizer", constraint="demographic_parity"), train, policy)
    assert model.group_attributes == ("gender",)

    scorer = training.fit(train, policy)
    direct = ThresholdOptimizer(
        estimator=scorer,
        constraints="demographic_parity",
        objective="balanced_accuracy_score",
        prefit=True,
        predict_method="predict_proba",
    )
    direct.fit(feature_frame(train, policy), labels(train, policy), sensitive_features=_sensitive(train))
    expected = direct._pmf_predict(feature_frame(val, policy), sensitive_features=_sensitive(val))[:, 1]
    ours = model.predict_proba(feature_frame(val, policy, model))[:, 1]
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_disparate_impact_remover_equals_aif360(data):
    from aif360.algorithms.preprocessing import DisparateImpactRemover
    from aif360.datasets import BinaryLabelDataset

    df, split = data
    policy = credit_policy(allow_group_aware_decisions=True)
    train, val = df[split == "train"], df[split == "validation"].reset_index(drop=True)
    model, _ = mitigation.fit(_spec("disparate_impact_remover", repair_level=0.8), train, policy)

    def repaired(rows):
        cols = ["income", "loan_amount", "duration_months", "age"]
        frame = rows[cols].astype(float).reset_index(drop=True)
        frame["g"] = (rows["gender"] == "male").astype(float).to_numpy()
        frame["y"] = 0.0
        ds = BinaryLabelDataset(df=frame, label_names=["y"], protected_attribute_names=["g"])
        out = DisparateImpactRemover(repair_level=0.8, sensitive_attribute="g").fit_transform(ds)
        fixed = feature_frame(rows, policy).reset_index(drop=True)
        for i, name in enumerate(ds.feature_names):
            if name in cols:
                fixed[name] = out.features[:, i]
        return fixed

    direct = training.build_pipeline(policy).fit(repaired(train), labels(train, policy))
    np.testing.assert_allclose(
        model.predict_proba(feature_frame(val, policy, model))[:, 1],
        direct.predict_proba(repaired(val))[:, 1],
        atol=1e-12,
    )


def test_each_fitted_model_survives_the_store_round_trip(data):
    df, split = data
    policy = credit_policy(allow_group_aware_decisions=True)
    train, val = df[split == "train"], df[split == "validation"]
    for spec in (
        _spec("exponentiated_gradient"),
        _spec("threshold_optimizer"),
        _spec("disparate_impact_remover", repair_level=1.0),
    ):
        model, _ = mitigation.fit(spec, train, policy)
        raw = training.dump_model(model)
        import hashlib

        loaded = training.load_model_bytes(raw, expected_sha256=hashlib.sha256(raw).hexdigest())
        np.testing.assert_allclose(training.predict(loaded, val, policy)[0], training.predict(model, val, policy)[0])


# --- choosing on the validation split ---------------------------------------------------------------


def _row(id_, ba, gap, status="fitted"):
    return {"id": id_, "status": status, "balanced_accuracy": ba, "band_gap": gap}


def test_selection_takes_the_best_accuracy_inside_the_bands():
    rows = [_row("none", 0.80, 0.20), _row("rw", 0.76, 0.0), _row("eg", 0.78, 0.0), _row("to", 0.90, math.inf)]
    choice = mitigation.select(rows, "balanced_accuracy_within_bands")
    assert choice.candidate == "eg"
    assert choice.within_bands == ("rw", "eg")


def test_selection_with_nothing_inside_takes_the_closest_and_says_so():
    rows = [_row("none", 0.80, 0.30), _row("rw", 0.76, 0.05), _row("eg", 0.70, 0.05), _row("x", None, None, "failed")]
    choice = mitigation.select(rows, "balanced_accuracy_within_bands")
    assert choice.candidate == "rw"  # equal gaps: the better balanced accuracy
    assert choice.within_bands == ()
    assert "flagged" in choice.note


def test_selection_when_validation_cannot_judge_says_it_chose_by_accuracy():
    """Every candidate's gap is infinite (a validation group short of evidence): the note does not claim
    a closest candidate; it says validation cannot judge fairness and that balanced accuracy decided."""
    rows = [_row("none", 0.71, math.inf), _row("rw", 0.74, math.inf), _row("eg", 0.69, math.inf)]
    for rule in ("balanced_accuracy_within_bands", "closest_to_bands"):
        choice = mitigation.select(rows, rule)
        assert choice.candidate == "rw" and choice.within_bands == ()
        assert "cannot judge fairness" in choice.note and "balanced accuracy alone" in choice.note
        assert "closest" not in choice.note


def test_closest_rule_prefers_the_smallest_gap_over_accuracy():
    rows = [_row("a", 0.80, 0.0), _row("b", 0.70, 0.0), _row("c", 0.95, 0.01)]
    assert mitigation.select(rows, "closest_to_bands").candidate == "a"


def test_selection_with_every_candidate_failed_chooses_nothing():
    choice = mitigation.select([_row("a", None, None, "failed")], "balanced_accuracy_within_bands")
    assert choice.candidate is None


def test_band_gap_by_hand():
    policy = credit_policy()  # default bands: DI in [0.8, 1.25], |SPD|, |EOD|, |AOD| <= 0.1
    counts = {"unprivileged": {"n": 500, "positives": 100}, "privileged": {"n": 500, "positives": 100}}
    inside = {"disparate_impact": {"value": 0.9, "ci_low": 0.85, "ci_high": 0.95}}
    for t in policy.fairness.bounds:
        inside.setdefault(t.metric, {"value": 0.0, "ci_low": -0.05, "ci_high": 0.05})
    assert mitigation.band_gap({"g": {"counts": counts, "metrics": inside}}, policy) == 0.0
    outside = {**inside, "disparate_impact": {"value": 0.7, "ci_low": 0.6, "ci_high": 0.82}}
    assert mitigation.band_gap({"g": {"counts": counts, "metrics": outside}}, policy) == pytest.approx(0.2)
    short = {"unprivileged": {"n": 5, "positives": 1}, "privileged": {"n": 500, "positives": 100}}
    assert mitigation.band_gap({"g": {"counts": short, "metrics": inside}}, policy) == math.inf


# --- the policy ------------------------------------------------------------------------------------


def test_group_aware_methods_are_refused_unless_allowed():
    for method in ("threshold_optimizer", "disparate_impact_remover"):
        with pytest.raises(PolicyError, match=r"mitigation.candidates\[0\].method.*allow_group_aware_decisions"):
            credit_policy(candidates=[{"name": "x", "method": method}])
        assert credit_policy(candidates=[{"name": "x", "method": method}], allow_group_aware_decisions=True)


def test_method_parameters_are_checked_at_load():
    with pytest.raises(PolicyError, match=r"candidates\[0\].params.*unknown parameter.*\['repair'\]"):
        credit_policy(candidates=[{"name": "eg", "method": "exponentiated_gradient", "params": {"repair": 1}}])
    with pytest.raises(PolicyError, match="eps' must be a positive number"):
        credit_policy(candidates=[{"name": "eg", "method": "exponentiated_gradient", "params": {"eps": -1}}])
    with pytest.raises(PolicyError, match="twice"):
        credit_policy(candidates=[{"name": "none", "method": "reweighing"}])


def test_plan_crosses_methods_with_estimators_and_always_has_none():
    policy = credit_policy(
        candidates=[{"name": "rw", "method": "reweighing"}, {"name": "eg", "method": "exponentiated_gradient"}],
        estimators=["logistic_regression", "hist_gradient_boosting"],
    )
    ids = [s.id for s in mitigation.plan(policy)]
    assert ids == [
        "none.logistic_regression",
        "rw.logistic_regression",
        "eg.logistic_regression",
        "none.hist_gradient_boosting",
        "rw.hist_gradient_boosting",
        "eg.hist_gradient_boosting",
    ]


# --- the search as the lifecycle runs it -------------------------------------------------------------


@pytest.mark.lifecycle
def test_search_reads_only_training_and_validation_rows(store, tmp_path, monkeypatch, data):
    """Fitting and choosing never see a test row; only the gate does, once, for the chosen candidate."""
    from fairgate.models import evaluation
    from fairgate.stages import lifecycle

    df, _ = data
    df.to_csv(tmp_path / "credit.csv", index=False)
    policy = edited(
        credit_policy(
            candidates=[{"name": "rw", "method": "reweighing"}, {"name": "eg", "method": "exponentiated_gradient"}]
        ),
        {"dataset.source": str(tmp_path / "credit.csv")},
    )
    run = lifecycle.RunInfo(dag_id="search_test", run_id="r1")
    snapshot = lifecycle.collect(store, policy, run)
    bias = lifecycle.check_bias(store, policy, run, lifecycle.validate(store, policy, run, snapshot))
    split = pd.read_parquet(io.BytesIO(store.get(bias.split.key)))
    test_keys = set(split.loc[split["split"] == "test", "row"])
    assert abs(len(test_keys) - 0.2 * len(df)) <= 1

    seen: list[set] = []
    real_assess, real_fit = evaluation.assess, mitigation.fit
    monkeypatch.setattr(
        evaluation, "assess", lambda m, rows, p: (seen.append(set(rows["application_id"])), real_assess(m, rows, p))[1]
    )
    monkeypatch.setattr(
        mitigation, "fit", lambda s, rows, p: (seen.append(set(rows["application_id"])), real_fit(s, rows, p))[1]
    )
    results = [
        lifecycle.fit_candidate(store, policy, run, bias, p["candidate"])
        for p in lifecycle.search_plan(store, policy, run, bias)
    ]
    trained = lifecycle.select_candidate(store, policy, run, bias, results)
    assert seen and all(not (keys & test_keys) for keys in seen)
    assert {r.id for r in results} == {"none.logistic_regression", "rw.logistic_regression", "eg.logistic_regression"}
    assert trained.search is not None and trained.unmitigated is not None

    seen.clear()
    gate = lifecycle.evaluate(store, policy, run, trained)
    assert gate.outcome in ("pass", "fail", "review")
    assert seen and all(keys <= test_keys for keys in seen)


def test_a_failed_candidate_is_recorded_and_the_search_goes_on(store, tmp_path, data):
    from fairgate.stages import lifecycle

    df, _ = data
    df.to_csv(tmp_path / "credit.csv", index=False)
    # No numeric inputs: the disparate impact remover has nothing to repair and fails; the others fit.
    base = credit_policy(
        candidates=[{"name": "dir", "method": "disparate_impact_remover"}], allow_group_aware_decisions=True
    )
    policy = edited(
        base, {"dataset.source": str(tmp_path / "credit.csv"), "dataset.features.numeric": [], "quality.ranges": {}}
    )
    run = lifecycle.RunInfo(dag_id="search_fail", run_id="r1")
    bias = lifecycle.check_bias(
        store, policy, run, lifecycle.validate(store, policy, run, lifecycle.collect(store, policy, run))
    )
    results = [
        lifecycle.fit_candidate(store, policy, run, bias, p["candidate"])
        for p in lifecycle.search_plan(store, policy, run, bias)
    ]
    failed = [r for r in results if r.status == "failed"]
    assert [r.id for r in failed] == ["dir.logistic_regression"]
    assert "numeric inputs" in failed[0].error
    trained = lifecycle.select_candidate(store, policy, run, bias, results)
    search = lifecycle.read_json(store, trained.search, "search")
    assert search["chosen"] == "none.logistic_regression"
    assert [c["status"] for c in search["candidates"]] == ["fitted", "failed"]

    with pytest.raises(StageError, match="Every candidate of the mitigation search failed.*numeric inputs"):
        lifecycle.select_candidate(store, policy, run, bias, failed)


def test_a_group_aware_model_scores_records_that_carry_the_protected_column(data):
    """The serving side: scoring gives the model each record's group; records without the column are refused."""
    from fairgate.monitoring.scoring import check_records, score_records

    df, split = data
    policy = credit_policy(allow_group_aware_decisions=True)
    model, _ = mitigation.fit(_spec("threshold_optimizer"), df[split == "train"], policy)
    records = df[split == "test"].head(200).reset_index(drop=True)
    reference = training.reference_record(df[split == "train"], policy)
    log, _ = score_records(model, records, policy, version="v1", reference=reference)
    expected = model.predict_proba(feature_frame(records, policy, model))[:, 1]
    np.testing.assert_allclose(log["score"].to_numpy(), expected)
    with pytest.raises(StageError, match="gender"):
        check_records(records.drop(columns=["gender"]), policy, date(2026, 3, 1))
