"""One model, one DAG id; and the CLI knows every model that has evidence in the store.

A policy that is not the bundled one gets its model's own DAG ids even when it is the only one
(``FAIRGATE_POLICY``), so its runs never join the bundled model's history; a model whose
evidence is in the store but whose policy file the deployment does not list is still found,
through the policy file its latest lifecycle run kept in the store (checked against the record).
"""

from __future__ import annotations

import json

import pytest
from tests.conftest import synthetic_credit_policy

from fairgate.cli.main import main
from fairgate.policy import catalog
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore

pytestmark = pytest.mark.lifecycle


def test_a_single_policy_of_another_model_gets_that_models_dag_ids(tmp_path, monkeypatch):
    monkeypatch.delenv("FAIRGATE_POLICIES", raising=False)
    monkeypatch.delenv("FAIRGATE_POLICY", raising=False)
    assert [e.dag_id("fairgate_lifecycle") for e in catalog.entries()] == ["fairgate_lifecycle"]
    (tmp_path / "credit.yaml").write_text("model_name: credit\n")
    monkeypatch.setenv("FAIRGATE_POLICY", str(tmp_path / "credit.yaml"))
    assert [e.dag_id("fairgate_lifecycle") for e in catalog.entries()] == ["fairgate_lifecycle__credit"]


def test_the_cli_finds_a_model_by_its_evidence_and_kept_policy(tmp_path, monkeypatch, capsys):
    path, _ = synthetic_credit_policy(tmp_path, 1500, seed=2)
    store = LocalStore(tmp_path / "store")
    done = lifecycle.run_in_process(store, load_policy(path), RunInfo(dag_id="fairgate_lifecycle__credit", run_id="r1"))
    capsys.readouterr()
    monkeypatch.delenv("FAIRGATE_POLICIES", raising=False)
    monkeypatch.delenv("FAIRGATE_POLICY", raising=False)  # this shell's catalog: the bundled model only
    root = ["--artifact-root", str(store.root)]
    assert main([*root, "--model", "credit", "evidence", "latest", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["model_name"], shown["run_id"], shown["decision"]) == ("credit", "r1", done.decision)
    assert main([*root, "--model", "credit", "verify-log"]) == 0
    assert "Evidence log intact" in capsys.readouterr().out

    assert main([*root, "--model", "nope", "status"]) == 1
    err = capsys.readouterr().err
    assert "No model 'nope'" in err and f"Models with evidence in {store.root_uri}: ['credit']" in err

    kept = store.key_of(shown["policy"]["uri"])
    store.put(kept, store.get(kept) + b"\n# edited after the run\n")
    assert main([*root, "--model", "credit", "status"]) == 1
    assert "is not the one its lifecycle record names" in capsys.readouterr().err
