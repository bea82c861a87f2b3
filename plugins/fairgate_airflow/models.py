"""The models this deployment runs, for the DAG files: one set of DAGs per policy file.

Parse-time cheap: :mod:`fairgate.policy.catalog` reads each policy's ``model_name`` and ``schedule``
with PyYAML and nothing else; the tasks load and validate the whole policy when they run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

from fairgate.policy.catalog import ModelEntry, Refused, entries, scan
from fairgate.policy.schema import Scenario

if TYPE_CHECKING:
    from airflow.sdk import DAG

__all__ = ["SCENARIOS", "ModelEntry", "Refused", "bind", "entries", "scan"]

# The simulated feed's scenarios (the schema's list), for the score DAG's param.
SCENARIOS: tuple[str, ...] = get_args(Scenario)


def bind(dag: DAG, model: ModelEntry, **settings: str | None) -> DAG:
    """Point every task of ``dag`` at ``model``'s policy file and at the ``settings`` given
    (``artifact_root``, ``aws_conn_id``, ``mlflow_conn_id``: arguments every Fairgate operator takes).

    The single policy of a one-model deployment is left to ``FAIRGATE_POLICY`` when the task runs,
    as before there were many models; a setting left out (None) to its environment variable.
    """
    given = {k: v for k, v in settings.items() if v is not None}
    if not model.single:
        given["policy_file"] = str(model.path)
    for task in dag.tasks:
        for name, value in given.items():
            if hasattr(task, "partial_kwargs"):  # a mapped task: each instance is built from these kwargs
                task.partial_kwargs[name] = value
            else:
                setattr(task, name, value)  # every Fairgate operator has them
    return dag
