"""Assets shared between Fairgate DAGs: one retraining request per model."""

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
