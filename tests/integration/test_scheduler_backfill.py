"""Scheduler-driven runs on a real deployment (PostgreSQL, api-server, scheduler, dag-processor):
a lifecycle run that deploys, then `airflow backfill create` over five days of scoring and
auditing, and a reprocessed audit backfill that replaces rather than duplicates; served decisions
ingested by `fairgate_ingest`, whose asset starts an audit once `audit.min_new_decisions` arrived. Airflow's
OpenLineage provider writes its events through the file transport; the lifecycle's carry the
fairness facet.
"""

from __future__ import annotations

import json

import pytest
from tests.support.policies import LOOSE, default_policy_dict
from tests.support.stack import AirflowStack, require_postgres

from fairgate.storage.local import LocalStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]
DAYS = ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_postgres()
    root = tmp_path_factory.mktemp("stack")
    raw = default_policy_dict()
    raw["fairness"]["thresholds"] = LOOSE
    raw["audit"].update({"window_days": 3, "label_lag_days": 1, "daily_rows": 800, "min_new_decisions": 60})
    (root / "policy.yaml").write_text(json.dumps(raw))
    transport = {"type": "file", "log_file_path": str(root / "lineage.jsonl"), "append": True}
    s = AirflowStack(
        root,
        {
            "FAIRGATE_POLICY": str(root / "policy.yaml"),
            "FAIRGATE_ARTIFACT_ROOT": str(root / "artifacts"),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "fairgate-test",
        },
    )
    try:
        yield s.start()
    finally:
        s.stop()


def _lineage_carries_the_fairness_facet(stack, store):
    """Every recorded lifecycle run (the manual one, and any the weekly schedule started) has a COMPLETE
    event of record_evidence whose outputs carry its decision, metrics and evidence hash."""
    from fairgate.governance import evidence

    runs = [e for e in evidence.entries(store, "adult_income") if e["record"]["kind"] == "lifecycle"]
    path = stack.root / "lineage.jsonl"

    def completed():
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        done = [
            e
            for e in events
            if e.get("eventType") == "COMPLETE" and e["job"]["name"] == "fairgate_lifecycle.record_evidence"
        ]
        return done if len(done) >= len(runs) else None

    stack.wait(completed, 120, "the OpenLineage COMPLETE events of record_evidence")
    by_hash = {e["outputs"][0]["facets"]["fairgate_fairness"]["evidenceHash"]: e for e in completed()}
    assert {r["hash"] for r in runs} <= set(by_hash)  # a scheduled run may have finished since
    assert set(by_hash) <= {e["hash"] for e in evidence.entries(store, "adult_income")}
    for entry in runs:
        event, rec = by_hash[entry["hash"]], entry["record"]
        assert event["job"]["namespace"] == "fairgate-test"
        assert [d["name"] for d in event["inputs"]] == [str(store.root / store.key_of(rec["data"]["uri"]))]
        outputs = {d["name"]: d["facets"]["fairgate_fairness"] for d in event["outputs"]}
        facet = outputs[str(store.root / store.key_of(rec["model"]["uri"]))]
        assert facet["evidenceSeq"] == entry["seq"] and facet["decision"] == rec["decision"]
        assert facet["gateOutcome"] == rec["gate"]["outcome"]
        assert facet["metrics"]["sex.disparate_impact"] == rec["fairness"]["sex"]["disparate_impact"]["value"]
        assert facet["_schemaURL"].endswith("FairgateFairnessDatasetFacet.json")
    assert "deployed" in {by_hash[r["hash"]]["outputs"][0]["facets"]["fairgate_fairness"]["decision"] for r in runs}


