"""The Fairness view: models, the production version, recent decisions and audits on one page.

The data comes from the artifact store only (registry, evidence log, audits), so the page shows
what was recorded and nothing the metadata DB might have lost. :func:`overview` gathers it as a
dict (also served as JSON); :func:`fairgate.report.overview_html` renders it.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from fairgate import evidence, registry

if TYPE_CHECKING:
    from fairgate.store import ArtifactStore


def models(store: ArtifactStore) -> list[str]:
    """Every model the store holds anything of: registered versions or an evidence log."""
    registered = {k.split("/")[1] for k in store.list("registry/") if k.count("/") >= 2}
    return sorted(registered | set(evidence.models(store)))


def overview(store: ArtifactStore, *, today: date, decisions: int = 20, audits: int = 30,
             only: list[str] | None = None) -> dict[str, Any]:
    """Per model (of ``only``, when given): the production version, every version, recent lifecycle
    decisions and audits."""
    from fairgate.prediction_log import audit_history

    out: dict[str, Any] = {"models": []}
    for name in models(store):
        if only is not None and name not in only:
            continue
        pointer, _ = registry.read_pointer(store, name)
        versions = registry.list_versions(store, name)
        out["models"].append({
            "name": name,
            "production": pointer and {k: pointer.get(k) for k in ("version", "since", "action", "run_id", "actor")},
            "versions": [{"version": m["version"], "registered_at": m.get("registered_at"),
                          "gate_outcome": m.get("gate_outcome"), "approver": m.get("approver"),
                          "balanced_accuracy": (m.get("performance") or {}).get("balanced_accuracy"),
                          "run_id": m.get("run_id"), "dag_id": m.get("dag_id")} for m in reversed(versions)],
            "decisions": [
                {"seq": e["seq"], **{k: e["record"].get(k) for k in ("dag_id", "run_id", "decision", "recorded_at")},
                 "gate": (e["record"].get("gate") or {}).get("outcome"),
                 "reasons": (e["record"].get("gate") or {}).get("reasons", [])[:3]}
                for e in evidence.recent(store, name, "lifecycle", last=decisions)],
            "audits": [{k: a.get(k) for k in ("date", "status", "rows", "labeled_rows", "reasons", "fairness")}
                       for a in audit_history(store, name, until=today, last=audits)],
        })
    return out
