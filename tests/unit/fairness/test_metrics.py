"""The counts-based metrics engine against hand computation, published intervals, fairlearn and AIF360."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fairgate.fairness.metrics import (
    Counts,
    compare_groups,
    confusion_counts,
    counts_from_row,
    disparities,
    newcombe_interval,
    ratio_interval,
    wilson_interval,
)
from fairgate.groups import Comparison

# Unprivileged: TP=2 FN=2 FP=1 TN=5; privileged: TP=4 FN=1 FP=2 TN=3 (counted by hand below).
Y_U = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
P_U = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
Y_P = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
P_P = [1, 1, 1, 1, 0, 1, 1, 0, 0, 0]


def tiny():
    y = np.array(Y_U + Y_P)
    yhat = np.array(P_U + P_P)
    group = np.array([0] * 10 + [1] * 10)
    return y, yhat, group


def test_counts_of_tiny_fixture():
    y, yhat, group = tiny()
    table = confusion_counts(y, yhat, group, 2)
    assert counts_from_row(table[0]) == Counts(tp=2, fp=1, fn=2, tn=5)
    assert counts_from_row(table[1]) == Counts(tp=4, fp=2, fn=1, tn=3)


def test_disparities_match_hand_computation():
    u, p = Counts(tp=2, fp=1, fn=2, tn=5), Counts(tp=4, fp=2, fn=1, tn=3)
    d = disparities(u, p)
    # selection 3/10 vs 6/10; TPR 2/4 vs 4/5; FPR 1/6 vs 2/5; FNR 2/4 vs 1/5
    assert d["statistical_parity_difference"].value == pytest.approx(0.3 - 0.6)
    assert d["disparate_impact"].value == pytest.approx(0.5)
    assert d["equal_opportunity_difference"].value == pytest.approx(0.5 - 0.8)
    assert d["false_positive_rate_difference"].value == pytest.approx(1 / 6 - 0.4)
    assert d["false_negative_rate_difference"].value == pytest.approx(0.5 - 0.2)
    assert d["average_odds_difference"].value == pytest.approx(0.5 * ((1 / 6 - 0.4) + (0.5 - 0.8)))
    for est in d.values():
        assert est.low <= est.value <= est.high


def test_wilson_matches_scipy():
    from scipy.stats import binomtest

    for k, n in [(0, 10), (3, 10), (81, 263), (999, 1000)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_newcombe_matches_published_examples():
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10.
    assert newcombe_interval(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert newcombe_interval(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=1e-4)


def test_ratio_interval_is_katz_log():
    r = (30 / 100) / (60 / 100)
    se = math.sqrt(1 / 30 - 1 / 100 + 1 / 60 - 1 / 100)
    low, high = ratio_interval(30, 100, 60, 100)
    assert (low, high) == pytest.approx((r * math.exp(-1.959964 * se), r * math.exp(1.959964 * se)), rel=1e-6)
    assert all(math.isnan(v) for v in ratio_interval(0, 100, 60, 100))


def test_empty_group_gives_nan_not_a_number_that_looks_fine():
    d = disparities(Counts(0, 0, 0, 0), Counts(tp=4, fp=2, fn=1, tn=3))
    assert not d["disparate_impact"].finite
    assert d["disparate_impact"].as_dict()["value"] is None


def test_partition_counts_merge_exactly():
    rng = np.random.default_rng(7)
    y, yhat, g = rng.integers(0, 2, 5000), rng.integers(0, 2, 5000), rng.integers(0, 4, 5000)
    whole = confusion_counts(y, yhat, g, 4)
    parts = sum(confusion_counts(y[i : i + 700], yhat[i : i + 700], g[i : i + 700], 4) for i in range(0, 5000, 700))
    np.testing.assert_array_equal(whole, parts)


def _random(seed: int, n: int = 4000):
    rng = np.random.default_rng(seed)
    codes = pd.DataFrame({"a": rng.integers(0, 2, n), "b": (rng.random(n) < 0.3).astype(int)})
    logit = -0.5 + 0.8 * codes["a"] + 0.4 * codes["b"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    yhat = np.where(rng.random(n) < 0.8, y, 1 - y)
    return codes, y, yhat


def test_cross_check_with_fairlearn():
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

    codes, y, yhat = _random(1)
    mf = MetricFrame(
        metrics={"sel": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y,
        y_pred=yhat,
        sensitive_features=codes["a"],
    )
    bg = mf.by_group
    res = compare_groups(y, yhat, codes["a"].to_numpy() == 0, codes["a"].to_numpy() == 1)["metrics"]
    spd = bg.loc[0, "sel"] - bg.loc[1, "sel"]
    assert res["statistical_parity_difference"]["value"] == pytest.approx(spd, abs=1e-12)
    assert res["disparate_impact"]["value"] == pytest.approx(bg.loc[0, "sel"] / bg.loc[1, "sel"], abs=1e-12)
    assert res["equal_opportunity_difference"]["value"] == pytest.approx(bg.loc[0, "tpr"] - bg.loc[1, "tpr"], abs=1e-12)
    assert res["average_odds_difference"]["value"] == pytest.approx(
        0.5 * ((bg.loc[0, "fpr"] - bg.loc[1, "fpr"]) + (bg.loc[0, "tpr"] - bg.loc[1, "tpr"])), abs=1e-12
    )


@pytest.mark.parametrize(
    "comp",
    [
        Comparison("a", (("a", 0),), (("a", 1),)),
        Comparison("a&b", (("a", 0), ("b", 1)), (("a", 1), ("b", 1))),
        Comparison("a&b2", (("a", 0), ("b", 0)), (("a", 1), ("b", 1))),
    ],
)
def test_cross_check_with_aif360_classification_metric(comp):
    from fairgate.fairness.aif360_adapter import classification_metrics
    from fairgate.groups import cell_mask

    codes, y, yhat = _random(2)
    ours = compare_groups(y, yhat, cell_mask(codes, comp.unprivileged), cell_mask(codes, comp.privileged))["metrics"]
    ref = classification_metrics(codes, y, yhat, comp)
    for name, value in ref.items():
        assert ours[name]["value"] == pytest.approx(value, abs=1e-9), name
