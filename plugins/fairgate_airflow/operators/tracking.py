"""``track_mlflow``, the last task of the lifecycle, audit and rollback DAGs: MLflow brought up to date."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from fairgate_airflow.operators.base import Stage

if TYPE_CHECKING:
    from airflow.sdk import Context


class TrackMlflowOperator(Stage, BaseOperator):
    """Bring MLflow up to date with the evidence log: this run (``lifecycle_runs``), the audits, the alias.

    MLflow is a view; the evidence log is the record. A server that stays down through the task's
    retries does not fail the run: the last try records ``not_logged`` in the evidence and the task
    succeeds with a warning (``fairgate mlflow-sync`` logs it later). ``FAIRGATE_MLFLOW=off`` skips it.
    """

    checks_estimator = False

    ui_color = "#d9ecf7"

    def __init__(self, *, lifecycle_runs: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lifecycle_runs = lifecycle_runs

    def execute(self, context: Context) -> None:
        from fairgate.integrations import tracking
        from fairgate_airflow import settings

        if not settings.tracking_enabled():
            self.log.info("FAIRGATE_MLFLOW is off: nothing sent to MLflow.")
            return
        run = self.run_info(context)
        ti = context["ti"]
        result = self.run(
            context,
            tracking.track,
            uri=settings.mlflow_tracking_uri(self.mlflow_conn_id),
            run_id=run.run_id if self.lifecycle_runs else None,
            lifecycle_runs=self.lifecycle_runs,
            run_url=settings.airflow_run_url(run.dag_id, run.run_id),
            last_try=ti.try_number > (self.retries or 0),
            with_run=False,
        )
        if result.logged:
            self.log.info(
                "MLflow: runs %s, versions %s, %s audit(s), production alias -> %s",
                result.runs,
                result.versions,
                result.audits,
                result.alias,
            )
        else:
            self.log.warning(
                "MLflow was not reached after %s tries; recorded as not logged in the evidence "
                "(run `fairgate mlflow-sync` later): %s",
                ti.try_number,
                result.error,
            )
