"""
### fairgate_score

Every day, scores the day's incoming records with the model in production (loaded only after
its sha256 matches the registry) and writes the prediction log partition
`predictions/model=<model>/date=YYYY-MM-DD/` with row key, model version, score, decision, protected
attributes and the features the audit measures drift on. Outcomes are joined later, when they
arrive, under `labels/model=<model>/date=YYYY-MM-DD/`.

Records come from the policy's `audit.incoming` (a folder of `date=` partitions or a SQL
query); for the bundled Adult model the default is a **simulated** feed built from the Adult
test file, and the `scenario` param picks how the simulation changes the data. One such DAG per
model (`fairgate_score__<model>` with `FAIRGATE_POLICIES`). Backfill with
`airflow backfill create --dag-id fairgate_score --from-date … --to-date …`: re-running a day
replaces that day's partition.

With `review_triggers` in the policy, the borderline decisions wait for a person: `score` opens a
review case for each decision on the day's queue, and `review_decision` (one mapped HITL task
per case; none when the queue is empty) asks a reviewer to uphold or overturn it. A review not
answered within `review_triggers.timeout_hours` lets the automatic decision stand.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, Param

from fairgate_airflow.models import SCENARIOS, ModelEntry
from fairgate_airflow.operators import DecideContestOperator, ScoreOperator


def score(model: ModelEntry) -> DAG:
    with DAG(
        dag_id=model.dag_id("fairgate_score"),
        doc_md=__doc__,
        schedule=CronTriggerTimetable(model.schedule["score"], timezone="UTC", interval=timedelta(days=1)),
        start_date=pendulum.datetime(2026, 1, 2, tz="UTC"),
        catchup=False,
        max_active_runs=4,
        tags=["fairgate", "monitoring", f"model:{model.name}"],
        default_args={"owner": "fairgate", "retries": 2, "retry_delay": timedelta(minutes=1)},
        params={
            "scenario": Param(
                None,
                type=["null", "string"],
                enum=[None, *SCENARIOS],
                description="Simulated feed only: overrides the policy's audit.scenario.",
            )
        },
    ) as dag:
        scored = ScoreOperator(task_id="score")
        # A person's answer is not retried: a retry would ask again.
        DecideContestOperator.partial(task_id="review_decision", retries=0).expand(case_id=scored.output)
    return dag
