"""
### fairgate_lifecycle

Takes a dataset from collection to a deployment decision, keeping the evidence of every step:

collect → validate (quality gate) → check bias ⇢ reweigh → train → fairness gate ⇢ deploy /
reject / human review → record evidence.

Runs weekly, and whenever the audit DAG requests retraining (the `fairgate_retraining_request`
asset). Every stage is configured by the policy file (`FAIRGATE_POLICY`); manual runs may
override the gate's thresholds with the `threshold_overrides` param, e.g.
`{"disparate_impact_min": 0.75}`. A rejection is a normal, recorded outcome; a failed quality
gate records its evidence and fails the run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, TriggerRule

from fairgate_airflow.assets import RETRAINING_REQUEST
from fairgate_airflow.operators import (
    CheckBiasOperator,
    CollectDataOperator,
    DeployModelOperator,
    FairnessGateOperator,
    HumanReviewOperator,
    RecordEvidenceOperator,
    RejectModelOperator,
    ReweighOperator,
    TrainModelOperator,
    ValidateDataOperator,
)

JOIN = TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS

with DAG(
    dag_id="fairgate_lifecycle",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC", interval=timedelta(days=7)),
        assets=RETRAINING_REQUEST,
    ),
    start_date=pendulum.datetime(2026, 1, 5, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["fairgate", "lifecycle"],
    default_args={"owner": "fairgate", "retries": 2, "retry_delay": timedelta(minutes=1)},
    params={"threshold_overrides": Param({}, type="object",
                                         description="Gate thresholds for this run, e.g. "
                                                     '{"disparate_impact_min": 0.75}')},
) as dag:
    collect = CollectDataOperator(task_id="collect_data")
    validate = ValidateDataOperator(task_id="validate_data")
    quality_failed = RecordEvidenceOperator(task_id="quality_failed", outcome="quality_failed", fail_run=True,
                                            retries=0)
    bias = CheckBiasOperator(task_id="check_bias")
    reweigh = ReweighOperator(task_id="reweigh")
    train = TrainModelOperator(task_id="train_model", trigger_rule=JOIN)
    gate = FairnessGateOperator(task_id="fairness_gate")
    review = HumanReviewOperator(task_id="human_review", retries=0)
    deploy = DeployModelOperator(task_id="deploy_model", trigger_rule=JOIN, pool="fairgate_promotion")
    reject = RejectModelOperator(task_id="reject_model", trigger_rule=JOIN)
    record = RecordEvidenceOperator(task_id="record_evidence", trigger_rule=JOIN)

    collect >> validate >> [quality_failed, bias]
    bias >> [reweigh, train]
    reweigh >> train >> gate >> [deploy, reject, review]
    review >> [deploy, reject]
    [deploy, reject] >> record
