"""A contest end to end: `fairgate contest` opens the case, `fairgate_contest` runs under `dag.test()`, a
reviewer overturns the decision through Airflow's REST API, and the outcome is in the evidence log,
in `fairgate case`, and in the next audit (the decision reversed, the contest counted in its group).
The Fairness view's contest route opens a second case and starts its run. Synthetic credit data, a
model deployed by an in-process lifecycle run, one scored day."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from tests.support.policies import synthetic_credit_policy

from fairgate.cli.main import main
from fairgate.governance import evidence, incidents, registry
from fairgate.monitoring import cases
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
DAY = date(2026, 8, 3)


@pytest.fixture
def scored(tmp_path, monkeypatch):
    from fairgate_dev.synthetic import write_feed

    write_feed(str(tmp_path / "feed"), DAY.isoformat(), 1, 300, seed=41)
    path, _ = synthetic_credit_policy(
        tmp_path,
        3000,
        seed=40,
        audit={"incoming": str(tmp_path / "feed"), "window_days": 1, "label_lag_days": 0},
        recourse={"actionable": {"income": {"direction": "increase"}}},
    )
    policy = load_policy(path)
    store = LocalStore(tmp_path / "store")
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r")).decision == "deployed"
    monitoring.score(store, policy, DAY)
    monkeypatch.setenv("FAIRGATE_POLICY", str(path))
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(store.root))
    log = pd.read_parquet(store.root / f"predictions/model=credit/date={DAY}/part.parquet")
    return store, policy, log


def _records(store, kind):
    return [e for e in evidence.entries(store, "credit") if e["record"]["kind"] == kind]


def test_a_contest_through_airflow_to_a_recorded_outcome_the_audit_counts(scored, capsys):
    from fairgate_dev.local import Reviewer, init_db, load_dag

    store, policy, log = scored
    woman = log[(log["decision"] == 0) & (log["gender"] == "female")].iloc[0]
    row = str(woman["application_id"])
    before = monitoring.audit_day(store, policy, DAY, run_id="before")

    assert main(["contest", row, "--reason", "My income rose last month.", "--json"]) == 0
    opened = json.loads(capsys.readouterr().out)
    assert opened["case_id"] == cases.case_id(row, DAY.isoformat())
    assert opened["recourse"]["feasible"] and "income up by" in opened["recourse"]["text"]
    assert opened["trigger"] == {"dag_id": "fairgate_contest__credit", "conf": {"case_id": opened["case_id"]}}
    # refused, and recorded nowhere: the same decision again, an unknown row, another model's row
    assert main(["contest", row, "--reason", "again"]) == 1
    assert "already contested" in capsys.readouterr().err
    assert main(["contest", "no-such-row", "--reason", "x"]) == 1
    assert "no scored decision" in capsys.readouterr().err
    store.put(
        f"predictions/model=other/date={DAY}/part.parquet", pd.DataFrame({"application_id": ["theirs-1"]}).to_parquet()
    )
    assert main(["contest", "theirs-1", "--reason", "x"]) == 1
    assert "a record of model 'other'" in capsys.readouterr().err
    assert len(_records(store, "contest_opened")) == 1

    init_db()
    reviewer = Reviewer(
        "fairgate_contest__credit",
        "Overturn",
        "The applicant's new payslip shows the income.",
        task_id="decide_contest",
        timeout_s=300,
        params={"report_incident": True},  # the reviewer also reports an incident
    )
    reviewer.start()
    dr = load_dag("fairgate_contest__credit").test(run_conf={"case_id": opened["case_id"]})
    reviewer.stop()
    reviewer.join(5)
    assert dr.state == "success" and reviewer.answered, reviewer.error
    shown = reviewer.request["body"]
    assert row in shown and "My income rose last month." in shown and "income up by" in shown

    [decided] = _records(store, "contest_decided")
    assert decided["record"]["choice"] == "Overturn" and decided["record"]["final_decision"] == 1
    assert decided["record"]["rationale"] == "The applicant's new payslip shows the income."
    assert evidence.verify(store, "credit").ok
    [incident] = incidents.incidents(store, "credit")
    assert (incident["source"], incident["link"]) == ("reported", f"case {opened['case_id']}")
    assert "The applicant's new payslip shows the income." in incident["seen"][0]
    assert incident["version"] == registry.production_version(store, "credit") and incident["status"] == "open"
    assert main(["case", row]) == 0
    assert "overturned by" in capsys.readouterr().out

    after = monitoring.audit_day(store, policy, DAY, run_id="after")
    women = after["contests"]["comparisons"]["gender"]["unprivileged"]
    assert (women["contested"], women["overturned"]) == (1, 1)
    assert women["overturn_rate"]["value"] == 1.0
    assert after["contests"]["comparisons"]["gender"]["privileged"]["contested"] == 0
    selected = {
        w: r["fairness"]["gender"]["counts"]["all"]["unprivileged"]["selected"]
        for w, r in (("before", before), ("after", after))
    }
    assert selected["after"] == selected["before"] + 1  # the overturned decision counts as decided

    with pytest.raises(cases.CaseError, match="already decided"):
        cases.decide(store, policy, opened["case_id"], choice="Uphold", rationale="no", reviewer="x")


def test_the_fairness_view_opens_a_contest_and_starts_its_review(scored):
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from fairgate_dev.local import init_db, load_dag

    store, _policy, log = scored
    init_db()
    load_dag("fairgate_contest__credit")
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    from fairgate_dev.local import REPO

    sync_bag_to_db(DagBag(dag_folder=str(REPO / "dags")), "dags-folder", None)
    auth = create_auth_manager()
    token = auth.generate_jwt(SimpleAuthManagerUser(username="caseworker", role="admin"))
    from fairgate_airflow.ui import app

    client = TestClient(app)
    row = str(log[log["decision"] == 0].iloc[1]["application_id"])
    headers = {"Authorization": f"Bearer {token}"}
    made = client.post(
        "/api/contest", json={"model": "credit", "row": row, "reason": "Wrong address."}, headers=headers
    )
    assert made.status_code == 201, made.text
    assert made.json()["dag_id"] == "fairgate_contest__credit" and made.json()["dag_run_id"]
    assert cases.read(store, "credit", made.json()["case_id"])["opened_by"] == "fairness-view:caseworker"
    again = client.post("/api/contest", json={"model": "credit", "row": row, "reason": "Again."}, headers=headers)
    assert again.status_code == 400 and "already contested" in again.json()["detail"]
    assert client.post("/api/contest", json={"model": "credit", "row": row, "reason": "x"}).status_code == 401
    assert (
        client.post("/api/contest", json={"model": "nope", "row": row, "reason": "x"}, headers=headers).status_code
        == 404
    )
