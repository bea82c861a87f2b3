"""Alerts with error control: the audit's p-value of a metric having left its bound, Holm's and
Benjamini–Hochberg's adjustments checked by hand and against SciPy, and simulated nights with no
drift (every metric exactly on its bound: the worst case) whose false-alarm rate stays at the policy's
level under Holm, while the uncorrected rule alarms most nights."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control, norm

from fairgate.fairness.metrics import measure
from fairgate.fairness.multiplicity import adjusted, exceedance_p
from fairgate.groups import comparisons, group_codes
from fairgate.monitoring.audit import judge_fairness, window_figures
from fairgate.policy.loader import parse_policy
from fairgate.policy.schema import Threshold


def test_holm_and_bh_by_hand_and_against_scipy():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm, sorted 0.005, 0.01, 0.03, 0.04: 4·0.005, 3·0.01, 2·0.03, max(1·0.04, 0.06)
    assert adjusted(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: m·p/rank = 0.02, 0.02, 0.04, 0.04, then the running minimum from the largest down
    assert adjusted(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    rng = np.random.default_rng(3)
    for _ in range(50):
        q = list(rng.uniform(0, 0.2, int(rng.integers(1, 12))))
        assert adjusted(q, "bh") == pytest.approx(list(false_discovery_control(q, method="bh")))
    assert adjusted(p, "none") == p and adjusted([], "holm") == []


def test_the_exceedance_p_value_by_hand():
    spd = Threshold("statistical_parity_difference", "abs_difference", 0.1)
    # 0.15 in [0.11, 0.19] at 95 %: se = 0.08 / (2 · 1.96), 0.05 beyond the edge
    assert exceedance_p(spd, 0.15, 0.11, 0.19, 0.95) == pytest.approx(norm.sf(0.05 / (0.08 / (2 * norm.ppf(0.975)))))
    assert exceedance_p(spd, -0.15, -0.19, -0.11, 0.95) == pytest.approx(exceedance_p(spd, 0.15, 0.11, 0.19, 0.95))
    assert exceedance_p(spd, 0.1, 0.06, 0.14, 0.95) == pytest.approx(0.5)  # on the edge
    di = Threshold("disparate_impact", "ratio_band", 1.25, 0.8)
    se = (np.log(0.7) - np.log(0.5)) / (2 * norm.ppf(0.975))  # the ratio's interval on the log scale
    assert exceedance_p(di, 0.6, 0.5, 0.7, 0.95) == pytest.approx(norm.sf((np.log(0.8) - np.log(0.6)) / se))
    assert exceedance_p(di, 0.0, 0.0, 0.1, 0.95) is None


POLICY = {
    "model_name": "sim",
    "dataset": {"source": "/x.csv", "label": "y", "favorable_label": 1, "features": {"numeric": ["x"]}},
    "protected_attributes": [
        {"column": "gender", "privileged": ["male"], "allowed": ["female", "male"]},
        {"column": "region", "privileged": ["north"], "allowed": ["north", "south"]},
    ],
    "fairness": {
        "thresholds": {
            "disparate_impact": {"kind": "ratio_band", "min": 0.8, "max": 1.25},
            "statistical_parity_difference": {"kind": "abs_difference", "max": 0.1},
        }
    },
}


def _night(rng, policy, n, *, effect=0.1):
    """One night of decisions: the selection rate drops by ``effect`` for women and for the south (each
    group half the rows), so with 0.1 each comparison's SPD is -0.1 and DI 0.8: on their bounds."""
    import pandas as pd

    df = pd.DataFrame({"gender": rng.choice(["female", "male"], n), "region": rng.choice(["north", "south"], n)})
    rate = 0.5 + effect / 2 - effect * (df["gender"] == "female") - effect * (df["region"] == "south")
    pred = (rng.random(n) < rate).astype(np.int8)
    comps = comparisons(policy)
    selection = measure(group_codes(df, policy), np.zeros(n, dtype=np.int8), pred, comps, confidence=0.95)
    return window_figures(selection, {}, comps)


def _alarm_rate(correction, nights, *, effect=0.1, seed=11):
    policy = parse_policy({**POLICY, "audit": {"alert_correction": correction}})
    rng = np.random.default_rng(seed)
    return float(
        np.mean([bool(judge_fairness(_night(rng, policy, 4000, effect=effect), policy)[0]) for _ in range(nights)])
    )


def test_no_drift_false_alarms_stay_at_the_level_under_holm():
    """400 nights, four tests a night (DI and SPD of two comparisons), every metric on its bound. Holm
    keeps the nightly false-alarm rate at most 5 % (binomial slack 2.5 SE over 400 nights); without a
    correction most nights alarm."""
    nights = 400
    holm = _alarm_rate("holm", nights)
    assert holm <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / nights), holm
    assert _alarm_rate("none", nights) > 0.6
    assert _alarm_rate("bh", nights) <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / nights)  # all nulls true: FDR = FWER
    print(
        f"nightly false-alarm rate over {nights} nights: holm {holm:.3f}, uncorrected {_alarm_rate('none', nights):.3f}"
    )


def test_a_real_drift_is_still_found():
    assert _alarm_rate("holm", 100, effect=0.2, seed=12) > 0.95  # SPD -0.2 and DI about 0.67


def test_the_record_keeps_the_uncorrected_view():
    policy = parse_policy(POLICY)
    rng = np.random.default_rng(5)
    reasons, _, alerts = judge_fairness(_night(rng, policy, 4000, effect=0.11), policy)
    assert alerts["correction"] == "holm" and alerts["alpha"] == pytest.approx(0.05) and len(alerts["tests"]) == 4
    for t in alerts["tests"]:
        bound = (
            Threshold(t["metric"], "ratio_band", 1.25, 0.8)
            if t["metric"] == "disparate_impact"
            else Threshold(t["metric"], "abs_difference", 0.1)
        )
        assert t["outside"] == (not bound.contains(t["value"]))  # the uncorrected view, as measured
        assert t["alert"] == (t["outside"] and t["p_adjusted"] <= 0.05)
    assert len(reasons) == sum(t["alert"] for t in alerts["tests"])
    assert all("holm-adjusted" in r for r in reasons)
