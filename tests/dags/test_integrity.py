"""DAG integrity: every DAG file imports cleanly, quickly, without heavy modules or DB access."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.dags import DAG_BASES

from fairgate_dev.local import REPO

DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = [
    "pandas",
    "numpy",
    "sklearn",
    "aif360",
    "great_expectations",
    "boto3",
    "pyarrow",
    "skops",
    "fairgate",
    "matplotlib",
]
# The model catalog reads each policy's name and schedule (PyYAML; pydantic, which Airflow imports anyway,
# for the schedule's defaults): the only Fairgate modules a DAG file may load.
PARSE_TIME_FAIRGATE = {
    "fairgate",
    "fairgate.policy",
    "fairgate.policy.catalog",
    "fairgate.policy.schema",
    "fairgate.policy.rules",
    "fairgate.policy.reading",
    "fairgate.policy.people",  # name normalisation (stdlib only)
    "fairgate.configuration",  # where the policies folder is (an environment variable or fairgate.yaml)
    "fairgate.policy.bundled",  # the bundled policy's column names (no imports)
    "fairgate.errors",
    "fairgate.config",
}

PROBE = r"""
import json, sys, time, runpy
import airflow.sdk  # what every DAG file needs anyway; not counted against the file
from airflow.models.variable import Variable
from airflow.sdk import BaseHook
calls = []
def _trap(name):
    def fail(*a, **k):
        calls.append(name)
        raise RuntimeError(name + " at parse time")
    return fail
