"""Incidents on synthetic credit data: a degraded audit opens one (whose figures are the audit's), its
reporting clock is the policy's (Art. 73: 15, 2 or 10 days), the deadline sweep fires once past it,
and a person acts on it and closes it with a rationale, all as evidence records. Plus the
post-market monitoring plan and the release bundle's copy of both."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException
from tests.support.policies import synthetic_credit_policy

from fairgate.cli.main import main
from fairgate.errors import InputError
from fairgate.governance import evidence, incidents
from fairgate.policy.loader import load_policy, parse_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.stages.monitoring import open_incidents
from fairgate.storage.local import LocalStore
from fairgate_airflow.operators import IncidentDeadlinesOperator
from fairgate_dev.synthetic import write_feed

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("incidents")
    path, _ = synthetic_credit_policy(tmp, 2000, seed=81)
    raw = yaml.safe_load(path.read_text())
    raw["owners"] = {"monitoring": "risk analytics"}
    raw["impact_assessment"] = {"severity": "high"}
    return {"raw": raw, "tmp": tmp}


def test_an_incident_lives_in_the_evidence_log_from_open_to_close(credit, tmp_path):
    store = LocalStore(tmp_path / "store")
    policy = parse_policy(credit["raw"])
    seen = ["disparate_impact=0.61 [0.55, 0.68] outside [0.8, 1.25]"]
    opened = incidents.open_incident(store, policy, source="audit_degraded", link="audit 2026-06-01", seen=seen, now=T0)
    assert opened["due"] == (T0 + timedelta(days=15)).isoformat()  # the `serious` clock: 15 days
    assert (opened["owner"], opened["severity"], opened["status"]) == ("risk analytics", "high", "open")
    again = incidents.open_incident(store, policy, source="audit_degraded", link="audit 2026-06-01", seen=seen)
    assert again == opened and len(incidents.incidents(store, "credit")) == 1  # a re-run opens nothing new

    assert incidents.sweep(store, "credit", now=T0 + timedelta(days=14, hours=23)) == []  # not due yet
    late = incidents.sweep(store, "credit", now=T0 + timedelta(days=15, minutes=1))
    assert [i["incident_id"] for i in late] == [opened["incident_id"]] and late[0]["overdue"]
    incidents.sweep(store, "credit", now=T0 + timedelta(days=16))
    kinds = [e["record"]["kind"] for e in evidence.entries(store, "credit")]
    assert kinds.count("incident_overdue") == 1  # recorded once, however often the sweep runs

    incidents.act(store, "credit", opened["incident_id"], action="rollback", note="back to v1", by="ana")
    with pytest.raises(InputError, match="needs a rationale"):
        incidents.close(store, "credit", opened["incident_id"], rationale="  ", by="ana")
    closed = incidents.close(store, "credit", opened["incident_id"], rationale="v2 reweighed, DI 0.93", by="ana")
    assert closed["status"] == "closed" and closed["actions"][0]["action"] == "rollback"
    assert closed["rationale"] == "v2 reweighed, DI 0.93" and closed["closed_by"] == "ana"
    with pytest.raises(InputError, match="was closed already"):
        incidents.close(store, "credit", opened["incident_id"], rationale="again", by="ana")
    with pytest.raises(InputError, match=r"No incident 'inc-nope' for model 'credit'; its incidents are \['inc-"):
        incidents.act(store, "credit", "inc-nope", action="note", note="x", by="ana")
    assert evidence.verify(store, "credit").ok


@pytest.mark.parametrize(("clock", "days"), [("serious", 15), ("widespread", 2), ("death", 10)])
def test_each_reporting_clock(credit, tmp_path, clock, days):
    policy = parse_policy({**credit["raw"], "incidents": {"clock": clock}})
    found = incidents.open_incident(LocalStore(tmp_path), policy, source="reported", link="x", seen=["y"], now=T0)
    assert datetime.fromisoformat(found["due"]) - T0 == timedelta(days=days)


def test_overturned_reviews_above_the_bound_open_one(credit, tmp_path):
    """By hand: 4 of 10 reviewed decisions overturned is 40 %: above a bound of 0.3, not above 0.5."""
    result = {
        "date": "2026-06-03",
        "status": "healthy",
        "reasons": [],
        "review_queue": {"reviewed": 10, "overturned": 4},
    }
    store = LocalStore(tmp_path)
    strict = parse_policy({**credit["raw"], "incidents": {"max_overturn_rate": 0.3}})
    [opened] = open_incidents(store, strict, result, run_type="scheduled")
    assert opened["source"] == "overturn_rate" and "overturned 4 of 10 reviewed decisions (40.0%)" in opened["seen"][0]
    lenient = parse_policy({**credit["raw"], "incidents": {"max_overturn_rate": 0.5}})
    assert open_incidents(LocalStore(tmp_path / "b"), lenient, result, run_type="scheduled") == []
    degraded = {**result, "status": "degraded", "reasons": ["x"]}
    assert open_incidents(LocalStore(tmp_path / "c"), lenient, degraded, run_type="backfill") == []


@pytest.mark.lifecycle
def test_a_degraded_audit_opens_an_incident_whose_deadline_fires(credit, tmp_path, capsys):
    """Deployed under loose thresholds; the audit judges with DI >= 0.95, which the injected disparity (0.6)
    breaks: the audit is degraded and opens an incident naming its reasons. The deadline sweep task of
    the audit DAG fails once the incident is past due; the CLI lists it (exit 2) and closes it."""
    write_feed(str(tmp_path / "feed"), "2026-06-01", 1, 400, seed=82)
    raw = {**credit["raw"], "audit": {**credit["raw"]["audit"], "incoming": str(tmp_path / "feed"), "window_days": 1}}
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(raw))
    store = LocalStore(tmp_path / "store")
    assert (
        lifecycle.run_in_process(store, load_policy(tmp_path / "deploy.yaml"), RunInfo("nb", "r")).decision
        == "deployed"
    )
    strict = json.loads(json.dumps(raw))
    strict["fairness"]["thresholds"]["disparate_impact"] = {"kind": "ratio_band", "min": 0.95, "max": 1.05}
    strict["incidents"] = {"clock": "widespread"}
    (tmp_path / "credit.yaml").write_text(yaml.safe_dump(strict))
    policy = load_policy(tmp_path / "credit.yaml")
    monitoring.score(store, policy, date(2026, 6, 1))
    audited = monitoring.audit(store, policy, date(2026, 6, 1), run_id="a1", run_type="scheduled")
    assert audited.status == "degraded" and len(audited.incidents) == 1
    [found] = incidents.incidents(store, "credit")
    assert found["seen"] == list(audited.reasons) and found["link"] == "audit 2026-06-01"
    assert found["version"] == audited.judged_version and found["clock"] == "widespread"
    assert "Incident(s) opened: " + found["incident_id"] in monitoring.alert(audited, "credit").message
    stored = json.loads(store.get(store.key_of(audited.result.uri)))  # the audit also searched subgroups
    first = stored["subgroups"]["top"][0]
    assert first["discovered"] and "gender" in first["subgroup"] and first["gap"] != 0
    assert stored["subgroups"]["tests"] > 0 and stored["alerts"]["correction"] == "holm"
    assert "Subgroups treated most differently from the rest" in store.get(store.key_of(audited.report.uri)).decode()

    op = IncidentDeadlinesOperator(task_id="incident_deadlines", policy_file=str(tmp_path / "credit.yaml"))
    op.artifact_root = str(store.root)
    context = {"dag_run": SimpleNamespace(dag_id="a", run_id="r", run_type="scheduled"), "params": {}}
    op.execute(context)  # opened just now: due in 2 days, nothing fires
    # The same incident as if opened three days ago: past its 2-day deadline.
    old = tmp_path / "old"
    old_store = LocalStore(old)
    incidents.open_incident(
        old_store,
        policy,
        source="audit_degraded",
        link="audit 2026-05-29",
        seen=["x"],
        now=datetime.now(UTC) - timedelta(days=3),
    )
    op.artifact_root = str(old)
    op._policy = None
    with pytest.raises(AirflowFailException, match=r"1 incident\(s\) of 'credit' open past their reporting deadline"):
        op.execute(context)
    cli = ["--artifact-root", str(old), "--policy", str(tmp_path / "credit.yaml"), "incidents"]
    assert main(cli) == 2  # an overdue incident open
    listed = capsys.readouterr().out
    assert "[OVERDUE] audit_degraded (audit 2026-05-29)" in listed and "widespread clock" in listed
    [ident] = [i["incident_id"] for i in incidents.incidents(old_store, "credit")]
    assert main([*cli, "close", ident, "--rationale", "retrained; DI back inside", "--by", "ana"]) == 0
    assert main(cli) == 0 and "No open incidents for credit (1 in all)." in capsys.readouterr().out
    import getpass
    import socket

    # --by is a name nothing in a shell can authenticate: the record keeps who ran the command, and where
    closed = incidents.incidents(old_store, "credit")[0]
    assert closed["closed_by"] == f"ana (via cli:{getpass.getuser()}@{socket.gethostname()})"


def test_the_post_market_plan_says_what_the_policy_measures(credit):
    raw = {**credit["raw"], "incidents": {"max_overturn_rate": 0.25}}
    plan = incidents.monitoring_plan(parse_policy(raw))
    assert plan.startswith("# Post-market monitoring plan: credit")
    assert "Monitoring: risk analytics." in plan and "Complaints: not named (owners.complaints)." in plan
    assert "An overturn rate of reviewed decisions above 0.25 opens one." in plan
    assert "due 15 day(s) after it opened" in plan
    dag = raw.get("schedule", {})
    assert f"The audit: {dag.get('audit', '0 3 * * *')}".replace("*", "\\*") in plan
