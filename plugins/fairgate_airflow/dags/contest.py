"""
### fairgate_contest

A person contests a decision: `fairgate contest ROW --reason "..."` (or the Fairness view's
contest route) opens the case and this DAG runs it, one run per case (`case_id` in the run's
conf). The `decide_contest` task shows a reviewer the record, its reasons, its recourse and the
model version in Airflow's Required Actions; the reviewer upholds or overturns the decision
with a rationale. The outcome is appended to the model's evidence log, an overturned decision
is what the nightly audit counts from then on, and `fairgate case ROW` shows it to the person's
case worker. Without an answer the case stays open.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from fairgate_airflow.models import ModelEntry
from fairgate_airflow.operators import DecideContestOperator


def contest(model: ModelEntry) -> DAG:
    with DAG(
        dag_id=model.dag_id("fairgate_contest"),
        doc_md=__doc__,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["fairgate", "contest", f"model:{model.name}"],
        default_args={"owner": "fairgate", "retries": 2, "retry_delay": timedelta(seconds=30)},
        params={
            "case_id": Param(
                "",
                type="string",
                title="Case",
                minLength=1,
                description="The case `fairgate contest` opened (contest__<row>__<date>).",
            )
        },
    ) as dag:
        # A person's answer is not retried: a retry would ask again.
        DecideContestOperator(task_id="decide_contest", case_id="{{ params.case_id }}", retries=0)
    return dag
