"""The fairness gate's rules, one by one, on evidence written out by hand."""

from __future__ import annotations

import pytest

from fairgate.fairness.gate import decide, judge_metric, review_decision
from fairgate.policy.loader import load_policy
from fairgate.policy.schema import Threshold

DI = Threshold("disparate_impact", "ratio_band", min=0.8, max=1.25)
EOD = Threshold("equal_opportunity_difference", "abs_difference", max=0.1)


@pytest.mark.parametrize(
    "t,value,low,high,margin,expected",
    [
        (DI, 0.95, 0.90, 1.00, 0.0, "pass"),
        (DI, 0.50, 0.40, 0.60, 0.0, "fail"),  # wholly below 0.8
        (DI, 0.85, 0.75, 0.95, 0.0, "review"),  # straddles 0.8
        (DI, 0.78, 0.70, 0.86, 0.0, "review"),  # point outside, interval straddles
        (DI, 0.81, 0.805, 0.815, 0.02, "review"),  # inside but within the margin of 0.8
        (EOD, -0.05, -0.08, -0.02, 0.0, "pass"),
        (EOD, -0.30, -0.40, -0.20, 0.0, "fail"),  # |x| bound: wholly below -0.1
        (EOD, 0.09, 0.05, 0.13, 0.0, "review"),
        (DI, None, None, None, 0.0, "review"),  # not finite: insufficient evidence
    ],
)
def test_judge_metric(t, value, low, high, margin, expected):
    outcome, message = judge_metric(t, value, low, high, margin)
    assert outcome == expected
    assert t.metric in message


def _group(n, positives):
    return {"n": n, "positives": positives}


def _evidence(di=(1.0, 0.95, 1.05), n_u=500, pos_u=100, extra=None):
    metrics = {
        "disparate_impact": dict(zip(("value", "ci_low", "ci_high"), di, strict=True)),
        "statistical_parity_difference": {"value": 0.0, "ci_low": -0.02, "ci_high": 0.02},
        "equal_opportunity_difference": {"value": 0.0, "ci_low": -0.02, "ci_high": 0.02},
        "average_odds_difference": {"value": 0.0, "ci_low": -0.02, "ci_high": 0.02},
    }
    metrics.update(extra or {})
    return {
        "sex": {"counts": {"unprivileged": _group(n_u, pos_u), "privileged": _group(1000, 300)}, "metrics": metrics}
    }


PERF = {"balanced_accuracy": 0.75}


@pytest.fixture(scope="module")
def policy():
    return load_policy()


def test_all_within_passes(policy):
    d = decide(_evidence(), PERF, policy)
    assert d.outcome == "pass"


def test_clear_violation_fails_and_says_which(policy):
    d = decide(_evidence(di=(0.5, 0.45, 0.55)), PERF, policy)
    assert d.outcome == "fail"
    assert d.reasons == [
        "sex: disparate_impact=0.5000 [0.4500, 0.5500] vs [0.8, 1.25]: interval wholly outside the bound"
    ]


def test_fail_dominates_review(policy):
    extra = {"equal_opportunity_difference": {"value": 0.09, "ci_low": 0.05, "ci_high": 0.13}}
    d = decide(_evidence(di=(0.5, 0.45, 0.55), extra=extra), PERF, policy)
    assert d.outcome == "fail"


def test_small_group_is_insufficient_evidence_never_a_pass(policy):
    d = decide(_evidence(n_u=policy.fairness.min_group_size - 1), PERF, policy)
    assert d.outcome == "review"
    assert "insufficient evidence" in d.reasons[0] and f"has {policy.fairness.min_group_size - 1} rows" in d.reasons[0]


def test_too_few_positives_is_insufficient_evidence(policy):
    d = decide(_evidence(pos_u=policy.fairness.min_positives - 1), PERF, policy)
    assert d.outcome == "review"
    assert "favorable outcomes" in d.reasons[0]


def test_nan_metric_goes_to_review(policy):
    d = decide(_evidence(di=(None, None, None)), PERF, policy)
    assert d.outcome == "review"


def test_constant_predictor_is_not_evidence(policy):
    # A constant predictor has EOD = 0 and DI = 1: perfect-looking numbers that mean nothing.
    d = decide(_evidence(), PERF, policy, constant_predictor=True)
    assert d.outcome == "review"
    assert "single class" in d.reasons[0]


def test_performance_floor_and_champion_regression(policy):
    assert decide(_evidence(), {"balanced_accuracy": 0.55}, policy).outcome == "fail"
    worse = decide(_evidence(), {"balanced_accuracy": 0.70}, policy, champion={"balanced_accuracy": 0.75})
    assert worse.outcome == "fail" and "below production" in worse.reasons[0]
    close = decide(_evidence(), {"balanced_accuracy": 0.74}, policy, champion={"balanced_accuracy": 0.75})
    assert close.outcome == "pass"


def test_a_production_model_that_cannot_be_compared_sends_the_candidate_to_review(policy):
    """A policy that renamed an input leaves the production model unscorable on the new rows: a person decides."""
    champion = {
        "version": "ab" * 32,
        "not_comparable": "it needs input columns ['hours'] that the policy no longer names",
    }
    d = decide(_evidence(), {"balanced_accuracy": 0.80}, policy, champion=champion)
    assert d.outcome == "review"
    assert d.reasons == [
        "champion: production model abababababab not comparable on this snapshot: it needs "
        "input columns ['hours'] that the policy no longer names"
    ]


@pytest.mark.parametrize(
    "choice,rationale,timed_out,approved",
    [
        ("Approve", "Margins are within sampling error; monitored nightly.", False, True),
        ("Approve", "   ", False, False),  # approval without a reason does not count
        ("Reject", "EOD too high for women", False, False),
        ("Reject", "", True, False),  # timeout
    ],
)
def test_review_decision(choice, rationale, timed_out, approved):
    r = review_decision(choice, rationale, reviewer="alice", timed_out=timed_out)
    assert r.approved is approved and r.reviewer == "alice" and r.choice == ("Reject" if timed_out else choice)
