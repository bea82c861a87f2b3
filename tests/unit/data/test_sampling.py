"""Sampled statistics: the stratified sample, the AUC interval, and each sampled figure against
its full-data value or a known truth (synthetic data with an injected proxy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from tests.support.fixtures import credit_policy
from tests.support.policies import edited

from fairgate.data import sampling
from fairgate.data.features import feature_frame
from fairgate.fairness import metrics, proxies
from fairgate.groups import labels
from fairgate.mitigation import search as mitigation
from fairgate.models import explain, training
from fairgate_dev.synthetic import Truth, credit_applications


def test_a_stratified_sample_keeps_each_strata_share_and_is_repeatable():
    strata = np.repeat([0, 1, 2, 3], [7000, 2000, 990, 10])
    rows = sampling.stratified(strata, 1000, seed=3)
    assert rows is not None and np.all(np.diff(rows) > 0)  # sorted, no repeats
    assert np.bincount(strata[rows]).tolist() == [700, 200, 99, 1]
    np.testing.assert_array_equal(rows, sampling.stratified(strata, 1000, seed=3))
    assert not np.array_equal(rows, sampling.stratified(strata, 1000, seed=4))


def test_a_tiny_stratum_keeps_one_row_and_nothing_is_sampled_below_the_limit():
    strata = np.array([0] * 9999 + [1])
    rows = sampling.stratified(strata, 100, seed=0)
    assert np.bincount(strata[rows]).tolist() == [100, 1]
    assert sampling.stratified(strata, 10_000, seed=0) is None
    assert sampling.stratified(strata, 0, seed=0) is None  # 0: never sample


def test_described_says_when_a_figure_is_from_a_sample():
    assert sampling.described(500, 500, "test rows") == "test rows (500 rows)"
    assert sampling.described(100, 500, "test rows") == "test rows (a stratified sample of 100 of 500 rows)"


def test_rank_auc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 3000)
    scores = np.round(rng.random(3000) + 0.3 * y, 1)  # many ties
    assert metrics.rank_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_auc_interval_by_hand():
    # A = 0.8, 50 positives, 50 negatives: Q1 = 0.8/1.2, Q2 = 1.28/1.8,
    # SE^2 = (0.16 + 49 (Q1 - 0.64) + 49 (Q2 - 0.64)) / 2500 = 0.00198044; z(95%) = 1.959964.
    q1, q2 = 0.8 / 1.2, 1.28 / 1.8
    half = 1.959964 * math.sqrt((0.16 + 49 * (q1 - 0.64) + 49 * (q2 - 0.64)) / 2500)
    low, high = metrics.auc_interval(0.8, 50, 50, confidence=0.95)
    assert (low, high) == pytest.approx((0.8 - half, 0.8 + half), abs=1e-6)
    assert half == pytest.approx(0.0872, abs=1e-4)


@pytest.mark.lifecycle
def test_a_sampled_proxy_check_says_so_and_its_interval_covers_the_injected_truth():
    truth = Truth()  # postcode_area equals the gender-linked area for 90% of rows: AUC 0.95
    df = credit_applications(30_000, seed=4, truth=truth)
    policy = edited(credit_policy(), {"sampling.max_rows": 3000})
    measured = proxies.proxy_check(df, policy)
    assert measured["measured_on"] == "training rows (a stratified sample of 3000 of 30000 rows)"
    attr = measured["attributes"]["gender"]
    low, high = attr["per_column_interval"]["postcode_area"]
    assert low < truth.proxy_auc < high
    assert high - low < 0.03
    full = proxies.proxy_check(df, edited(policy, {"sampling.max_rows": 0}))
    assert full["measured_on"] == "training rows (30000 rows)"
    assert abs(full["attributes"]["gender"]["per_column"]["postcode_area"] - attr["per_column"]["postcode_area"]) < 0.01


def test_sampled_permutation_importance_ranks_the_inputs_as_the_full_test_rows_do():
    df = credit_applications(24_000, seed=6)
    policy = credit_policy()
    model = training.fit(df.iloc[:12_000], policy)
    test = df.iloc[12_000:]
    full = explain.importance(model, test, edited(policy, {"sampling.max_rows": 0}), repeats=3)
    sampled = explain.importance(model, test, edited(policy, {"sampling.max_rows": 4000}), repeats=3)
    assert abs(sampled["rows"] - 4000) <= 4  # one rounding per stratum (gender x label)
    assert f"a stratified sample of {sampled['rows']} of 12000 rows" in sampled["measured_on"]
    top = sorted(full["overall"], key=lambda c: -full["overall"][c]["mean"])[:2]
    assert sorted(sampled["overall"], key=lambda c: -sampled["overall"][c]["mean"])[:2] == top
    for col in top:
        assert sampled["overall"][col]["mean"] == pytest.approx(full["overall"][col]["mean"], abs=0.02)


@pytest.mark.lifecycle
def test_exponentiated_gradient_on_a_sample_keeps_group_and_label_shares_and_says_so():
    df = credit_applications(20_000, seed=8)
    policy = edited(credit_policy(), {"sampling.max_rows": 5000})
    spec = mitigation.Spec(
        name="eg",
        method="exponentiated_gradient",
        params={"constraint": "demographic_parity", "eps": 0.02},
        estimator="logistic_regression",
    )
    model, report = mitigation.fit(spec, df, policy)
    assert abs(report["rows"] - 5000) <= 4
    assert report["fitted_on"] == f"training rows (a stratified sample of {report['rows']} of 20000 rows)"
    # The mixture holds the disparity near the constraint on rows it never saw (injected DI 0.6).
    fresh = credit_applications(20_000, seed=9)
    decided = model.predict_proba(feature_frame(fresh, policy))[:, 1]
    women = (fresh["gender"] == "female").to_numpy()
    assert abs(decided[women].mean() - decided[~women].mean()) < 0.05
    y = labels(fresh, policy)
    assert y[women].mean() - y[~women].mean() == pytest.approx(-0.2, abs=0.02)  # what the labels carry
