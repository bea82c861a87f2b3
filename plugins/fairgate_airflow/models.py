"""The models this deployment runs, for the DAG files: one set of DAGs per policy file.

Parse-time cheap: :mod:`fairgate.policy.catalog` reads each policy's ``model_name`` and ``schedule``
with PyYAML and nothing else; the tasks load and validate the whole policy when they run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, get_args

from fairgate.policy.catalog import ModelEntry, entries
from fairgate.policy.schema import Scenario

if TYPE_CHECKING:
    from airflow.sdk import DAG

__all__ = ["SCENARIOS", "ModelEntry", "bind", "entries"]

# The simulated feed's scenarios (the schema's list), for the score DAG's param.
SCENARIOS: tuple[str, ...] = get_args(Scenario)


def bind(dag: DAG, model: ModelEntry) -> DAG:
    """Point every task of ``dag`` at ``model``'s policy file.

    The single policy of a one-model deployment is left to ``FAIRGATE_POLICY`` when the task runs,
    as before there were many models.
    """
    if model.single:
        return dag
    for task in dag.tasks:
        if hasattr(task, "partial_kwargs"):  # a mapped task: each instance is built from these kwargs
            task.partial_kwargs["policy_file"] = str(model.path)
        else:
            task.policy_file = str(model.path)  # every Fairgate operator has it
    return dag
