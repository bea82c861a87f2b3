"""The text a human reviewer sees: the gate's reasons, the key metrics and where the report is."""

from __future__ import annotations

from typing import Any

from fairgate.report import METRIC_LABELS, fairness_rows


def report_link(dag_id: str, run_id: str, stored_uri: str) -> str:
    """Where the reviewer reads the run report: the Fairness view when the API server's URL is known."""
    from airflow.configuration import conf

    from fairgate.overview import run_report_path

    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    view = f"{base}/fairgate/{run_report_path(dag_id, run_id)}"  # without base_url: relative to the UI
    return f"[Run report]({view}) (stored at `{stored_uri}`)"


def review_body(gate: dict[str, Any], mitigation: dict[str, Any] | None, *, report: str = "") -> str:
    """Markdown body of the review request, built from the fairness gate's summary."""
    perf = gate.get("performance", {})
    fairness = {k: {**v["metrics"], "counts": v["counts"]} for k, v in gate.get("fairness", {}).items()}
    header = ["comparison", "n unpriv / priv"] + list(METRIC_LABELS.values())
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    rows += ["| " + " | ".join(r) + " |" for r in fairness_rows(fairness)]
    reasons = "\n".join(f"- {r}" for r in gate.get("reasons", [])) or "- (none)"
    mitigated = "yes (reweighing)" if mitigation else "no"
    return (
        "The fairness gate could not decide on this model by itself. Approve only with a rationale.\n\n"
        f"**Why it needs review**\n{reasons}\n\n"
        f"**Performance on held-out data**: accuracy {perf.get('accuracy', 0):.4f}, balanced accuracy "
        f"{(perf.get('balanced_accuracy') or 0):.4f}, ROC AUC {(perf.get('roc_auc') or 0):.4f}. "
        f"Reweighing applied: {mitigated}.\n\n"
        "**Fairness (value [interval])**\n\n" + "\n".join(rows) + "\n\n"
        f"**Evidence**: {report or 'report not written'}; full gate result `{gate.get('uri')}`.\n"
    )
