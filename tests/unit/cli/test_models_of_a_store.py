"""One model, one DAG id; and the CLI knows every model that has evidence in the store.

A policy that is not the bundled one gets its model's own DAG ids even when it is the only one
(``FAIRGATE_POLICY``), so its runs never join the bundled model's history; a model whose
evidence is in the store but whose policy file the deployment does not list is still found,
through the policy file its latest lifecycle run kept in the store (checked against the record).
"""

from __future__ import annotations

import json

import pytest
from tests.support.policies import synthetic_credit_policy

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


def test_with_no_policies_named_the_cli_serves_the_models_of_the_store(tmp_path, monkeypatch, capsys):
    """Before: with the policy folder given to from_policies("/path") and nothing in the shell, `status` said
    the bundled Adult model had nothing deployed and `models` said "No versions.", while two models with
    evidence sat in the store. Now the store says which models there are; a store restored elsewhere too."""
    import shutil

    store = LocalStore(tmp_path / "store")
    for name, seed in (("credit", 2), ("loans", 3)):
        folder = tmp_path / name
        folder.mkdir()
        path, _ = synthetic_credit_policy(folder, 1500, seed=seed)
        text = path.read_text().replace("model_name: credit", f"model_name: {name}")
        path.write_text(text)
        run = RunInfo(dag_id=f"fairgate_lifecycle__{name}", run_id="r1")
        assert lifecycle.run_in_process(store, load_policy(path), run).decision == "deployed"
    restored = tmp_path / "restored"
    shutil.copytree(store.root, restored)  # a store restored under another path
    for var in ("FAIRGATE_POLICIES", "FAIRGATE_POLICY", "FAIRGATE_ARTIFACT_ROOT", "FAIRGATE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    capsys.readouterr()
    root = ["--artifact-root", str(restored)]
    assert main([*root, "status", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["models"]
    assert [m["model"] for m in shown] == ["credit", "loans"]
    assert all(m["production"]["approved_by"]["how"] == "deployed (gate pass)" for m in shown)
    assert main([*root, "--model", "loans", "models"]) == 0
    assert "gate=pass" in capsys.readouterr().out
    assert main([*root, "models"]) == 1
    assert "holds 2 models; choose one with --model: ['credit', 'loans']" in capsys.readouterr().err
    # the deployment's file names the store: no flag, no variable
    (tmp_path / "airflow").mkdir()
    (tmp_path / "airflow" / "fairgate.yaml").write_text(f"artifact_root: {restored}\n")
    assert main(["--model", "credit", "status"]) == 0
    assert "approved: deployed (gate pass)" in capsys.readouterr().out


def test_the_configuration_file_is_read_after_the_variables_and_refused_by_name(tmp_path, monkeypatch):
    from fairgate import configuration
    from fairgate.errors import CatalogError

    for var in ("FAIRGATE_POLICIES", "FAIRGATE_ARTIFACT_ROOT", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    config = tmp_path / "fairgate.yaml"
    monkeypatch.setenv("FAIRGATE_CONFIG", str(config))
    config.write_text("policies: /opt/policies\nmlflow_tracking_uri: http://mlflow:5000\n")
    assert configuration.value("policies") == "/opt/policies"
    assert configuration.value("artifact_root") is None
    monkeypatch.setenv("FAIRGATE_POLICIES", "/elsewhere")  # the variable wins
    assert configuration.value("policies") == "/elsewhere"
    config.write_text("policy: /opt/policies\n")
    with pytest.raises(CatalogError, match=r"unknown key\(s\) \['policy'\]"):
        configuration.value("artifact_root")
