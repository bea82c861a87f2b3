"""DAG integrity: every DAG file imports cleanly, quickly, without heavy modules or DB access."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairgate_dev.local import REPO

DAG_FILES = sorted((REPO / "dags").glob("*.py"))
HEAVY = ["pandas", "numpy", "sklearn", "aif360", "great_expectations", "boto3", "pyarrow", "skops", "fairgate",
         "matplotlib"]

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
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=os.environ,
                         timeout=120, check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    top_level = {m.split(".")[0] for m in probe["new"]}
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
NO_RETRIES = {("fairgate_lifecycle", "human_review"), ("fairgate_lifecycle", "quality_failed")}


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


def test_lifecycle_shape(dagbag):
    dag = dagbag.dags["fairgate_lifecycle"]
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == {
        ("collect_data", "validate_data"),
        ("validate_data", "quality_failed"), ("validate_data", "check_bias"),
        ("check_bias", "reweigh"), ("check_bias", "train_model"), ("reweigh", "train_model"),
        ("train_model", "fairness_gate"),
        ("fairness_gate", "deploy_model"), ("fairness_gate", "reject_model"), ("fairness_gate", "human_review"),
        ("human_review", "deploy_model"), ("human_review", "reject_model"),
        ("deploy_model", "record_evidence"), ("reject_model", "record_evidence"),
    }
    joins = {"train_model", "deploy_model", "reject_model", "record_evidence"}
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

    source = (REPO / "dags" / "fairgate_lifecycle.py").read_text()
    original = dagbag.dags["fairgate_lifecycle"]
    edges = {(t.task_id, d) for t in original.tasks for d in t.downstream_task_ids}
    for task in original.tasks:
        variant = source.replace(f'task_id="{task.task_id}"', f'task_id="{task.task_id}_renamed"')
        variant = variant.replace('dag_id="fairgate_lifecycle"', f'dag_id="rename_{task.task_id}"')
        assert variant.count("_renamed") == 1
        (tmp_path / f"rename_{task.task_id}.py").write_text(variant)
    bag = DagBag(dag_folder=str(tmp_path))
    routed = {t for op in original.tasks for target in (getattr(op, "routes", None) or {}).values()
              for t in ([target] if isinstance(target, str) else target)}
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
