"""The text a human reviewer sees: the gate's reasons, the key metrics and where the report is."""

from __future__ import annotations

from typing import Any

from fairgate.pages import render_markdown, section
from fairgate.report import FAIRNESS_HEADER, fairness_rows


def report_url(dag_id: str, run_id: str) -> str:
    """Where the reviewer reads the run report: the Fairness view, absolute when the API server's URL is known."""
    from airflow.configuration import conf

    from fairgate.overview import run_report_path

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}/fairgate/{run_report_path(dag_id, run_id)}"  # without base_url: relative to the UI


def review_body(gate: dict[str, Any], mitigation: dict[str, Any] | None, *, report_url: str = "",
                stored_uri: str = "") -> str:
    """Markdown body of the review request, built from the fairness gate's summary."""
    fairness = {k: {**v["metrics"], "counts": v["counts"]} for k, v in gate.get("fairness", {}).items()}
    return render_markdown(
        "review_request.md.j2", reasons=gate.get("reasons", []), performance=section(gate.get("performance")),
        mitigated="yes (reweighing)" if mitigation else "no", fairness_header=FAIRNESS_HEADER,
        fairness_rows=fairness_rows(fairness), report_url=report_url, stored_uri=stored_uri, gate_uri=gate.get("uri"))
