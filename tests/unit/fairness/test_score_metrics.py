"""Ranking and calibration per group as gated metrics: each figure recomputed by hand or with
scikit-learn, the intervals' coverage over repeated draws, and the gate judging them like any metric."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from fairgate.fairness.gate import decide
from fairgate.fairness.metrics import measure, score_disparities
from fairgate.groups import Comparison
from fairgate.policy.loader import parse_policy

SEX = Comparison(key="sex", unprivileged=(("sex", 0),), privileged=(("sex", 1),))


def _hanley(a, n1, n0, z):
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt((a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0))
    return a - z * se, a + z * se


def test_figures_of_a_tiny_fixture_by_hand_and_with_scikit_learn():
    # unprivileged: 4 positives, 4 negatives; privileged: 3 positives, 5 negatives
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0], dtype=float)
    s = np.array([0.9, 0.4, 0.7, 0.6, 0.5, 0.2, 0.3, 0.1, 0.8, 0.7, 0.2, 0.6, 0.3, 0.1, 0.4, 0.5])
    codes = pd.DataFrame({"sex": [0] * 8 + [1] * 8})
    [figures] = score_disparities(codes, y, s, [SEX], confidence=0.95).values()
    u, p = figures["sides"]["unprivileged"], figures["sides"]["privileged"]
    # AUC_u by hand: of the 16 positive-negative pairs, 0.4 ranks below 0.5 only: 15/16
    assert u["roc_auc"] == pytest.approx(15 / 16) == pytest.approx(roc_auc_score(y[:8], s[:8]))
    assert p["roc_auc"] == pytest.approx(roc_auc_score(y[8:], s[8:]))
    z = norm.ppf(0.975)
    lo_u, hi_u = _hanley(15 / 16, 4, 4, z)
    lo_p, hi_p = _hanley(p["roc_auc"], 3, 5, z)
    assert p["roc_auc_interval"] == pytest.approx([max(0.0, lo_p), min(1.0, hi_p)])
    assert u["roc_auc_interval"] == pytest.approx([max(0.0, lo_u), min(1.0, hi_u)])
    d = 15 / 16 - p["roc_auc"]
    low_u, high_u = u["roc_auc_interval"]
    low_p, high_p = p["roc_auc_interval"]
    auc = figures["metrics"]["roc_auc_difference"]
    assert auc["value"] == pytest.approx(d)
    assert auc["ci_low"] == pytest.approx(d - math.hypot(15 / 16 - low_u, high_p - p["roc_auc"]))
    assert auc["ci_high"] == pytest.approx(d + math.hypot(high_u - 15 / 16, p["roc_auc"] - low_p))
    # calibration in the large: observed rate minus mean score, per side
    citl_u, citl_p = 0.5 - s[:8].mean(), 3 / 8 - s[8:].mean()
    assert (u["calibration_in_the_large"], p["calibration_in_the_large"]) == pytest.approx((citl_u, citl_p))
    se = math.sqrt(np.var(y[:8] - s[:8], ddof=1) / 8 + np.var(y[8:] - s[8:], ddof=1) / 8)
    cal = figures["metrics"]["calibration_difference"]
    assert (cal["value"], cal["ci_low"], cal["ci_high"]) == pytest.approx(
        (citl_u - citl_p, citl_u - citl_p - z * se, citl_u - citl_p + z * se)
    )


def test_a_side_with_one_outcome_class_has_no_auc():
    y = np.array([1, 1, 1, 1, 0, 1, 0, 1], dtype=float)
    s = np.linspace(0.1, 0.9, 8)
    codes = pd.DataFrame({"sex": [0, 0, 0, 0, 1, 1, 1, 1]})
    [figures] = score_disparities(codes, y, s, [SEX], confidence=0.95).values()
    assert figures["sides"]["unprivileged"]["roc_auc"] is None
    assert figures["metrics"]["roc_auc_difference"] == {"value": None, "ci_low": None, "ci_high": None}
    assert figures["metrics"]["calibration_difference"]["value"] is not None


def _draw(rng, n, *, underrated):
    """Scores calibrated for men; women's real favourable rate is ``underrated`` above their scores."""
    sex = rng.integers(0, 2, n)
    s = rng.uniform(0.1, 0.8, n)
    y = (rng.random(n) < s + np.where(sex == 0, underrated, 0.0)).astype(float)
    return pd.DataFrame({"sex": sex}), y, s


