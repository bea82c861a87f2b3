"""Alerts from the audit DAG, as Airflow notifiers.

The default writes each alert to the task log and to ``alerts/model=<model>/date=YYYY-MM-DD/<run>.json`` in
the artifact store. Any other ``BaseNotifier`` (Slack, SMTP, a webhook through the HTTP
provider) can be passed to :class:`AlertOperator` alongside or instead of it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

from fairgate.storage import layout

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


class ArtifactStoreAlertNotifier(BaseNotifier):
    """Log the alert and keep it as a JSON file in the artifact store."""

    template_fields = ("message",)

    def __init__(self, message: str = "", severity: str = "warning", payload: dict[str, Any] | None = None):
        super().__init__()
        self.message = message
        self.severity = severity
        self.payload = payload or {}

    def notify(self, context: Context) -> None:
        from fairgate_airflow.settings import artifact_store

        run_id = context["dag_run"].run_id
        day = self.payload.get("date", "unknown")
        body = {
            "severity": self.severity,
            "message": self.message,
            "run_id": run_id,
            "dag_id": context["dag_run"].dag_id,
            **self.payload,
        }
        model = self.payload.get("model", "unknown")
        key = f"{layout.day_prefix('alerts', model, day)}/{layout.safe(run_id)}.json"
        written = artifact_store().put(key, json.dumps(body, indent=2, sort_keys=True, default=str).encode())
        log.warning("Fairgate alert (%s): %s [%s]", self.severity, self.message, written.uri)
