"""The MLflow mapping (names, params, group rates), the request checks of the served model, and a
whole round trip on the embedded store: lifecycle → MLflow run and version → pyfunc loaded back."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from tests.support.policies import synthetic_credit_policy

from fairgate.governance import registry
from fairgate.integrations import serving, tracking
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.roots import open_store

pytestmark = pytest.mark.lifecycle  # every test reads a lifecycle's records (module fixtures)


def test_names_keep_only_what_mlflow_accepts_with_slashes_between_parts():
    assert tracking.name("fairness", "race×sex", "disparate_impact") == "fairness/race_sex/disparate_impact"
    assert tracking.name("group", "age>=25", "privileged", "rows") == "group/age__25/privileged/rows"


def test_the_policy_becomes_dotted_params_with_long_values_cut_to_mlflows_limit():
    params = tracking.params_of(
        {
            "fairness": {"thresholds": {"di": {"min": 0.8}}, "metrics": ["a", "b"]},
            "model_name": "m",
            "empty": {},
            "long": "x" * 7000,
        }
    )
    assert params["fairness.thresholds.di.min"] == "0.8"
    assert params["fairness.metrics"] == '["a", "b"]'
    assert params["model_name"] == "m" and params["empty"] == "{}"
    assert len(params["long"]) == tracking.MAX_PARAM and params["long"].endswith("…")


def test_group_rates_come_from_the_counts_and_missing_figures_are_left_out():
    fairness = {
        "sex": {
            "disparate_impact": {"value": 0.5, "ci_low": 0.3, "ci_high": None},
            "equal_opportunity_difference": {"value": math.nan, "ci_low": None, "ci_high": None},
            "counts": {
                "privileged": {"n": 10, "selected": 6, "tp": 5, "fn": 1, "fp": 1, "tn": 3, "positives": 6},
                "unprivileged": {"n": 4, "selected": 1, "tp": 0, "fn": 0, "fp": 1, "tn": 3, "positives": 0},
            },
        }
    }
    got = tracking.fairness_metrics(fairness)
    assert got == {
        "fairness/sex/disparate_impact": 0.5,
        "fairness/sex/disparate_impact/ci_low": 0.3,
        "group/sex/privileged/rows": 10.0,
        "group/sex/privileged/selection_rate": 0.6,
        "group/sex/privileged/true_positive_rate": 5 / 6,
        "group/sex/privileged/false_positive_rate": 0.25,
        "group/sex/unprivileged/rows": 4.0,
        "group/sex/unprivileged/selection_rate": 0.25,
        "group/sex/unprivileged/false_positive_rate": 0.25,  # no positives: no TPR, rather than a made-up 0
    }


def test_the_tracking_uri_is_the_connection_then_the_variable_then_a_store_beside_the_artifacts(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert tracking.tracking_uri("http://conn:5000") == "http://conn:5000"
    assert tracking.tracking_uri() == "http://mlflow:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path}/.mlflow/mlflow.db"


def _served(**spec) -> serving.Served:
    inputs = {"required": ["age", "job"], "numeric": ["age"], "categories": {"job": ["clerk", "nurse"]}, **spec}
    return serving.Served(model=None, policy=None, version="v", reference={}, inputs=inputs, recourse={})


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (pd.DataFrame(), "holds no records"),
        (pd.DataFrame({"age": [30]}), "['job']"),
        (pd.DataFrame({"age": [30, "old"], "job": ["clerk", "nurse"]}), "'age' must be a number; record 1 has 'old'"),
        (pd.DataFrame({"age": [30, None], "job": ["clerk", "nurse"]}), "'age' must be a number; record 1 has no value"),
        (pd.DataFrame({"age": [30], "job": ["pilot"]}), "'job' has the value 'pilot' in record 0"),
        (pd.DataFrame({"age": [30], "job": [None]}), "'job' has the value None in record 0"),
        (pd.DataFrame({"age": [30, True], "job": ["clerk", "nurse"]}), "'age' must be a number; record 1 has True"),
        (pd.DataFrame({"age": [30, float("inf")], "job": ["clerk"] * 2}), "'age' must be a finite number; record 1"),
        (pd.DataFrame({"age": [-float("inf")], "job": ["clerk"]}), "'age' must be a finite number; record 0 has -inf"),
        (pd.DataFrame({"age": [30] * 10_001, "job": ["clerk"] * 10_001}), "holds 10,001 records; send at most 10,000"),
    ],
)
def test_requests_the_model_cannot_answer_are_refused_naming_the_column(records, message):
    with pytest.raises(serving.RequestError) as err:
        serving.check_request(records, _served())
    assert message in str(err.value)


def test_a_number_outside_the_policys_range_is_refused_naming_it():
    from tests.support.policies import default_policy_dict

    from fairgate.policy.loader import parse_policy

    raw = default_policy_dict()
    raw["quality"]["ranges"] = {"age": {"min": 17, "max": 90}}
    served = serving.Served(
        model=None,
        policy=parse_policy(raw),
        version="v",
        reference={},
        inputs={"required": ["age"], "numeric": ["age"], "categories": {}},
        recourse={},
    )
    ids = {"row_id": ["r1", "r2"], "sex": ["Male", "Female"], "race": ["White", "Black"]}
    assert serving.check_request(pd.DataFrame({**ids, "age": [17, 90]}), served)["age"].tolist() == [17, 90]
    with pytest.raises(serving.RequestError, match=r"'age' is 1e\+308 in record 1, outside the policy's range"):
        serving.check_request(pd.DataFrame({**ids, "age": [30, 1e308]}), served)
    with pytest.raises(serving.RequestError, match=r"'age' is 16.0 in record 0"):
        serving.check_request(
            pd.DataFrame({"row_id": ["r1"], "sex": ["Male"], "race": ["White"], "age": [16.0]}), served
        )
    with pytest.raises(serving.RequestError, match=r"needs its row key 'row_id'"):
        serving.check_request(pd.DataFrame({"age": [30]}), served)


def test_numbers_sent_as_text_are_read_as_numbers():
    checked = serving.check_request(pd.DataFrame({"age": ["30"], "job": ["nurse"]}), _served())
    assert checked["age"].tolist() == [30]


def test_the_input_spec_lists_each_categorys_training_values_the_row_key_and_the_groups(tmp_path):
    _, data = synthetic_credit_policy(tmp_path, 400, seed=1)
    policy = load_policy(tmp_path / "credit.yaml")
    spec = serving.input_spec(data, policy)
    assert spec["categories"]["savings_band"] == sorted(data["savings_band"].unique())
    assert set(spec["numeric"]) == set(policy.numeric) & set(policy.features)
    # every served decision is logged: by its row key, with the protected columns the audit groups by
    assert spec["required"] == ["application_id", *policy.features, "gender"]
    assert spec["ranges"]["income"] == [data["income"].min(), data["income"].max()]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embedded")
    path, data = synthetic_credit_policy(folder, 2000, seed=5)
    store = open_store(str(folder / "store"))
    policy = load_policy(path)
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r1")).decision == "deployed"
    uri = f"sqlite:///{folder}/.mlflow/mlflow.db"
    (folder / ".mlflow").mkdir()
    out = tracking.track(store, policy, uri=uri, run_id="r1")
    assert out.logged and out.alias == "1"
    return {"store": store, "policy": policy, "data": data, "uri": uri, "folder": folder}


def test_the_registered_pyfunc_loads_back_and_decides_like_the_registry_model(embedded, monkeypatch):
    import mlflow

    from fairgate.models import training

    monkeypatch.setenv("MLFLOW_TRACKING_URI", embedded["uri"])
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(embedded["store"].root))  # the evidence it checks at load
    served = mlflow.pyfunc.load_model("models:/credit@production")
    rows = embedded["data"].head(25)
    got = served.predict(rows)
    version = registry.production_version(embedded["store"], "credit")
    scores, decisions = training.predict(
        registry.load_model(embedded["store"], "credit", version), rows, embedded["policy"]
    )
    assert got["decision"].tolist() == decisions.tolist()
    assert got["score"].to_numpy() == pytest.approx(scores)
    assert got["reason_1"].notna().all()
    with pytest.raises(mlflow.exceptions.MlflowException, match="'income' must be a number"):
        served.predict(rows.head(1).assign(income="lots"))


def test_a_changed_model_file_in_the_mlflow_artifacts_is_refused_at_load(embedded, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", embedded["uri"])
    (skops,) = Path(embedded["folder"], ".mlflow", "artifacts").rglob("model/artifacts/model.skops")
    original = skops.read_bytes()
    skops.write_bytes(original[:-3] + b"bad")
    try:
        with pytest.raises(mlflow.exceptions.MlflowException, match="Fairgate refused to load this model.*sha256"):
            mlflow.pyfunc.load_model("models:/credit@production")
    finally:
        skops.write_bytes(original)


def test_a_logged_run_adds_nothing_to_the_evidence_and_mlflow_agrees(embedded):
    from fairgate.governance import evidence

    assert evidence.recent(embedded["store"], "credit", "tracking") == []
    assert [e["record"]["kind"] for e in evidence.entries(embedded["store"], "credit")] == [
        "deployment",
        "lifecycle",
    ]  # no tracking record
    assert tracking.disagreements(embedded["store"], "credit", mlflow=tracking.client(embedded["uri"])) == []


def test_an_audits_label_free_estimates_and_their_errors_become_metrics():
    result = {
        "status": "healthy",
        "rows": 10,
        "estimated_performance": {
            "sex": {
                "privileged": {
                    "estimated": {"true_positive_rate": 0.7, "false_positive_rate": None, "accuracy": 0.8},
                    "error": {"true_positive_rate": -0.02, "false_positive_rate": None, "accuracy": 0.01},
                }
            }
        },
    }
    got = tracking.audit_metrics(result)
    assert got["estimated/sex/privileged/true_positive_rate"] == 0.7
    assert got["estimation_error/sex/privileged/accuracy"] == 0.01
    assert "estimated/sex/privileged/false_positive_rate" not in got and got["rows"] == 10.0
