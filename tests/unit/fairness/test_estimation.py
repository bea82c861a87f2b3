"""Label-free estimates of each group's rates from the scores, against hand counts and simulated outcomes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairgate.fairness import estimation
from fairgate.groups import Comparison


def test_expected_counts_and_calibration_error_by_hand():
    scores = np.array([0.9, 0.6, 0.2, 0.1])
    decisions = np.array([1, 1, 0, 0])
    c = estimation.expected_counts(scores, decisions)
    assert (c.tp, c.fp, c.fn, c.tn) == pytest.approx((1.5, 0.5, 0.3, 1.7))
    assert estimation.rates(c)["true_positive_rate"] == pytest.approx(1.5 / 1.8)
    # bins: 0.9 -> 9 (y=1), 0.6 -> 6 (y=0), 0.2 -> 2 (y=0), 0.1 -> 1 (y=0): |0.9-1|+|0.6-0|+|0.2|+|0.1| over 4
    assert estimation.calibration_error(scores, np.array([1, 0, 0, 0])) == pytest.approx((0.1 + 0.6 + 0.2 + 0.1) / 4)


COMP = [Comparison(key="g", unprivileged=(("g", 0),), privileged=(("g", 1),))]


def _window(n: int, seed: int, *, distort: float = 1.0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, n)
    true = np.clip(rng.beta(2, 3, n) + 0.15 * g, 0, 1)  # the chance each record is favourable
    y = (rng.random(n) < true).astype(float)
    shown = np.clip(0.5 + (true - 0.5) * distort, 0, 1)  # distort > 1: over-confident scores
    return pd.DataFrame({"g": g.astype(np.int8)}), shown, (shown >= 0.5).astype(np.int8), y


def test_calibrated_scores_estimate_the_realised_rates_and_are_trusted():
    codes, scores, decisions, y = _window(40_000, 1)
    known = y.copy()
    known[20_000:] = np.nan  # half the outcomes have not arrived
    got = estimation.per_group(codes, scores, decisions, COMP, outcomes=known)["g"]
    for side in ("unprivileged", "privileged"):
        entry = got[side]
        assert entry["reliable"] and entry["calibration_error"] < 0.02
        for rate in estimation.RATES:
            assert abs(entry["error"][rate]) < 0.02, (side, rate)
        # The estimate over every row (outcomes or not) is close to what all outcomes would say.
        mask = (codes["g"] == (side == "privileged")).to_numpy()
        real_tpr = ((decisions == 1) & (y == 1))[mask].sum() / (y == 1)[mask].sum()
        assert entry["estimated"]["true_positive_rate"] == pytest.approx(real_tpr, abs=0.02)
        assert entry["rows_without_outcome"] == int((mask & np.isnan(known)).sum())


def test_over_confident_scores_are_marked_unreliable():
    codes, scores, decisions, y = _window(20_000, 2, distort=2.0)
    got = estimation.per_group(codes, scores, decisions, COMP, outcomes=y)["g"]
    assert not got["unprivileged"]["reliable"] and got["unprivileged"]["calibration_error"] > 0.05
    assert abs(got["unprivileged"]["error"]["accuracy"]) > 0.05


def test_without_outcomes_there_is_only_the_estimate():
    codes, scores, decisions, _ = _window(1000, 3)
    got = estimation.per_group(codes, scores, decisions, COMP)["g"]["privileged"]
    assert set(got) == {"rows", "rows_without_outcome", "estimated"} and got["rows"] == got["rows_without_outcome"]
