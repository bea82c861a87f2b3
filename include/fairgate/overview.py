"""The Fairness view: models, the production version, recent decisions and audits on one page.

The data comes from the artifact store only (registry, evidence log, audits), so the page shows
what was recorded and nothing the metadata DB might have lost. :func:`overview` gathers it as a
dict (also served as JSON); :func:`overview_html` renders it with the audit trend chart inline.
"""

from __future__ import annotations

import html
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fairgate import evidence, registry

if TYPE_CHECKING:
    from fairgate.store import ArtifactStore


def models(store: ArtifactStore) -> list[str]:
    return sorted({k.split("/")[1] for k in store.list("registry/") if k.count("/") >= 2})


def overview(store: ArtifactStore, *, today: date, decisions: int = 20, audits: int = 30) -> dict[str, Any]:
    from fairgate.monitoring import audit_history

    out: dict[str, Any] = {"models": []}
    for name in models(store):
        pointer, _ = registry.read_pointer(store, name)
        versions = registry.list_versions(store, name)
        out["models"].append({
            "name": name,
            "production": pointer and {k: pointer.get(k) for k in ("version", "since", "action", "run_id", "actor")},
            "versions": [{"version": m["version"], "registered_at": m.get("registered_at"),
                          "gate_outcome": m.get("gate_outcome"), "approver": m.get("approver"),
                          "balanced_accuracy": (m.get("performance") or {}).get("balanced_accuracy"),
                          "run_id": m.get("run_id"), "dag_id": m.get("dag_id")} for m in reversed(versions)],
        })
    out["decisions"] = [
        {"seq": e["seq"], **{k: e["record"].get(k) for k in ("dag_id", "run_id", "decision", "recorded_at",
                                                             "model_name")},
         "gate": (e["record"].get("gate") or {}).get("outcome"),
         "reasons": (e["record"].get("gate") or {}).get("reasons", [])[:3]}
        for e in evidence.recent(store, "lifecycle", last=decisions)]
    out["audits"] = [{k: a.get(k) for k in ("date", "status", "rows", "labeled_rows", "reasons", "fairness")}
                     for a in audit_history(store, until=today, last=audits)]
    return out


def run_report_path(dag_id: str, run_id: str) -> str:
    return f"report/run/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


def overview_html(data: dict[str, Any], *, user: str, thresholds: list[Any] | None = None) -> str:
    """The page itself; links are relative to the view's own URL."""
    from fairgate import charts

    esc = html.escape

    def table(name: str, header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
        return f'<table class="{name}"><tr>{head}</tr>{body}</table>'

    parts = [f'<h1>Fairgate: fairness overview</h1><p class="who">Signed in as {esc(user)}</p>']
    if not data["models"]:
        parts.append("<h2>Models</h2><p>No model version is registered yet: no lifecycle run has passed the "
                     "gate or a review.</p>")
    for m in data["models"]:
        prod = m["production"]
        head = (f'Production version <code class="production">{esc(prod["version"][:12])}</code> since '
                f'{esc(str(prod["since"]))} ({esc(str(prod["action"]))} by {esc(str(prod.get("actor")))})'
                if prod else "Nothing in production yet")
        current = prod["version"] if prod else None
        rows = [[("&#9733; " if v["version"] == current else "") + f"<code>{esc(v['version'][:12])}</code>",
                 esc(str(v["registered_at"])), esc(str(v["gate_outcome"])), esc(str(v["approver"])),
                 esc(f"{v['balanced_accuracy']:.4f}" if v["balanced_accuracy"] is not None else "n/a"),
                 f'<a href="{run_report_path(v["dag_id"], v["run_id"])}">report</a>' if v.get("run_id") else ""]
                for v in m["versions"]]
        parts.append(f"<h2>Model {esc(m['name'])}</h2><p>{head}</p>"
                     + table("versions", ["version", "registered", "gate", "approver", "balanced accuracy", ""], rows))
    if data["audits"]:
        parts.append("<h2>Nightly audits</h2>" + charts.inline_png(
            charts.audit_trend(data["audits"], thresholds), "trend of the audited fairness metrics", "trend"))
        rows = [[esc(a["date"]), f'<span class="status {esc(a["status"])}">{esc(a["status"])}</span>',
                 esc(str(a["rows"])), esc("; ".join(a.get("reasons") or [])[:300]),
                 f'<a href="report/audit/{esc(a["date"])}">report</a>'] for a in reversed(data["audits"])]
        parts.append(table("audits", ["date", "status", "predictions", "reasons", ""], rows))
    else:
        parts.append("<h2>Nightly audits</h2><p>No audits yet: <code>fairgate_audit</code> has not run.</p>")
    rows = [[esc(str(d["recorded_at"])), esc(str(d["decision"])), esc(str(d["gate"])),
             esc("; ".join(d["reasons"])[:300]),
             f'<a href="{run_report_path(d["dag_id"], d["run_id"])}">report</a>'] for d in data["decisions"]]
    parts.append("<h2>Recent lifecycle decisions</h2>"
                 + table("decisions", ["recorded", "decision", "gate", "reasons", ""], rows))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Fairgate: fairness overview</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:80em}}table{{border-collapse:collapse;margin:.5em 0 1.5em}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}}img{{max-width:100%}}
.degraded{{color:#b00;font-weight:bold}}.healthy{{color:#070}}.who{{color:#666}}</style></head>
<body>{''.join(parts)}</body></html>"""