Variable.get = _trap("Variable.get")
BaseHook.get_connection = classmethod(_trap("get_connection"))
before = set(sys.modules)
t = time.perf_counter()
runpy.run_path(sys.argv[1], run_name="dagfile")
elapsed = time.perf_counter() - t
print(json.dumps({"elapsed": elapsed, "new": sorted(set(sys.modules) - before), "calls": calls}))
"""


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_is_light(path: Path):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
        check=True,
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    new = set(probe["new"]) - PARSE_TIME_FAIRGATE
    top_level = {m.split(".")[0] for m in new}
    assert not (top_level & set(HEAVY)), f"heavy modules imported at parse time: {top_level & set(HEAVY)}"
    assert probe["calls"] == []
    assert probe["elapsed"] < 2.0, f"{path.name} took {probe['elapsed']:.2f} s to parse"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "fairgate_lifecycle" in dagbag.dags


# Tasks that must not retry: a person's answer, and the stop that records a failed quality gate.
NO_RETRIES = {
    ("fairgate_lifecycle", "human_review"),
    ("fairgate_lifecycle", "quality_failed"),
    ("fairgate_lifecycle", "record_failure"),  # records a failure once; a retry would record nothing new
    ("fairgate_contest", "decide_contest"),
    ("fairgate_score", "review_decision"),
    ("fairgate_ingest", "review_decision"),
}


def test_every_dag_is_documented_tagged_and_retried(dagbag):
    from datetime import timedelta

    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        assert "fairgate" in dag.tags, dag_id
        assert dag.catchup is False, dag_id  # backfills are explicit (airflow backfill create), never implied
        for task in dag.tasks:
            expected = 0 if (dag_id, task.task_id) in NO_RETRIES else 2
            assert task.retries == expected, f"{dag_id}.{task.task_id}: {task.retries} retries"
            if expected:
                assert timedelta(seconds=30) <= task.retry_delay <= timedelta(minutes=5), f"{dag_id}.{task.task_id}"
            assert task.owner == "fairgate"


def test_every_dag_triggers_with_its_form_as_opened(dagbag):
    """The Trigger form disables its button while a param of type string holds "" (it reads as not given):
    before, the lifecycle's `override_rationale` kept Trigger disabled until something was typed, even with
    no override. Every param of a DAG that also runs on its own (scheduled) must hold a default that satisfies
    its schema, and an empty one must allow null; a manual-only DAG (contest, rollback) may require input."""
    import jsonschema

    scheduled = {d: dag for d, dag in dagbag.dags.items() if dag.schedule is not None}
    assert any(d.startswith("fairgate_lifecycle") for d in scheduled)
    for dag_id, dag in scheduled.items():
        for name, param in dag.params.items():
            schema, default = param.schema, param.value
            jsonschema.validate(default, schema)  # the form as opened is valid
            types = schema.get("type")
            if default in ("", None):
                assert "null" in (types if isinstance(types, list) else [types]), (dag_id, name, schema)


def test_lifecycle_shape(dagbag):
    dag = dagbag.dags["fairgate_lifecycle"]
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == {
        ("collect_data", "validate_data"),
        ("validate_data", "quality_failed"),
        ("validate_data", "check_bias"),
        ("check_bias", "plan_search"),
        ("check_bias", "train_model"),
        ("plan_search", "fit_candidate"),
        ("plan_search", "select_candidate"),
        ("fit_candidate", "select_candidate"),
        ("select_candidate", "fairness_gate"),
        ("train_model", "fairness_gate"),
        ("fairness_gate", "deploy_model"),
        ("fairness_gate", "reject_model"),
        ("fairness_gate", "human_review"),
        ("human_review", "deploy_model"),
        ("human_review", "reject_model"),
        ("deploy_model", "record_evidence"),
        ("reject_model", "record_evidence"),
        ("record_evidence", "track_mlflow"),
        # the failure record: kept ready by the quality gate's pass route, after every stage no branch skips
        ("validate_data", "record_failure"),
        *{(t, "record_failure") for t in ("plan_search", "fit_candidate", "select_candidate", "train_model")},
        *{(t, "record_failure") for t in ("deploy_model", "reject_model", "record_evidence")},
    }
    assert dag.get_task("record_failure").trigger_rule == "one_failed"
    joins = {"fairness_gate", "deploy_model", "reject_model", "record_evidence"}
    for task_id in joins:
        assert dag.get_task(task_id).trigger_rule == "none_failed_min_one_success", task_id
    assert dag.get_task("deploy_model").pool == "fairgate_promotion"


def test_renaming_any_lifecycle_task_still_works_or_fails_at_parse_time(dagbag, tmp_path):
    """Each variant renames one task's task_id in the DAG file and nothing else.

    Data flows through XComArgs, so a rename keeps every edge; a rename of a branch target that
    a ``routes=`` mapping still names is refused at parse time, not silently skipped at run time.
    """
    import re

    from airflow.dag_processing.dagbag import DagBag

    # the lifecycle's builder module, made a DAG file of its own by calling it for the deployment's model
    source = (REPO / "plugins" / "fairgate_airflow" / "dags" / "lifecycle.py").read_text()
    source += "\n\nfrom fairgate_airflow.models import entries\n\nfor model in entries():\n    lifecycle(model)\n"
    original = dagbag.dags["fairgate_lifecycle"]
    edges = {(t.task_id, d) for t in original.tasks for d in t.downstream_task_ids}
    for task in original.tasks:
        variant = source.replace(f'task_id="{task.task_id}"', f'task_id="{task.task_id}_renamed"')
        variant = variant.replace('dag_id=model.dag_id("fairgate_lifecycle")', f'dag_id="rename_{task.task_id}"')
        assert variant.count("_renamed") == 1
        (tmp_path / f"rename_{task.task_id}.py").write_text(variant)
    bag = DagBag(dag_folder=str(tmp_path))
    routed = {
        t
        for op in original.tasks
        for target in (getattr(op, "routes", None) or {}).values()
        for t in ([target] if isinstance(target, str) else target)
    }
    for task in original.tasks:
        dag_id = f"rename_{task.task_id}"
        if task.task_id in routed:
            error = next(e for path, e in bag.import_errors.items() if path.endswith(f"{dag_id}.py"))
            assert re.search(rf"routes to \['{task.task_id}'\], which are not directly downstream", error), error
            continue
        renamed = {tuple(f"{x}_renamed" if x == task.task_id else x for x in e) for e in edges}
        dag = bag.dags[dag_id]
        assert {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids} == renamed, dag_id
    assert len(bag.dags) + len(bag.import_errors) == len(original.tasks)


def test_a_policies_folder_gives_each_model_its_own_dags(tmp_path, monkeypatch):
    """One set of DAGs per policy file, ids suffixed by the model, every task bound to its model's policy."""
    import yaml
    from airflow.dag_processing.dagbag import DagBag
    from tests.support.policies import default_policy_dict

    for name, cron in (("adult_income", None), ("credit", "15 4 * * 2")):
        raw = default_policy_dict()
        raw["model_name"] = name
        if cron:
            raw["schedule"] = {"lifecycle": cron}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "broken.yaml").write_text("model_name: [not, a, name]")
    monkeypatch.setenv("FAIRGATE_POLICIES", str(tmp_path))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}  # the broken file stands as its own DAG, the others load
    bases = DAG_BASES
    refused = bag.dags.pop("fairgate_policy_refused__broken.yaml")
    assert sorted(bag.dags) == sorted(f"{b}__{m}" for b in bases for m in ("adult_income", "credit"))
    assert "Refused policy file broken.yaml: Policy key 'model_name'" in refused.description
    assert str(tmp_path / "broken.yaml") in refused.doc_md and refused.schedule is None
    assert [t.task_id for t in refused.tasks] == ["policy_refused"] and "policy-refused" in refused.tags
    for dag_id, dag in bag.dags.items():
        model = dag_id.split("__")[1]
        files = {
            t.partial_kwargs["policy_file"] if hasattr(t, "partial_kwargs") else t.policy_file for t in dag.tasks
        }  # a mapped task builds each instance from its partial kwargs
        assert files == {str(tmp_path / f"{model}.yaml")}, dag_id
        assert f"model:{model}" in dag.tags
    credit, adult = bag.dags["fairgate_lifecycle__credit"], bag.dags["fairgate_lifecycle__adult_income"]
    assert credit.timetable.timetable.expression == "15 4 * * 2"
    assert adult.timetable.timetable.expression == "0 3 * * 1"  # the schema's default
    # each model's audit requests retraining of that model only
    outlets = bag.dags["fairgate_audit__credit"].get_task("request_retraining").outlets
    assert [a.name for a in outlets] == ["fairgate_retraining_request__credit"]
    assert "fairgate_retraining_request__credit" in str(credit.timetable.asset_condition)
    assert "fairgate_retraining_request__credit" not in str(adult.timetable.asset_condition)


