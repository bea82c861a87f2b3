"""Assets shared between Fairgate DAGs."""

from __future__ import annotations

from airflow.sdk import Asset

# Updated by fairgate_audit when a deployed model degrades; fairgate_lifecycle is scheduled on it.
# A plain name, not a URI: a URI scheme makes Airflow load provider URI handlers at parse time.
RETRAINING_REQUEST = Asset("fairgate_retraining_request")
