"""``fairgate_policy_refused__<file>``: the one task of a policy file that gives no model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context


class PolicyRefusedOperator(BaseOperator):
    """Fails, once, with why the policy file was refused (a run of the DAG says it again)."""

    def __init__(self, *, path: str, reason: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.reason = reason

    def execute(self, context: Context) -> None:
        raise AirflowFailException(f"Policy file {self.path} gives no model: {self.reason}")
