"""
### fairgate_policy_refused

A policy file in the policies folder that gives no model: it could not be read, is not a
mapping, names no valid `model_name`, names a model another file already names, or has a
schedule that is not a cron. The other models' DAGs are built as usual; this DAG stands for the
refused file, so the refusal is in the DAG list and not only in the DAG processor's log. Its
description says why; it never runs on a schedule, and a manual run fails with the same message.
Fix the file and the model's own DAGs replace this one at the next parse.
"""

from __future__ import annotations

import re

import pendulum
from airflow.sdk import DAG

from fairgate_airflow.models import Refused
from fairgate_airflow.operators import PolicyRefusedOperator


def dag_id(refusal: Refused) -> str:
    """``fairgate_policy_refused__<file name>``, the name reduced to the characters a DAG id may hold."""
    return "fairgate_policy_refused__" + re.sub(r"[^A-Za-z0-9_.-]", "_", refusal.path.name)


def refused(refusal: Refused) -> DAG:
    reason = refusal.reason if len(refusal.reason) <= 1000 else refusal.reason[:1000] + " ..."
    with DAG(
        dag_id=dag_id(refusal),
        description=f"Refused policy file {refusal.path.name}: {reason}"[:500],
        doc_md=f"{__doc__}\n**{refusal.path}**: {reason}\n",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["fairgate", "policy-refused"],
    ) as dag:
        PolicyRefusedOperator(task_id="policy_refused", path=str(refusal.path), reason=reason, retries=0)
    return dag