def test_lifecycle_then_five_day_backfills(stack):
    store = LocalStore(stack.env["FAIRGATE_ARTIFACT_ROOT"])
    stack.wait_for_dags("fairgate_lifecycle", "fairgate_score", "fairgate_audit")

    stack.cli("dags", "trigger", "fairgate_lifecycle")
    runs = stack.wait_for_runs("fairgate_lifecycle", 1, timeout=900, run_type="manual")
    assert runs[0][1] == "success", stack.diagnostics()
    assert store.exists("registry/adult_income/production.json")
    _lineage_carries_the_fairness_facet(stack, store)

    # Runs fire at 01:00 the morning after the day they cover.
    stack.cli(
        "backfill",
        "create",
        "--dag-id",
        "fairgate_score",
        "--from-date",
        "2026-03-02",
        "--to-date",
        "2026-03-06T02:00:00+00:00",
    )
    # DAGs must be unpaused for backfills to run, so the scheduler's own daily runs (for today)
    # happen too; only the backfill runs are counted.
    score_runs = stack.wait_for_runs("fairgate_score", 5, run_type="backfill")
    assert [(state, kind) for _, state, kind in score_runs] == [("success", "backfill")] * 5, stack.diagnostics()
    assert store.list("predictions/model=adult_income/date=2026-03") == [
        f"predictions/model=adult_income/date={d}/part.parquet" for d in DAYS
    ]

    stack.cli(
        "backfill",
        "create",
        "--dag-id",
        "fairgate_audit",
        "--from-date",
        "2026-03-02",
        "--to-date",
        "2026-03-06T04:00:00+00:00",
    )
    audit_runs = stack.wait_for_runs("fairgate_audit", 5, run_type="backfill")
    assert all(state == "success" for _, state, _ in audit_runs), stack.diagnostics()
    audits = [k for k in store.list("audits/model=adult_income/date=2026-03") if k.endswith("audit.json")]
    assert audits == [f"audits/model=adult_income/date={d}/audit.json" for d in DAYS]
    first = {k: json.loads(store.get(k)) for k in audits}

    stack.wait_for_backfills("fairgate_audit")
    stack.cli(
        "backfill",
        "create",
        "--dag-id",
        "fairgate_audit",
        "--from-date",
        "2026-03-02",
        "--to-date",
        "2026-03-06T04:00:00+00:00",
        "--reprocess-behavior",
        "completed",
    )

    def all_rerun():
        tries = stack.sql(
            "SELECT count(*) FROM task_instance ti JOIN dag_run dr ON dr.run_id = ti.run_id "
            "AND dr.dag_id = ti.dag_id WHERE ti.dag_id = 'fairgate_audit' AND ti.task_id = 'audit' "
            "AND dr.run_type = 'backfill' AND ti.state = 'success' AND ti.try_number >= 2"
        )
        return tries[0][0] >= 5

    stack.wait(all_rerun, 600, "the reprocessed audits")
    audits_again = [k for k in store.list("audits/model=adult_income/date=2026-03") if k.endswith("audit.json")]
    assert audits_again == audits
    for key in audits:
        again = json.loads(store.get(key))
        assert again["fairness"] == first[key]["fairness"] and again["status"] == first[key]["status"]
    # No retraining was requested by a backfill, whatever the audits said.
    assert stack.sql("SELECT count(*) FROM asset_event WHERE source_run_id LIKE 'backfill%%'")[0][0] == 0


def test_enough_served_decisions_start_an_audit_through_the_asset(stack):
    """Decisions served today (logged as `fairgate serve` logs them), then `fairgate_ingest`: below
    `audit.min_new_decisions` it starts nothing; at it, the scheduler starts `fairgate_audit` from the asset,
    and that run audits today's window with the served decisions counted as the online channel."""
    from datetime import UTC, datetime

    from fairgate.data.simulation import day_batch
    from fairgate.governance import registry
    from fairgate.integrations import serving
    from fairgate.monitoring.served_log import DecisionLogger
    from fairgate.policy.loader import load_policy

    store = LocalStore(stack.env["FAIRGATE_ARTIFACT_ROOT"])
    policy = load_policy(stack.env["FAIRGATE_POLICY"])
    version = registry.production_version(store, "adult_income")
    folder = serving.write_bundle(store, policy, version, stack.root / "bundle")
    served = serving.load({p.name: str(p) for p in folder.iterdir()}, version=version)
    logger = DecisionLogger.for_policy(policy, store)
    today = datetime.now(UTC).date()
    records = day_batch(today, policy, scenario="stable", rows=200)
    for col, bounds in policy.quality.ranges.items():
        records[col] = records[col].clip(bounds.min, bounds.max)

    def serve(rows):
        decided = serving.decide(served, rows)
        assert logger.log(decided.log, decided.day)

    def asset_runs():
        return stack.runs("fairgate_audit", run_type="asset_triggered")

    serve(records.iloc[:30])
    stack.cli("dags", "trigger", "fairgate_ingest")
    ingests = stack.wait_for_runs("fairgate_ingest", 1, run_type="manual")
    assert ingests[0][1] == "success", stack.diagnostics()
    assert asset_runs() == []  # 30 < 60: the asset was not updated
    serve(records.iloc[30:60])
    stack.cli("dags", "trigger", "fairgate_ingest")
    ingests = stack.wait_for_runs("fairgate_ingest", 2, run_type="manual")
    assert all(state == "success" for _, state, _ in ingests), stack.diagnostics()
    stack.wait(lambda: any(state == "success" for _, state, _ in asset_runs()), 300, "the asset-triggered audit")
    audit = json.loads(store.get(f"audits/model=adult_income/date={today}/audit.json"))
    assert audit["channels"]["online"] == 60 and audit["rows"] >= 60
    assert (
        stack.sql(
            "SELECT count(*) FROM asset_event ae JOIN asset a ON a.id = ae.asset_id "
            "WHERE a.name = 'fairgate_served_decisions'"
        )[0][0]
        == 1
    )
