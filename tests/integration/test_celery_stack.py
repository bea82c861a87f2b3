"""Fairgate on the production topology, started natively: PostgreSQL metadata DB, Redis broker,
CeleryExecutor with a Celery worker process, scheduler, dag-processor and api-server as separate
processes, and S3 (moto server on loopback) as the only artifact store — no SQLite, no local
artifact root, no ``dag.test()``. Driven through the REST API and the CLI only.
"""

from __future__ import annotations

import json
import time

import pytest
from tests.support.policies import LOOSE, default_policy_dict
from tests.support.stack import AirflowStack, require_postgres, require_redis

from fairgate.governance import evidence, registry
from fairgate.storage.s3 import S3Store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory, s3_endpoint):
    require_postgres()
    require_redis()
    import boto3

    root = tmp_path_factory.mktemp("celery")
    bucket = "fairgate-celery"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=bucket)
    raw = default_policy_dict()
    raw["fairness"]["thresholds"] = LOOSE
    (root / "policy.yaml").write_text(json.dumps(raw))
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {
            "region_name": "us-east-1",
            "endpoint_url": s3_endpoint,
            "config_kwargs": {"s3": {"addressing_style": "path"}, "retries": {"mode": "standard", "max_attempts": 5}},
        },
    }
    stack = AirflowStack(
        root,
        {
            "FAIRGATE_POLICY": str(root / "policy.yaml"),
            "FAIRGATE_ARTIFACT_ROOT": f"s3://{bucket}/fairgate",
            "FAIRGATE_AWS_CONN_ID": "fairgate_s3",
            "AIRFLOW_CONN_FAIRGATE_S3": json.dumps(conn),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        executor="CeleryExecutor",
    )
    try:
        yield (
            stack.start(),
            S3Store(
                f"s3://{bucket}/fairgate",
                client=boto3.client(
                    "s3",
                    endpoint_url=s3_endpoint,
                    region_name="us-east-1",
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",
                ),
            ),
        )
    finally:
        stack.stop()


def trigger(stack, conf=None) -> str:
    body = {"logical_date": None, "conf": conf or {}}
    return stack.api("POST", "/dags/fairgate_lifecycle/dagRuns", json=body)["dag_run_id"]


def wait_state(stack, run_id: str, timeout: float = 900) -> str:
    def finished():
        return stack.api("GET", f"/dags/fairgate_lifecycle/dagRuns/{run_id}")["state"] in ("success", "failed")

    stack.wait(finished, timeout, f"run {run_id} to finish")
    return stack.api("GET", f"/dags/fairgate_lifecycle/dagRuns/{run_id}")["state"]


def task_rows(stack, run_id: str):
    return stack.sql(
        "SELECT task_id, state, hostname, external_executor_id, try_number, map_index "
        "FROM task_instance WHERE dag_id = 'fairgate_lifecycle' AND run_id = %s ORDER BY task_id, "
        "map_index",
        run_id,
    )


def test_lifecycle_runs_on_celery_workers_with_s3_artifacts(celery_stack):
    stack, store = celery_stack
    stack.wait_for_dags("fairgate_lifecycle")
    started = time.monotonic()
    run_id = trigger(stack)
    assert wait_state(stack, run_id) == "success", stack.diagnostics()
    elapsed = time.monotonic() - started

    rec = evidence.find(store, "adult_income", run_id)["record"]
    assert rec["decision"] == "deployed"
    assert registry.production_version(store, "adult_income") == rec["model"]["sha256"]
    assert rec["data"]["uri"].startswith("s3://fairgate-celery/fairgate/")

    ran = [r for r in task_rows(stack, run_id) if r[1] == "success"]
    assert {r[0] for r in ran} >= {
        "collect_data",
        "validate_data",
        "check_bias",
        "plan_search",
        "fit_candidate",
        "select_candidate",
        "fairness_gate",
        "deploy_model",
        "record_evidence",
    }
    assert sorted(r[5] for r in ran if r[0] == "fit_candidate") == [0, 1]  # none and reweighing, mapped
    for task_id, _, hostname, celery_id, _, _ in ran:
        assert hostname.startswith("celery-worker-"), (task_id, hostname)
        assert celery_id, f"{task_id} has no Celery task id"
    # Per-task cost on Celery: each task is a fresh process, so wall time = fixed cost (process
    # start, imports, XCom and API round trips) + the stage's own compute.
    timings = stack.sql(
        "SELECT task_id, map_index, start_date, end_date FROM task_instance WHERE dag_id = "
        "'fairgate_lifecycle' AND run_id = %s AND state = 'success' ORDER BY start_date",
        run_id,
    )
    print(f"\nlifecycle on Celery: {elapsed:.0f} s wall")
    previous_end = None
    for task_id, map_index, start, end in timings:
        summary = stack.api(
            "GET",
            f"/dags/fairgate_lifecycle/dagRuns/{run_id}/taskInstances/{task_id}"
            f"/xcomEntries/return_value?map_index={map_index}",
        )["value"]
        wall = (end - start).total_seconds()
        if isinstance(summary, list):  # the search plan: what the candidate task is mapped over
            previous_end = end
            continue
        compute = summary["compute_s"]
        gap = (start - previous_end).total_seconds() if previous_end else 0.0
        previous_end = end
        print(
            f"  {task_id:16s} wall {wall:5.2f} s  compute {compute:5.2f} s  fixed {wall - compute:5.2f} s  "
            f"wait since previous task {gap:5.2f} s"
        )
        assert 0 <= compute <= wall and wall - compute < 5.0, task_id


def test_review_answered_through_the_rest_api(celery_stack):
    stack, store = celery_stack
    stack.wait_for_dags("fairgate_lifecycle")
    # A DI floor inside the sex DI's interval ([0.51, 0.66] on this data) makes the gate ask.
    run_id = trigger(
        stack,
        {"threshold_overrides": {"disparate_impact_min": 0.57}, "override_rationale": "to make the gate ask"},
    )

    def waiting():
        ti = stack.api("GET", f"/dags/fairgate_lifecycle/dagRuns/{run_id}/taskInstances/human_review")
        return ti["state"] == "awaiting_input"

    stack.wait(waiting, 900, "the review request")
    detail = stack.api("GET", f"/dags/fairgate_lifecycle/dagRuns/{run_id}/taskInstances/human_review/-1/hitlDetails")
    assert "Why it needs review" in detail["body"] and "straddles" in detail["body"]
    # A person reads the request before answering: an answer within a second of the task's deferral
    # races Airflow's executor, which then loses it and asks again (seen on this stack).
    time.sleep(5)
    stack.api(
        "PATCH",
        f"/dags/fairgate_lifecycle/dagRuns/{run_id}/taskInstances/human_review/-1/hitlDetails",
        json={"chosen_options": ["Reject"], "params_input": {"rationale": "Interval too wide for women."}},
    )
    assert wait_state(stack, run_id) == "success", stack.diagnostics()
    rec = evidence.find(store, "adult_income", run_id)["record"]
    assert rec["gate"]["outcome"] == "review" and rec["decision"] == "rejected"
    assert rec["review"]["rationale"] == "Interval too wide for women."


def test_worker_killed_mid_run_the_task_is_retried_elsewhere(celery_stack):
    stack, store = celery_stack
    stack.wait_for_dags("fairgate_lifecycle")
    run_id = trigger(stack)

    def running():
        return stack.sql(
            "SELECT task_id, map_index FROM task_instance WHERE dag_id = 'fairgate_lifecycle' AND "
            "run_id = %s AND state = 'running'",
            run_id,
        )

    # Stages take a second or two, so the worker is killed the moment one is seen running. Those
    # still 'running' right after the kill are the ones killed (their process is gone; the
    # scheduler notices only after the heartbeat timeout); if the one seen had just finished, again.
    killed, deadline = [], time.monotonic() + 900
    while not killed:
        assert time.monotonic() < deadline, f"no task of {run_id} was seen running:\n{stack.diagnostics()}"
        if not running():
            time.sleep(0.1)
            continue
        for name in [n for n in stack.procs if n.startswith("celery-worker-")]:
            stack.kill(name)  # SIGKILL the whole worker, task process included
        killed = running()
        replacement = stack.start_worker()
    assert wait_state(stack, run_id, timeout=1200) == "success", stack.diagnostics()

    rows = {(r[0], r[5]): r for r in task_rows(stack, run_id)}
    for task in killed:
        assert rows[task][4] >= 2, f"{task} was killed mid-run and should have been retried"
        assert rows[task][2] == replacement
    mine = [e["record"] for e in evidence.entries(store, "adult_income") if e["record"].get("run_id") == run_id]
    # one deployment record and one lifecycle record, however many tries the killed tasks took
    assert [r["kind"] for r in mine] == ["deployment", "lifecycle"] and mine[1]["decision"] == "deployed"
    rec = mine[1]
    from fairgate.storage.base import sha256_bytes

    assert sha256_bytes(store.get(store.key_of(rec["model"]["uri"]))) == rec["model"]["sha256"]
    assert evidence.verify(store, "adult_income").ok


def test_week_of_scoring_and_audit_backfills_on_celery(celery_stack):
    stack, store = celery_stack
    stack.wait_for_dags("fairgate_score", "fairgate_audit")
    week = [f"2026-03-0{d}" for d in range(1, 8)]
    # Runs fire the morning after the day they cover: these cover 1-7 March.
    stack.cli(
        "backfill",
        "create",
        "--dag-id",
        "fairgate_score",
        "--from-date",
        "2026-03-02",
        "--to-date",
        "2026-03-08T02:00:00+00:00",
    )
    scored = stack.wait_for_runs("fairgate_score", 7, run_type="backfill", timeout=900)
    assert [s for _, s, _ in scored] == ["success"] * 7, stack.diagnostics()
    stack.wait_for_backfills("fairgate_score")
    stack.cli(
        "backfill",
        "create",
        "--dag-id",
        "fairgate_audit",
        "--from-date",
        "2026-03-02",
        "--to-date",
        "2026-03-08T04:00:00+00:00",
    )
    audited = stack.wait_for_runs("fairgate_audit", 7, run_type="backfill", timeout=900)
    assert [s for _, s, _ in audited] == ["success"] * 7, stack.diagnostics()
    assert store.list("predictions/model=adult_income/date=2026-03") == [
        f"predictions/model=adult_income/date={d}/part.parquet" for d in week
    ]
    audits = [k for k in store.list("audits/model=adult_income/date=2026-03") if k.endswith("audit.json")]
    assert audits == [f"audits/model=adult_income/date={d}/audit.json" for d in week]
    # (EmptyOperator branch markers never reach a worker, so only the working tasks are checked.)
    hosts = stack.sql(
        "SELECT DISTINCT hostname FROM task_instance WHERE dag_id IN ('fairgate_score', "
        "'fairgate_audit') AND task_id IN ('score', 'audit') AND state = 'success'"
    )
    assert all(h.startswith("celery-worker-") for (h,) in hosts), hosts
