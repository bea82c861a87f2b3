"""Shared fixtures; their helpers are in tests/support. Airflow is pointed at a throw-away home when the
run is configured, before any test module (and so Airflow) is imported."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from tests.support.dags import DAG_ID, run_dag
from tests.support.policies import DELETE, LOOSE, default_policy_dict


def pytest_configure(config):
    from fairgate_dev.local import configure

    home = Path(tempfile.mkdtemp(prefix="fairgate-airflow-"))
    configure(home / "home", home / "artifacts")


@pytest.fixture
def write_policy(tmp_path, monkeypatch):
    """Write a policy (the default with ``changes`` applied) and make it the one in force."""

    def _write(changes: dict | None = None, name: str = "policy.yaml") -> Path:
        raw = default_policy_dict()
        for dotted, value in (changes or {}).items():
            node = raw
            *parents, leaf = dotted.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            if value is DELETE:
                node.pop(leaf, None)
            else:
                node[leaf] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        monkeypatch.setenv("FAIRGATE_POLICY", str(path))
        return path

    return _write


@pytest.fixture
def delete():
    return DELETE


@pytest.fixture
def store(tmp_path, monkeypatch):
    from fairgate.storage.local import LocalStore

    root = tmp_path / "artifacts"
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(root))
    return LocalStore(root)


@pytest.fixture(scope="session")
def adult():
    from fairgate.data.adult import read_adult

    return read_adult("data")


@pytest.fixture(scope="session")
def lifecycle_dag():
    """The lifecycle DAG as the DAGs folder defines it, on a migrated metadata DB: one for the session."""
    from fairgate_dev.local import init_db, load_dag

    init_db()
    return load_dag(DAG_ID)


@pytest.fixture(scope="session")
def deployed(lifecycle_dag, tmp_path_factory):
    """A store in which a run has deployed a model under loose thresholds: one for every test that only reads it."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("deployed") / "artifacts"
    policy_path = root.parent / "policy.yaml"
    raw = default_policy_dict()
    raw["fairness"]["thresholds"] = LOOSE
    policy_path.write_text(json.dumps(raw))
    mp.setenv("FAIRGATE_ARTIFACT_ROOT", str(root))
    mp.setenv("FAIRGATE_POLICY", str(policy_path))
    dr = run_dag(lifecycle_dag)
    mp.undo()
    return root, policy_path, dr


def pytest_report_header(config):
    return f"AIRFLOW_HOME={os.environ['AIRFLOW_HOME']}"