def test_two_policy_files_naming_one_model_are_refused(tmp_path, monkeypatch):
    from tests.support.policies import default_policy_dict

    from fairgate.errors import CatalogError
    from fairgate.policy.catalog import entries

    for name in ("a.yaml", "b.yaml"):
        (tmp_path / name).write_text(json.dumps(default_policy_dict()))
    monkeypatch.setenv("FAIRGATE_POLICIES", str(tmp_path))
    with pytest.raises(CatalogError, match=r"a.yaml and .*b.yaml both name model 'adult_income'"):
        entries(strict=True)


def test_the_one_call_gives_every_task_the_settings_it_was_given(tmp_path, monkeypatch):
    """``from_policies(folder, artifact_root=, aws_conn_id=, mlflow_conn_id=)`` in a team's DAG file:
    every task (mapped ones through their partial kwargs) carries them and its model's policy file."""
    import yaml
    from airflow.dag_processing.dagbag import DagBag
    from tests.support.policies import default_policy_dict

    monkeypatch.delenv("FAIRGATE_POLICIES", raising=False)
    policies, dags = tmp_path / "policies", tmp_path / "dags"
    policies.mkdir()
    dags.mkdir()
    (policies / "credit.yaml").write_text(yaml.safe_dump({**default_policy_dict(), "model_name": "credit"}))
    settings = {"artifact_root": "s3://team-bucket/fairgate", "aws_conn_id": "minio", "mlflow_conn_id": "tracking"}
    (dags / "team.py").write_text(
        "from fairgate_airflow.dags import from_policies\n\n"
        f"from_policies({str(policies)!r}, artifact_root='s3://team-bucket/fairgate', aws_conn_id='minio', "
        "mlflow_conn_id='tracking')\n"
    )
    bag = DagBag(dag_folder=str(dags))
    assert bag.import_errors == {}
    assert len(bag.dags) == 6 and all(dag_id.endswith("__credit") for dag_id in bag.dags)
    for dag in bag.dags.values():
        for task in dag.tasks:
            given = task.partial_kwargs if hasattr(task, "partial_kwargs") else vars(task)
            assert {k: given[k] for k in settings} == settings, (dag.dag_id, task.task_id)
            assert given["policy_file"] == str(policies / "credit.yaml")


def test_a_run_of_a_refused_policy_files_dag_fails_once_saying_why(tmp_path, monkeypatch):
    """The refused file's DAG, run: its one task fails without retries, with the file and the cause."""
    from fairgate_dev.local import init_db, load_dag

    (tmp_path / "bomb.yaml").write_text("a: &x [1]\nb: *x\n")
    monkeypatch.setenv("FAIRGATE_POLICIES", str(tmp_path))
    init_db()
    dag = load_dag("fairgate_policy_refused__bomb.yaml")
    assert "YAML aliases (*x) are not allowed" in dag.description
    run = dag.test()
    ti = run.get_task_instance("policy_refused")
    assert run.state == "failed" and ti.state == "failed" and ti.try_number == 1
