"""Assets shared between Fairgate DAGs: per model, a retraining request and the served decisions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Asset

if TYPE_CHECKING:
    from fairgate.policy.catalog import ModelEntry


def retraining_request(model: ModelEntry) -> Asset:
    """Updated by the model's audit DAG when it degrades; the model's lifecycle DAG is scheduled on it.

    A plain name, not a URI: a URI scheme makes Airflow load provider URI handlers at parse time.
    """
    return Asset(model.dag_id("fairgate_retraining_request"))


def served_decisions(model: ModelEntry) -> Asset:
    """Updated by the model's ingest DAG when ``audit.min_new_decisions`` served decisions have arrived;
    the model's audit DAG is scheduled on it as well as on its nightly cron."""
    return Asset(model.dag_id("fairgate_served_decisions"))
