"""Every branch of every branching operator, through ``choose_branch`` with a small fake context.

The operators run their real domain functions on real data in a temporary artifact store;
only Airflow's task context is faked (XCom as a dict).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException
from tests.support.operators import FakeTI, context, run

from fairgate_airflow.operators import (
    SUMMARY,
    CheckBiasOperator,
    CollectDataOperator,
    FairnessGateOperator,
    FitCandidateOperator,
    HumanReviewOperator,
    PlanSearchOperator,
    SelectCandidateOperator,
    TrainModelOperator,
    ValidateDataOperator,
)

# The lifecycle DAG's routes; each operator below gets its inputs as the DAG's XComArgs resolve them.
ROUTES = {
    "validate_data": {"passed": "check_bias", "failed": "quality_failed"},
    "check_bias": {"search": "plan_search", "train": "train_model"},
    "fairness_gate": {"pass": "deploy_model", "fail": "reject_model", "review": "human_review"},
    "human_review": {"approved": "deploy_model", "rejected": "reject_model"},
}


def out(ti, task_id):
    """What ``task.output`` resolves to: the task's return value, None when it did not run."""
    return ti.xcom_pull(task_id)


def validate_op(ti):
    return ValidateDataOperator(
        task_id="validate_data", snapshot=out(ti, "collect_data"), routes=ROUTES["validate_data"]
    )


def bias_op(ti):
    return CheckBiasOperator(task_id="check_bias", quality=out(ti, "validate_data"), routes=ROUTES["check_bias"])


def validated_and_measured(ti):
    """Run validation and the bias check, then the route it chose: the mitigation search (each
    candidate in turn, as the mapped task's instances would) or training without mitigation."""
    assert run(validate_op(ti), ti, "choose_branch") == "check_bias"
    route = run(bias_op(ti), ti, "choose_branch")
    if route == "plan_search":
        plan = run(PlanSearchOperator(task_id="plan_search", bias=out(ti, "check_bias")), ti)
        fitted = []
        for planned in plan:
            run(FitCandidateOperator(task_id="fit_candidate", planned=planned), ti)
            fitted.append(out(ti, "fit_candidate"))
        run(SelectCandidateOperator(task_id="select_candidate", plan=plan, candidates=fitted), ti)
    else:
        run(TrainModelOperator(task_id="train_model", bias=out(ti, "check_bias")), ti)
    return route


@pytest.fixture
def sample_csv(tmp_path, adult):
    def _make(df=None, name="sample.csv"):
        path = tmp_path / name
        (adult.sample(6000, random_state=1) if df is None else df).to_csv(path, index=False)
        return path

    return _make


def balanced_labels(df, rate=0.25):
    """The same favorable rate in every sex × race cell: no disparity to find."""
    df = df.copy()
    df["income"] = "<=50K"
    for idx in df.groupby([df["sex"], df["race"] == "White"]).groups.values():
        df.loc[idx[: round(rate * len(idx))], "income"] = ">50K"
    return df


def collected(ti, store):
    run(CollectDataOperator(task_id="collect_data"), ti)
    return ti.xcom_pull("collect_data", SUMMARY)


def test_validate_routes_to_bias_check_when_quality_passes(store, write_policy, sample_csv):
    write_policy({"dataset.source": str(sample_csv())})
    ti = FakeTI()
    collected(ti, store)
    assert run(validate_op(ti), ti, "choose_branch") == "check_bias"
    assert ti.xcom_pull("validate_data", SUMMARY)["passed"] is True


def test_validate_routes_to_quality_failed_naming_the_column(store, write_policy, sample_csv, adult):
    write_policy({"dataset.source": str(sample_csv(adult.drop(columns=["race"]).head(3000)))})
    ti = FakeTI()
    collected(ti, store)
    assert run(validate_op(ti), ti, "choose_branch") == "quality_failed"
    summary = ti.xcom_pull("validate_data", SUMMARY)
    assert "expect_column_to_exist on column 'race': FAILED" in summary["failures"]


