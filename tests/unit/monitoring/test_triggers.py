"""Review before harm: the triggers on hand-built scores and records, the daily cap, and a scoring run
whose queue and audit figures are recounted here from the stored prediction log."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.support.policies import synthetic_credit_policy

from fairgate.errors import PolicyError
from fairgate.monitoring import cases
from fairgate.monitoring import review_triggers as triggers
from fairgate.policy.loader import load_policy, parse_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore


def _policy(**rules):
    return parse_policy(
        {
            "model_name": "toy",
            "dataset": {
                "source": "/nowhere.csv",
                "row_key": "id",
                "label": "y",
                "favorable_label": 1,
                "features": {"categorical": ["area"], "numeric": ["x"]},
            },
            "protected_attributes": [{"column": "gender", "privileged": ["m"], "allowed": ["m", "f"]}],
            "audit": {"incoming": "/nowhere"},
            "review_triggers": rules,
        }
    )


RECORDS = pd.DataFrame(
    {
        "gender": ["f", "f", "m", "f", "m", "m"],
        "area": ["a", "a", "a", "a", "a", "z"],
        "x": [1.0, 2.0, 3.0, 4.0, 5.0, 99.0],
    }
)
SCORES = np.array([0.52, 0.58, 0.58, 0.70, 0.46, 0.90])


def test_each_trigger_on_hand_built_scores():
    policy = _policy(score_margin=0.05, protected_margin=0.1)
    got = triggers.reasons(RECORDS, SCORES, policy, ranges=None)
    assert [bool(r) for r in got] == [True, True, False, False, True, False]
    assert got[0] == ["score within 0.05 of the threshold"]
    assert "unprivileged group" in got[1][0]  # a woman at 0.58: inside the wider margin only
    assert got[4] == ["score within 0.05 of the threshold"]


def test_inputs_outside_the_training_data():
    policy = _policy(outside_training=True)
    ranges = triggers.training_ranges(RECORDS.iloc[:5], policy)
    assert ranges == {"area": ["a"], "x": [1.0, 5.0]}
    got = triggers.reasons(RECORDS, SCORES, policy, ranges=ranges)
    assert got[:5] == [[]] * 5
    assert sorted(got[5]) == ["area has a category not seen in training", "x outside the training range [1, 5]"]


def test_the_daily_cap_takes_the_most_borderline_first():
    policy = _policy(score_margin=0.15, daily_cap=2)  # distances 0.02 0.08 0.08 0.20 0.04 0.40
    why = triggers.reasons(RECORDS, SCORES, policy, ranges=None)
    assert triggers.queue(SCORES, why, policy) == ["pending", "over_cap", "over_cap", "none", "pending", "none"]
    with pytest.raises(PolicyError, match="review_triggers"):
        _policy(score_margin=2.0)
    with pytest.raises(PolicyError, match="review_triggers"):
        _policy(above_cap="queue")


@pytest.mark.lifecycle
@pytest.mark.parametrize("above_cap", ["decide", "hold"])
def test_a_scoring_run_queues_and_the_audit_counts_per_group(tmp_path, above_cap):
    from fairgate_dev.synthetic import write_feed

    write_feed(str(tmp_path / "feed"), "2026-07-01", 1, 500, seed=31)
    path, _ = synthetic_credit_policy(
        tmp_path,
        3000,
        seed=30,
        audit={"incoming": str(tmp_path / "feed"), "window_days": 1, "label_lag_days": 0},
        review_triggers={"score_margin": 0.08, "protected_margin": 0.12, "daily_cap": 25, "above_cap": above_cap},
    )
    policy = load_policy(path)
    store = LocalStore(tmp_path / "store")
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r")).decision == "deployed"
    scored = monitoring.score(store, policy, date(2026, 7, 1))

    log = pd.read_parquet(tmp_path / "store/predictions/model=credit/date=2026-07-01/part.parquet")
    distance = (log["score"] - 0.5).abs()
    women = log["gender"] == "female"
    flagged = (distance <= 0.08) | (women & (distance <= 0.12))
    assert flagged.sum() > 25  # the cap binds
    # ties in distance may order either way; the counts and the borderline-first rule must hold
    assert (log.loc[~flagged, "review_status"] == "none").all()
    assert (log["review_status"] == "pending").sum() == 25 and (
        log["review_status"] == "over_cap"
    ).sum() == flagged.sum() - 25
    assert distance[log["review_status"] == "pending"].max() <= distance[log["review_status"] == "over_cap"].min()
    assert {k: scored["review"][k] for k in ("pending", "over_cap")} == {
        "pending": 25,
        "over_cap": int(flagged.sum() - 25),
    }
    queue = pd.read_parquet(tmp_path / "store/reviews/model=credit/date=2026-07-01/queue.parquet")
    assert len(queue) == (25 if above_cap == "decide" else int(flagged.sum()))
    assert queue["distance"].is_monotonic_increasing
    assert all(json.loads(r) for r in queue["review_reasons"])

    result = monitoring.audit_day(store, policy, date(2026, 7, 1), run_id="a")
    figures = result["review_queue"]["comparisons"]["gender"]
    for side, is_woman in (("unprivileged", True), ("privileged", False)):
        rows = log[women == is_woman]
        assert figures[side]["decisions"] == len(rows)
        assert figures[side]["pending"] == int((rows["review_status"] == "pending").sum())
        assert figures[side]["over_cap"] == int((rows["review_status"] == "over_cap").sum())
    # a review case per queued decision, for the reviewers; one decided (overturned) supersedes the decision
    assert len(scored["review_cases"]) == len(queue)
    assert monitoring.score(store, policy, date(2026, 7, 1))["review_cases"] == scored["review_cases"]  # once
    first = cases.read(store, "credit", scored["review_cases"][0])
    cases.decide(store, policy, first["case_id"], choice="Overturn", rationale="Checked by hand.", reviewer="r")
    again = monitoring.audit_day(store, policy, date(2026, 7, 1), run_id="b")
    side = "unprivileged" if first["groups"]["gender"] == "female" else "privileged"
    got = again["review_queue"]["comparisons"]["gender"][side]
    assert (got["reviewed"], got["overturned"], got["overturn_rate"]["value"]) == (1, 1, 1.0)
    before_sel = result["fairness"]["gender"]["counts"]["all"][side]["selected"]
    after_sel = again["fairness"]["gender"]["counts"]["all"][side]["selected"]
    assert after_sel - before_sel == (1 if first["decision"] == 0 else -1)  # the reviewer's decision counts


@pytest.mark.lifecycle
def test_without_triggers_the_log_is_unchanged(tmp_path):
    from fairgate_dev.synthetic import write_feed

    write_feed(str(tmp_path / "feed"), "2026-07-01", 1, 200, seed=32)
    path, _ = synthetic_credit_policy(tmp_path, 2000, seed=33, audit={"incoming": str(tmp_path / "feed")})
    raw = yaml.safe_load(path.read_text())
    assert "review_triggers" not in raw
    policy = load_policy(path)
    store = LocalStore(tmp_path / "store")
    lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r"))
    assert "review" not in monitoring.score(store, policy, date(2026, 7, 1))
    log = pd.read_parquet(tmp_path / "store/predictions/model=credit/date=2026-07-01/part.parquet")
    assert "review_status" not in log.columns and not store.list("reviews/")
