"""The operator of ``fairgate_rollback``: production pointed back to an earlier approved version."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from fairgate_airflow.operators.base import Stage

if TYPE_CHECKING:
    from airflow.sdk import Context


class RollbackOperator(Stage, BaseOperator):
    """Point production back to an earlier approved version and record who, when and why."""

    template_fields: Sequence[str] = ("version", "reason")
    ui_color = "#fff3cd"

    def __init__(self, *, version: str = "", reason: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version = version
        self.reason = reason

    def execute(self, context: Context) -> None:
        from fairgate.stages import lifecycle

        run = self.run_info(context)
        actor = getattr(context["dag_run"], "triggering_user_name", None) or "unknown"
        moved = self.run(
            context,
            lifecycle.rollback,
            to_version=self.version or None,
            actor=actor,
            reason=self.reason,
            run_id=run.run_id,
            dag_id=run.dag_id,
            with_run=False,
        )
        self.log.info(
            "Production moved from %s back to %s (evidence record %s)",
            moved.from_version[:12],
            moved.to_version[:12],
            moved.seq,
        )
