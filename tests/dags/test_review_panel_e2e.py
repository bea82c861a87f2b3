"""A review panel end to end on synthetic credit data: `review.required: always` sends a gate pass to
review, `review.quorum: 2` puts two review tasks in the DAG, both answered through Airflow's REST API.
The in-process API signs every request in as the same user, so the second approval is that person's
second: refused (a quorum is of different people), the model rejected, production untouched."""

from __future__ import annotations

import pytest
import yaml
from tests.support.fixtures import ANSWERED
from tests.support.policies import synthetic_credit_policy

from fairgate.governance import evidence, registry
from fairgate.storage.local import LocalStore

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
DAG_ID = "fairgate_lifecycle__credit"


def test_a_second_approval_by_the_same_person_does_not_make_a_quorum(tmp_path, monkeypatch):
    from fairgate_dev.local import Reviewer, init_db, load_dag

    path, _ = synthetic_credit_policy(tmp_path, 3000, seed=71)
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, **ANSWERED, "review": {"required": "always", "quorum": 2}}))
    monkeypatch.setenv("FAIRGATE_POLICY", str(path))
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(tmp_path / "store"))
    init_db()
    dag = load_dag(DAG_ID)
    assert {"human_review", "human_review_2"} <= set(dag.task_ids)
    first = Reviewer(DAG_ID, "Approve", "figures inside every band", task_id="human_review", timeout_s=400)
    second = Reviewer(DAG_ID, "Approve", "agreed", task_id="human_review_2", timeout_s=400)
    for r in (first, second):
        r.start()
    dr = dag.test()
    for r in (first, second):
        r.stop()
        r.join(5)
        assert r.answered, f"{r.task_id} was never answered (last error: {r.error!r})"

    store = LocalStore(tmp_path / "store")
    rec = evidence.find(store, "credit", dr.run_id)["record"]
    assert rec["gate"]["outcome"] == "pass" and rec["decision"] == "rejected"
    review = rec["review"]
    person = review["panel"][0]["reviewer"]
    assert [a["reviewer"] for a in review["panel"]] == [person, person] and review["approvals"] == [person]
    assert review["note"] == f"approval refused: {person} approved already; a quorum of 2 needs different people"
    assert registry.production_version(store, "credit") is None  # nothing was deployed

    body = first.request["body"]  # what the first reviewer read
    assert "The fairness gate passed this model; the policy asks a person to approve every promotion" in body
    assert "**Approval 1 of 2**, each by a different person" in body
    assert "Who could be adversely affected: applicants refused credit, women more often than men" in body
    assert f"approved so far by {person}" in second.request["body"]
