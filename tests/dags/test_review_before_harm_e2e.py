"""Review before harm end to end: `fairgate_score` under `dag.test()` with review triggers queues the
day's borderline decisions, one mapped HITL task per queued decision asks a reviewer, each is answered
through Airflow's REST API (one overturned), and the audit reads the reviewers' decisions."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from tests.support.policies import synthetic_credit_policy

from fairgate.governance import evidence
from fairgate.monitoring import cases
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
DAY = date(2026, 9, 1)


def test_queued_decisions_are_reviewed_in_airflow_and_the_audit_reads_the_outcome(tmp_path, monkeypatch):
    from fairgate_dev.local import answer_review, awaiting_reviews, init_db, load_dag, review_request, warm_api
    from fairgate_dev.synthetic import write_feed

    write_feed(str(tmp_path / "feed"), DAY.isoformat(), 1, 300, seed=51)
    path, _ = synthetic_credit_policy(
        tmp_path,
        3000,
        seed=50,
        audit={"incoming": str(tmp_path / "feed"), "window_days": 1, "label_lag_days": 0},
        review_triggers={"score_margin": 0.1, "daily_cap": 3},
    )
    policy = load_policy(path)
    store = LocalStore(tmp_path / "store")
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r")).decision == "deployed"
    monkeypatch.setenv("FAIRGATE_POLICY", str(path))
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(store.root))
    init_db()

    answered: list[tuple[int, str]] = []
    shown: list[str] = []
    errors: list[BaseException] = []

    def review_all():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(answered) < 3:
            try:
                answer_waiting()
            except Exception as exc:  # e.g. SQLite busy while the run writes: try again, keep it for the report
                errors.append(exc)
            time.sleep(0.5)

    def answer_waiting():
        for run_id, index in awaiting_reviews("fairgate_score__credit", "review_decision"):
            if index in {i for i, _ in answered}:
                continue
            shown.append(
                review_request("fairgate_score__credit", run_id, task_id="review_decision", map_index=index)["body"]
            )
            choice = "Overturn" if not answered else "Uphold"
            answer_review(
                "fairgate_score__credit",
                run_id,
                choice,
                f"Checked case {index}.",
                task_id="review_decision",
                map_index=index,
            )
            answered.append((index, choice))

    warm_api()
    reviewer = threading.Thread(target=review_all, daemon=True)
    reviewer.start()
    dr = load_dag("fairgate_score__credit").test(logical_date=datetime(2026, 9, 2, 1, tzinfo=UTC))
    reviewer.join(10)
    assert dr.state == "success" and len(answered) == 3, errors
    assert all("waits for review before it takes effect" in body and "score within 0.1" in body for body in shown)

    decided = [e["record"] for e in evidence.entries(store, "credit") if e["record"]["kind"] == "review_decided"]
    assert sorted(r["choice"] for r in decided) == ["Overturn", "Uphold", "Uphold"]
    log = pd.read_parquet(store.root / f"predictions/model=credit/date={DAY}/part.parquet")
    queued = log[log["review_status"] == "pending"]
    assert len(queued) == 3 and {r["row"] for r in decided} == set(queued["application_id"])
    overturned = next(r for r in decided if r["choice"] == "Overturn")
    case = cases.read(store, "credit", overturned["case_id"])
    assert overturned["final_decision"] == 1 - case["decision"]

    result = monitoring.audit_day(store, policy, DAY, run_id="a")
    assert (result["review_queue"]["reviewed"], result["review_queue"]["overturned"]) == (3, 1)
    side = "unprivileged" if case["groups"]["gender"] == "female" else "privileged"
    assert result["review_queue"]["comparisons"]["gender"][side]["overturned"] == 1
    by_hand = int(log.loc[log["gender"].eq("female" if side == "unprivileged" else "male"), "decision"].sum())
    got = result["fairness"]["gender"]["counts"]["all"][side]["selected"]
    assert got == by_hand + (1 if case["decision"] == 0 else -1)  # the reviewer's decision, not the model's
