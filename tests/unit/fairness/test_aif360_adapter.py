"""The AIF360 adapter against direct formulas on fixtures small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairgate.fairness import aif360_adapter as aif
from fairgate.groups import Comparison

SEX = Comparison("sex", (("sex", 0),), (("sex", 1),))


def tiny():
    # unprivileged: 4 rows, 1 favorable; privileged: 6 rows, 3 favorable
    codes = pd.DataFrame({"sex": [0] * 4 + [1] * 6})
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0, 0, 0])
    return codes, y


def test_dataset_metrics_by_hand():
    codes, y = tiny()
    m = aif.dataset_metrics(codes, y, SEX)
    assert m["base_rate_unprivileged"] == pytest.approx(0.25)
    assert m["base_rate_privileged"] == pytest.approx(0.5)
    assert m["disparate_impact"] == pytest.approx(0.5)
    assert m["statistical_parity_difference"] == pytest.approx(-0.25)
    assert (m["n_unprivileged"], m["n_privileged"]) == (4, 6)


def test_reweighing_weights_by_hand():
    codes, y = tiny()
    w = aif.reweighing_weights(codes, y)
    # w(s, y) = P(s) P(y) / P(s, y): (0,1)=.4*.4/.1 (0,0)=.4*.6/.3 (1,1)=.6*.4/.3 (1,0)=.6*.6/.3
    expected = [1.6, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 1.2, 1.2, 1.2]
    np.testing.assert_allclose(w, expected)
    assert aif.dataset_metrics(codes, y, SEX, weights=w)["disparate_impact"] == pytest.approx(1.0, abs=1e-12)


def test_joint_reweighing_on_adult_brings_every_comparison_to_parity(adult):
    from fairgate.groups import comparisons, group_codes, labels
    from fairgate.policy.loader import load_policy

    policy = load_policy()
    codes, y = group_codes(adult, policy), labels(adult, policy)
    w = aif.reweighing_weights(codes, y)
    cell = codes["sex"].to_numpy() * 2 + codes["race"].to_numpy()
    direct = np.empty(len(y))
    for s in range(4):
        for lab in (0, 1):
            m = (cell == s) & (y == lab)
            direct[m] = (cell == s).mean() * (y == lab).mean() / m.mean()
    np.testing.assert_allclose(w, direct, rtol=1e-12)
    for comp in comparisons(policy):
        before = aif.dataset_metrics(codes, y, comp)["disparate_impact"]
        after = aif.dataset_metrics(codes, y, comp, weights=w)["disparate_impact"]
        assert before < 0.8
        assert after == pytest.approx(1.0, abs=1e-9)


def test_guards_refuse_degenerate_input_with_counts():
    codes, _ = tiny()
    with pytest.raises(aif.InsufficientDataError, match=r"'income' has a single class .* in 10 rows"):
        aif.check_measurable(codes, np.ones(10, dtype=int), SEX, label="income")
    no_fav_u = np.array([0, 0, 0, 0, 1, 1, 1, 0, 0, 0])
    with pytest.raises(aif.InsufficientDataError, match=r"unprivileged\) has 0 favorable outcomes .* out of 4 rows"):
        aif.check_measurable(codes, no_fav_u, SEX, label="income")
    with pytest.raises(aif.InsufficientDataError, match="has no rows"):
        aif.check_measurable(pd.DataFrame({"sex": [1] * 10}), np.array([1, 0] * 5), SEX)