def test_the_intervals_cover_the_truth_over_repeated_draws():
    rng = np.random.default_rng(5)
    covered = {"calibration_difference": 0, "roc_auc_difference": 0}
    draws = 300
    true_auc_difference = _population_auc_difference()
    for _ in range(draws):
        codes, y, s = _draw(rng, 2000, underrated=0.1)
        [figures] = score_disparities(codes, y, s, [SEX], confidence=0.95).values()
        cal = figures["metrics"]["calibration_difference"]
        covered["calibration_difference"] += cal["ci_low"] <= 0.1 <= cal["ci_high"]
        auc = figures["metrics"]["roc_auc_difference"]
        # the population AUC difference of this design, from a draw of a million rows per side
        covered["roc_auc_difference"] += auc["ci_low"] <= true_auc_difference <= auc["ci_high"]
    for metric, hits in covered.items():
        assert 0.92 <= hits / draws <= 0.985, (metric, hits / draws)


def _population_auc_difference():
    codes, y, s = _draw(np.random.default_rng(99), 2_000_000, underrated=0.1)
    women = codes["sex"].to_numpy() == 0
    return roc_auc_score(y[women], s[women]) - roc_auc_score(y[~women], s[~women])


RAW = {
    "model_name": "scores",
    "dataset": {"source": "/x.csv", "label": "y", "favorable_label": 1, "features": {"numeric": ["x"]}},
    "protected_attributes": [{"column": "sex", "privileged": [1], "allowed": [0, 1]}],
    "fairness": {
        "thresholds": {
            "calibration_difference": {"kind": "abs_difference", "max": 0.05},
            "roc_auc_difference": {"kind": "abs_difference", "max": 0.1},
        }
    },
}


def _gate(underrated, seed):
    codes, y, s = _draw(np.random.default_rng(seed), 6000, underrated=underrated)
    policy = parse_policy(RAW)
    pred = (s >= 0.5).astype(int)
    fairness = measure(codes, y.astype(int), pred, [SEX])
    for key, figures in score_disparities(codes, y, s, [SEX], confidence=0.95).items():
        fairness[key]["metrics"].update(figures["metrics"])
    return decide(fairness, {"balanced_accuracy": 0.7}, policy)


def test_the_gate_fails_scores_that_underrate_a_group_and_passes_calibrated_ones():
    failed = _gate(0.15, seed=1)
    assert failed.outcome == "fail"
    assert any(r.startswith("sex: calibration_difference=0.1") for r in failed.reasons)
    passed = _gate(0.0, seed=2)
    assert passed.outcome == "pass", passed.reasons
    assert {f.message.split("=")[0] for f in passed.findings if f.scope == "sex"} == {
        "calibration_difference",
        "roc_auc_difference",
    }


def test_an_audit_that_cannot_measure_a_bounded_score_metric_says_so():
    from fairgate.monitoring.audit import judge_fairness

    side = {"n": 500, "selected": 200, "positives": 200}
    fairness = {
        "sex": {
            "metrics": {
                "disparate_impact": {"value": 1.0, "ci_low": 0.9, "ci_high": 1.1},
                "calibration_difference": {"value": None, "ci_low": None, "ci_high": None},
            },
            "counts": {
                "all": {"unprivileged": side, "privileged": side},
                "labeled": {"unprivileged": side, "privileged": side},
            },
        }
    }
    reasons, insufficient, _ = judge_fairness(fairness, parse_policy(RAW))
    assert reasons == []
    assert insufficient == [
        "sex: calibration_difference: not defined on this window: insufficient evidence",
        "sex: roc_auc_difference: not measured by this audit: insufficient evidence",
    ]


def test_the_auc_of_rows_in_score_order_is_the_ranked_one_to_the_last_bit_and_sklearns():
    """The audit sorts the scores once and reads every side's AUC from rows already in order; with ties
    (scores rounded to 2 places) it equals the Mann-Whitney AUC exactly and scikit-learn's to 1e-12."""
    from sklearn.metrics import roc_auc_score

    from fairgate.fairness.metrics import rank_auc, sorted_rank_auc

    rng = np.random.default_rng(7)
    for n in (2, 50, 20_000):
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = np.round(rng.random(n) * 0.6 + y * 0.2, 2)
        order = np.argsort(s, kind="stable")
        assert sorted_rank_auc(y[order], s[order]) == rank_auc(y, s)
        assert sorted_rank_auc(y[order], s[order]) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