@pytest.mark.lifecycle
def test_check_bias_routes_to_the_mitigation_search_on_adult(store, write_policy, sample_csv):
    write_policy({"dataset.source": str(sample_csv())})
    ti = FakeTI()
    collected(ti, store)
    run(validate_op(ti), ti, "choose_branch")
    assert run(bias_op(ti), ti, "choose_branch") == "plan_search"
    summary = ti.xcom_pull("check_bias", SUMMARY)
    assert summary["detected"] and any(r.startswith("sex: disparate_impact=") for r in summary["reasons"])


@pytest.mark.lifecycle
def test_check_bias_routes_straight_to_training_without_disparity(store, write_policy, sample_csv, adult):
    write_policy({"dataset.source": str(sample_csv(balanced_labels(adult.sample(6000, random_state=2))))})
    ti = FakeTI()
    collected(ti, store)
    run(validate_op(ti), ti, "choose_branch")
    assert run(bias_op(ti), ti, "choose_branch") == "train_model"
    import json

    stored = json.loads(store.get(ti.xcom_pull("check_bias", SUMMARY)["result"]["key"]))
    for m in stored["comparisons"].values():
        assert m["disparate_impact"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.lifecycle
def test_check_bias_routes_to_the_search_without_disparity_when_the_policy_searches_always(
    store, write_policy, sample_csv, adult
):
    write_policy(
        {
            "dataset.source": str(sample_csv(balanced_labels(adult.sample(6000, random_state=2)))),
            "mitigation.search": "always",
        }
    )
    ti = FakeTI()
    collected(ti, store)
    run(validate_op(ti), ti, "choose_branch")
    assert run(bias_op(ti), ti, "choose_branch") == "plan_search"
    assert ti.xcom_pull("check_bias", SUMMARY)["detected"] is False


def test_check_bias_fails_clearly_on_a_group_without_favorable_outcomes(store, write_policy, sample_csv, adult):
    df = adult.sample(6000, random_state=3).copy()
    df.loc[df["sex"] == "Female", "income"] = "<=50K"
    write_policy({"dataset.source": str(sample_csv(df))})
    ti = FakeTI()
    collected(ti, store)
    with pytest.raises(
        AirflowFailException,
        match=r"Group 'sex' \(unprivileged\) has 0 favorable outcomes in "
        r"column 'income' out of \d+ rows",
    ):
        run(validate_op(ti), ti, "choose_branch")
        run(bias_op(ti), ti, "choose_branch")


def test_privileged_if_on_a_text_column_routes_to_quality_failed_naming_the_column(store, write_policy, sample_csv):
    """Was a bare 'could not convert string to float', retried with a one-minute delay, with no evidence."""
    write_policy(
        {
            "dataset.source": str(sample_csv()),
            "protected_attributes": [{"column": "race", "privileged_if": {"op": ">=", "value": 1}}],
            "intersections": [],
        }
    )
    ti = FakeTI()
    collected(ti, store)
    assert run(validate_op(ti), ti, "choose_branch") == "quality_failed"
    failures = ti.xcom_pull("validate_data", SUMMARY)["failures"]
    assert (
        "fairgate_privileged_if_needs_numeric_column on column 'race': FAILED (dtype=str, privileged_if=>= 1)"
    ) in failures, failures


def test_model_params_that_do_not_fit_fail_the_first_stage_without_retries(store, write_policy, sample_csv):
    """Was a plain ValueError at train time, retried twice for nothing; now refused when the policy loads."""
    write_policy({"dataset.source": str(sample_csv()), "model.params": {"max_iter": 1000, "C": -1}})
    with pytest.raises(
        AirflowFailException,
        match=r"ModelParamsError: Policy key 'model.params' does not fit "
        r"logistic_regression: The 'C' parameter",
    ):
        collected(FakeTI(), store)
    assert store.list("runs/") == []  # nothing was written


def test_storage_errors_propagate_so_task_retries_apply():
    from fairgate.errors import StoreError
    from fairgate_airflow.operators.base import guarded

    def flaky():
        raise StoreError("503 Slow Down")

    with pytest.raises(StoreError):
        guarded(flaky)


def _gate(ti, params=None):
    validated_and_measured(ti)
    return run(
        FairnessGateOperator(
            task_id="fairness_gate",
            trained=[out(ti, "select_candidate"), out(ti, "train_model")],
            routes=ROUTES["fairness_gate"],
        ),
        ti,
        "choose_branch",
        params=params,
    )


@pytest.mark.lifecycle
def test_gate_rejects_adult_model_under_default_policy(store, write_policy, sample_csv):
    write_policy({"dataset.source": str(sample_csv())})
    ti = FakeTI()
    collected(ti, store)
    assert _gate(ti) == "reject_model"
    gate = ti.xcom_pull("fairness_gate", SUMMARY)
    assert gate["outcome"] == "fail" and gate["reasons"]


@pytest.mark.lifecycle
def test_gate_deploys_when_thresholds_allow(store, write_policy, sample_csv):
    loose = {
        "disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20},
        "equal_opportunity_difference": {"kind": "abs_difference", "max": 0.9},
    }
    # 6,000 rows leave ~6 favorable outcomes for one intersection cell in the test split
    write_policy({"dataset.source": str(sample_csv()), "fairness.thresholds": loose, "fairness.min_positives": 3})
    ti = FakeTI()
    collected(ti, store)
    assert _gate(ti) == "deploy_model", ti.xcom_pull("fairness_gate", SUMMARY)["reasons"]


@pytest.mark.lifecycle
def test_under_review_always_a_pass_asks_a_person_and_an_unanswered_assessment_rejects(store, write_policy, sample_csv):
    """`review.required: always`: the gate passes, the route is human_review; an approval that counts
    still rejects while the impact assessment and owners are unanswered, and names every key."""
    loose = {
        "disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20},
        "equal_opportunity_difference": {"kind": "abs_difference", "max": 0.9},
    }
    write_policy(
        {
            "dataset.source": str(sample_csv()),
            "fairness.thresholds": loose,
            "fairness.min_positives": 3,
            "review.required": "always",
            "owners.retraining": "ml team",
        }
    )
    ti = FakeTI()
    collected(ti, store)
    assert _gate(ti) == "human_review"
    assert ti.xcom_pull("fairness_gate", SUMMARY)["outcome"] == "pass"
    op = HumanReviewOperator(task_id="human_review", gate=out(ti, "fairness_gate"), routes=ROUTES["human_review"])
    seen = {}
    op.do_branch = lambda context, branches_to_execute: seen.setdefault("branch", branches_to_execute)
    ti.task_id = "human_review"
    event = {
        "chosen_options": ["Approve"],
        "params_input": {"rationale": "figures inside every band"},
        "responded_by_user": {"id": "1", "name": "alice"},
        "responded_at": None,
        "timedout": False,
    }
    op.execute_complete(context(ti), event)
    review = ti.xcom_pull("human_review", SUMMARY)
    assert seen["branch"] == ["reject_model"] and review["approved"] is False
    assert review["approvals"] == ["alice"]  # the approval counted; the policy's questions did not allow it
    assert "leave 7 question(s) unanswered: impact_assessment.affected_groups" in review["note"]
    assert "owners.retraining" not in review["note"]


@pytest.mark.lifecycle
def test_gate_asks_for_review_on_insufficient_evidence(store, write_policy, sample_csv):
    loose = {"disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20}}
    # (min_group_size that high would already stop the run at the quality gate, which checks group sizes)
    write_policy({"dataset.source": str(sample_csv()), "fairness.thresholds": loose, "fairness.min_positives": 100000})
    ti = FakeTI()
    collected(ti, store)
    assert _gate(ti) == "human_review"
    assert all("insufficient evidence" in r for r in ti.xcom_pull("fairness_gate", SUMMARY)["reasons"])


@pytest.mark.lifecycle
def test_manual_threshold_override_changes_the_route(store, write_policy, sample_csv):
    loose = {"disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20}}
    write_policy({"dataset.source": str(sample_csv()), "fairness.thresholds": loose, "fairness.min_positives": 3})
    ti = FakeTI()
    collected(ti, store)
    assert (
        _gate(
            ti,
            params={"threshold_overrides": {"disparate_impact_min": 0.99}, "override_rationale": "a stricter floor"},
        )
        == "reject_model"
    )


def test_an_override_without_a_rationale_or_against_the_policy_stops_the_run_at_its_first_task(
    store, write_policy, sample_csv
):
    """No retries burnt and nothing written: the first task refuses, naming what is missing."""
    write_policy({"dataset.source": str(sample_csv())})
    asked = {"threshold_overrides": {"disparate_impact_min": 0.5}}
    with pytest.raises(AirflowFailException, match="without a rationale"):
        run(CollectDataOperator(task_id="collect_data"), FakeTI(), params=asked)
    write_policy({"dataset.source": str(sample_csv()), "fairness.overrides": "forbidden"})
    with pytest.raises(AirflowFailException, match="'fairness.overrides' is 'forbidden'"):
        run(CollectDataOperator(task_id="collect_data"), FakeTI(), params={**asked, "override_rationale": "pilot"})
    assert store.list("runs/") == []


def test_gate_without_trained_model_says_what_is_missing(store, write_policy):
    write_policy()
    ti = FakeTI()
    with pytest.raises(
        AirflowFailException,
        match=r"no 'trained' input .* upstream task did not run, or the DAG "
        r"does not pass its .output to this operator",
    ):
        run(FairnessGateOperator(task_id="fairness_gate", routes=ROUTES["fairness_gate"]), ti, "choose_branch")


@pytest.mark.parametrize(
    "event,branch",
    [
        (
            {
                "chosen_options": ["Approve"],
                "params_input": {"rationale": "ok, monitored"},
                "responded_by_user": {"id": "1", "name": "alice"},
                "responded_at": None,
                "timedout": False,
            },
            "deploy_model",
        ),
        (
            {
                "chosen_options": ["Approve"],
                "params_input": {"rationale": ""},
                "responded_by_user": {"id": "1", "name": "alice"},
                "responded_at": None,
                "timedout": False,
            },
            "reject_model",
        ),
        (
            {
                "chosen_options": ["Reject"],
                "params_input": {"rationale": "no"},
                "responded_by_user": {"id": "1", "name": "bob"},
                "responded_at": None,
                "timedout": False,
            },
            "reject_model",
        ),
        (
            {
                "chosen_options": ["Reject"],
                "params_input": {"rationale": ""},
                "responded_by_user": None,
                "responded_at": None,
                "timedout": True,
            },
            "reject_model",
        ),
    ],
)
def test_human_review_routes_each_answer(event, branch):
    op = HumanReviewOperator(task_id="human_review", routes=ROUTES["human_review"])
    seen = {}
    op.do_branch = lambda context, branches_to_execute: seen.setdefault("branch", branches_to_execute)
    ti = FakeTI()
    ti.task_id = "human_review"
    op.execute_complete(context(ti), event)
    assert seen["branch"] == [branch]
    assert ti.xcom_pull("human_review", SUMMARY)["approved"] is (branch == "deploy_model")


def _deploy_ready(store, write_policy, sample_csv):
    loose = {"disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20}}
    write_policy({"dataset.source": str(sample_csv()), "fairness.thresholds": loose, "fairness.min_positives": 3})
    ti = FakeTI()
    collected(ti, store)
    assert _gate(ti) == "deploy_model"
    return ti


@pytest.mark.lifecycle
def test_backfill_run_registers_but_never_moves_the_pointer(store, write_policy, sample_csv):
    from fairgate.governance import registry
    from fairgate_airflow.operators import DeployModelOperator

    ti = _deploy_ready(store, write_policy, sample_csv)
    op = DeployModelOperator(task_id="deploy_model", gate=out(ti, "fairness_gate"))
    ti.task_id = op.task_id
    ctx = context(ti)
    ctx["dag_run"] = SimpleNamespace(dag_id="t", run_id="backfill__2026-01-05", run_type="backfill")
    op.execute(ctx)
    summary = ti.xcom_pull("deploy_model", SUMMARY)
    assert summary["promoted"] is False
    assert registry.production_version(store, "adult_income") is None
    assert registry.read_manifest(store, "adult_income", summary["version"])["approved"] is True


@pytest.mark.lifecycle
def test_deploy_then_rollback_operator(store, write_policy, sample_csv):
    from fairgate.governance import approval, evidence, registry
    from fairgate_airflow.operators import DeployModelOperator, RollbackOperator

    ti = _deploy_ready(store, write_policy, sample_csv)
    run(DeployModelOperator(task_id="deploy_model", gate=out(ti, "fairness_gate")), ti)
    first = registry.production_version(store, "adult_income")
    second = registry.register(store, "adult_income", b"another model", {"approved": True, "registered_at": "9999"})[
        "version"
    ]
    approval.deploy_recorded(
        store, "adult_income", second, run_id="r2", dag_id="t", gate_outcome="pass", replaces=first, approver="t"
    )
    run(RollbackOperator(task_id="rollback", reason="audit found drift"), ti)
    assert registry.production_version(store, "adult_income") == first
    rec = evidence.find(store, "adult_income", "latest", kind="rollback")["record"]
    assert (rec["from_version"], rec["to_version"], rec["reason"]) == (second, first, "audit found drift")


def test_rollback_to_an_unapproved_version_is_refused(store, write_policy):
    from fairgate.governance import registry
    from fairgate_airflow.operators import RollbackOperator

    write_policy()
    a = registry.register(store, "adult_income", b"a", {"approved": True, "registered_at": "1"})["version"]
    bad = registry.register(
        store, "adult_income", b"b", {"approved": False, "gate_outcome": "fail", "registered_at": "2"}
    )["version"]
    registry.promote(store, "adult_income", a, action="deploy", run_id="r", actor="t", reason="")
    with pytest.raises(AirflowFailException, match="was never approved"):
        run(RollbackOperator(task_id="rollback", version=bad, reason="try"), FakeTI())
    assert registry.production_version(store, "adult_income") == a


def test_compute_time_is_measured_per_call(store, write_policy, sample_csv):
    """An operator object is reused across runs in one process (dag.test does that): no carry-over."""
    import time

    write_policy({"dataset.source": str(sample_csv())})
    op, ti = CollectDataOperator(task_id="collect_data"), FakeTI()
    for _ in range(2):
        t = time.perf_counter()
        run(op, ti)
        elapsed = time.perf_counter() - t
        # compute_s is rounded to the millisecond; a carried-over total would exceed this by a whole call
        assert 0 < ti.xcom_pull("collect_data", SUMMARY)["compute_s"] <= elapsed + 0.001


def test_an_operators_own_policy_file_and_store_win_over_the_environment(store, write_policy, sample_csv, tmp_path):
    """``policy_file`` and ``artifact_root`` given to the operator, with the environment naming others."""
    import yaml
    from tests.support.policies import default_policy_dict

    write_policy({"dataset.source": "/nowhere/in/the/environment.csv"})  # what FAIRGATE_POLICY says
    own = tmp_path / "own.yaml"
    own.write_text(
        yaml.safe_dump(
            {**default_policy_dict(), "model_name": "own"}
            | {"dataset": {**default_policy_dict()["dataset"], "source": str(sample_csv())}}
        )
    )
    elsewhere = tmp_path / "elsewhere"
    op = CollectDataOperator(task_id="collect_data", policy_file=str(own), artifact_root=str(elsewhere))
    ti = FakeTI()
    run(op, ti)
    written = out(ti, "collect_data")
    assert written["data"]["uri"].startswith(elsewhere.as_uri()) and (elsewhere / "runs").is_dir()
    assert written["source"] == str(sample_csv())  # the operator's own policy, not FAIRGATE_POLICY's
    assert not (store.root / "runs").exists()


@pytest.mark.parametrize("found", ["3.1.7", "3.2.1", "3.4.0", "2.10.5"])
def test_an_airflow_outside_the_supported_range_is_refused_at_import_by_name(found):
    from fairgate_airflow import SUPPORTED, check_airflow

    with pytest.raises(ImportError, match=rf"supports apache-airflow {','.join(SUPPORTED)}.*this Airflow is {found}"):
        check_airflow(found)
    check_airflow("3.3.2")  # the one CI runs
