"""
### fairgate_lifecycle

Takes a dataset from collection to a deployment decision, keeping the evidence of every step:

collect → validate (quality gate) → check bias ⇢ mitigation search (plan → one mapped task per
candidate → choose on the validation split) or train without mitigation → fairness gate (test
split) ⇢ deploy / reject / human review → record evidence → track in MLflow (the run, the
registered version, the `production` alias; a server that is down is recorded, not fatal).

Runs on the policy's `schedule.lifecycle` (weekly by default), and whenever the model's audit
DAG requests retraining (its `fairgate_retraining_request` asset). One such DAG per model:
each policy file of `FAIRGATE_POLICIES` gets `fairgate_lifecycle__<model>`; a single policy
(`FAIRGATE_POLICY`, default the bundled one) runs as `fairgate_lifecycle`. Every stage is
configured by the model's policy file; a manual run may
override the gate's thresholds with the `threshold_overrides` param, e.g.
`{"disparate_impact_min": 0.75}`, and must say why in `override_rationale` (unless the policy's
`fairness.overrides` is `forbidden`): the override, its reason and the user who triggered the run
are recorded in the evidence, the manifest, the model card and the report (forbidden: the run stops
at its first task). A rejection is a normal, recorded outcome; a failed quality gate records its
evidence and fails the run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, TriggerRule

from fairgate_airflow.assets import retraining_request
from fairgate_airflow.models import ModelEntry
from fairgate_airflow.operators import (
    CheckBiasOperator,
    CollectDataOperator,
    DeployModelOperator,
    FairnessGateOperator,
    FitCandidateOperator,
    HumanReviewOperator,
    PlanSearchOperator,
    RecordEvidenceOperator,
    RecordFailureOperator,
    RejectModelOperator,
    SelectCandidateOperator,
    TrackMlflowOperator,
    TrainModelOperator,
    ValidateDataOperator,
    check_routes,
)

JOIN = TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS


def lifecycle(model: ModelEntry) -> DAG:
    with DAG(
        dag_id=model.dag_id("fairgate_lifecycle"),
        doc_md=__doc__,
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(model.schedule["lifecycle"], timezone="UTC", interval=timedelta(days=7)),
            assets=retraining_request(model),
        ),
        start_date=pendulum.datetime(2026, 1, 5, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["fairgate", "lifecycle", f"model:{model.name}"],
        default_args={"owner": "fairgate", "retries": 2, "retry_delay": timedelta(minutes=1)},
        params={
            "threshold_overrides": Param(
                {}, type="object", description='Gate thresholds for this run, e.g. {"disparate_impact_min": 0.75}'
            ),
            # May be left empty (null): the Trigger form disables its button while a string param is "",
            # even with no override; collect_data refuses an override without a rationale.
            "override_rationale": Param(
                None,
                type=["null", "string"],
                maxLength=2000,
                description="Why this run's thresholds differ from the policy's (required with threshold_overrides; "
                "recorded in the evidence, the manifest and the model card)",
            ),
        },
    ) as dag:
        # Each stage's input is an upstream stage's result (its .output): the data edges are the task edges.
        collect = CollectDataOperator(task_id="collect_data")
        validate = ValidateDataOperator(
            task_id="validate_data",
            snapshot=collect.output,
            routes={"passed": ["check_bias", "record_failure"], "failed": "quality_failed"},
        )
        RecordEvidenceOperator(task_id="quality_failed", quality=validate.output, retries=0)
        bias = CheckBiasOperator(
            task_id="check_bias", quality=validate.output, routes={"search": "plan_search", "train": "train_model"}
        )
        plan = PlanSearchOperator(task_id="plan_search", bias=bias.output)
        # One task instance per candidate: they run side by side, on as many worker slots as there are.
        fitted = FitCandidateOperator.partial(
            task_id="fit_candidate",
            map_index_template="{{ candidate_id }}",  # each instance named in the grid
        ).expand(planned=plan.output)
        chosen = SelectCandidateOperator(task_id="select_candidate", plan=plan.output, candidates=fitted.output)
        train = TrainModelOperator(task_id="train_model", bias=bias.output)
        gate = FairnessGateOperator(
            task_id="fairness_gate",
            trained=[chosen.output, train.output],
            trigger_rule=JOIN,
            routes={"pass": "deploy_model", "fail": "reject_model", "review": "human_review"},
        )
        # One review task per approval the policy's review.quorum needs, in a chain: each approval that
        # counts leads to the next review, the last to deployment; any other answer to rejection.
        quorum = model.review_quorum
        reviews: list[HumanReviewOperator] = []
        for n in range(1, quorum + 1):
            reviews.append(
                HumanReviewOperator(
                    task_id="human_review" if n == 1 else f"human_review_{n}",
                    gate=gate.output,
                    earlier=reviews[-1].output if reviews else None,
                    position=(n, quorum),
                    routes={
                        "approved": "deploy_model" if n == quorum else f"human_review_{n + 1}",
                        "rejected": "reject_model",
                    },
                    retries=0,
                )
            )
        answers = [r.output for r in reviews]
        deploy = DeployModelOperator(
            task_id="deploy_model", gate=gate.output, review=answers, trigger_rule=JOIN, pool="fairgate_promotion"
        )
        reject = RejectModelOperator(task_id="reject_model", gate=gate.output, review=answers, trigger_rule=JOIN)
        recorded = RecordEvidenceOperator(
            task_id="record_evidence", deployment=deploy.output, rejection=reject.output, trigger_rule=JOIN
        )
        recorded >> TrackMlflowOperator(task_id="track_mlflow")
        # A stage that fails after the quality gate still leaves the run's record (decision: failed, and why).
        # Downstream of the stages no branch points at, so no branch skips it.
        failed = RecordFailureOperator(
            task_id="record_failure",
            quality=validate.output,
            stages=[t.task_id for t in (bias, plan, fitted, chosen, train, gate, *reviews, deploy, reject, recorded)],
            retries=0,
        )
        [plan, fitted, chosen, train, deploy, reject, recorded] >> failed

    return check_routes(dag)
