"""Where a reviewer reads the run report: the Fairness view, on the API server's own URL when known."""

from __future__ import annotations


def report_url(dag_id: str, run_id: str) -> str:
    """The run report in the Fairness view; absolute with ``[api] base_url``, else relative to the UI."""
    from airflow.configuration import conf

    from fairgate.reporting.report import run_report_path

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}/fairgate/{run_report_path(dag_id, run_id)}"
