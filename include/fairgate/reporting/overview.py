"""The Fairness view: models, the production version, recent decisions and audits on one page.

The data comes from the artifact store only (registry, evidence log, audits), so the page shows
what was recorded and nothing the metadata DB might have lost. :func:`overview` gathers it as a
dict (also served as JSON); :func:`fairgate.reporting.report.overview_html` renders it.

Each model's page data is kept in ``index/<model>/overview.json``, derived from the evidence
log and never authoritative: it names the last evidence entry it has read (``seq``), and a
request reads only the entries appended since (by their key, so nothing is listed) and the
production pointer, which is always read fresh. The versions are those the log's lifecycle
runs registered (each run's model, looked up once in the registry). A missing, corrupt or
newer-than-the-log index is rebuilt from the log. Writers need not know about it: whoever reads
the page next catches up. Models are summarised in parallel threads, since on S3 each is a few
round trips.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import TYPE_CHECKING, Any, TypedDict, cast

from fairgate.errors import ConflictError, NotFoundError, RegistryError, StoreConfigError, StoreError
from fairgate.governance import evidence, registry
from fairgate.governance.records import JSONObject, LifecycleRecord
from fairgate.monitoring.audit import AuditResult

if TYPE_CHECKING:
    from fairgate.storage.base import ArtifactStore

KEEP = 100  # decisions and audit dates the index holds (the page shows fewer)
log = logging.getLogger(__name__)


def index_key(model: str) -> str:
    return f"index/{model}/overview.json"


def models(store: ArtifactStore) -> list[str]:
    """Every model the store holds anything of: registered versions or an evidence log."""
    return sorted(set(store.folders("registry/")) | set(evidence.models(store)))


class DecisionRow(TypedDict):
    """One lifecycle run as the page lists it."""

    seq: int
    dag_id: str
    run_id: str
    decision: str
    recorded_at: str | None
    gate: str | None
    reasons: list[str]
    exception: bool  # the run overrode the policy's thresholds (a recorded exception)


class VersionRow(TypedDict):
    """One registered version as the page lists it."""

    version: str
    registered_at: str | None
    gate_outcome: str | None
    approver: str | None
    balanced_accuracy: float | None
    run_id: str | None
    dag_id: str | None


class IncidentRow(TypedDict):
    incident_id: str
    opened_at: str
    source: str
    link: str
    seen: str
    owner: str | None
    due: str
    status: str  # open | closed
    overdue: bool


class Index(TypedDict):
    """``index/<model>/overview.json``: the page data derived from the evidence log up to entry ``seq``."""

    seq: int
    decisions: list[DecisionRow]  # newest first
    audits: dict[str, AuditResult]  # by date; the summary keys only
    versions: dict[str, VersionRow]  # by sha256
    incidents: dict[str, IncidentRow]  # by id (fairgate.governance.incidents)


class ModelOverview(TypedDict):
    name: str
    production: dict[str, Any] | None
    versions: list[VersionRow]
    decisions: list[DecisionRow]
    audits: list[AuditResult]
    incidents: list[IncidentRow]  # the open ones, oldest first


class Overview(TypedDict):
    models: list[ModelOverview]


def _empty() -> Index:
    return {"seq": 0, "decisions": [], "audits": {}, "versions": {}, "incidents": {}}


def _decision(seq: int, rec: LifecycleRecord) -> DecisionRow:
    return {
        "seq": seq,
        "dag_id": rec.dag_id,
        "run_id": rec.run_id,
        "decision": rec.decision,
        "recorded_at": rec.recorded_at,
        "gate": rec.gate.outcome if rec.gate else None,
        "reasons": rec.gate.reasons[:3] if rec.gate else [],
        "exception": bool(rec.overrides),
    }


def _audit(store: ArtifactStore, rec: JSONObject) -> AuditResult:
    """The audit's summary as stored in its audit.json (the record keeps only its status and reasons)."""
    try:
        full = json.loads(store.get(store.key_of(rec["audit_uri"])))
    except (NotFoundError, KeyError, ValueError):
        full = rec
    return {
        "date": full.get("date"),
        "status": full.get("status"),
        "rows": full.get("rows"),
        "labeled_rows": full.get("labeled_rows"),
        "reasons": full.get("reasons"),
        "fairness": full.get("fairness"),
    }


def _version(manifest: registry.Manifest) -> VersionRow:
    return {
        "version": manifest["version"],
        "registered_at": manifest.get("registered_at"),
        "gate_outcome": manifest.get("gate_outcome"),
        "approver": manifest.get("approver"),
        "balanced_accuracy": (manifest.get("performance") or {}).get("balanced_accuracy"),
        "run_id": manifest.get("run_id"),
        "dag_id": manifest.get("dag_id"),
    }


def _read_index(store: ArtifactStore, model: str) -> tuple[Index, str | None]:
    empty = _empty()
    try:
        data, etag = store.get_with_etag(index_key(model))
    except NotFoundError:
        return empty, None
    try:
        index = json.loads(data)
    except ValueError:
        return empty, etag  # corrupt: rebuilt, and written over by compare-and-swap
    if isinstance(index, dict) and not set(empty) - set(index):
        return cast("Index", index), etag  # of the shape this module writes
    return empty, etag


def summary(store: ArtifactStore, model: str) -> Index:
    """One model's page data (newest decisions first, audits by date, versions by sha256), brought up to date."""

    index, etag = _read_index(store, model)
    head = evidence.head(store, model)["seq"]
    if index["seq"] > head:  # a log that is shorter than the index: not the log it was built from
        index = _empty()
    changed = index["seq"] < head
    for seq in range(index["seq"] + 1, head + 1):
        entry = evidence.entry(store, model, seq)
        rec = entry["record"]
        if rec.get("kind") == "lifecycle":
            run = LifecycleRecord.from_json(rec)
            index["decisions"] = [_decision(seq, run), *index["decisions"]][:KEEP]
            version = run.model.sha256 if run.model else None
            if version and version not in index["versions"]:
                try:
                    index["versions"][version] = _version(registry.read_manifest(store, model, version))
                except RegistryError:
                    pass  # a rejected run's model: never registered
        elif rec.get("kind") == "incident" and isinstance(rec.get("incident_id"), str):
            index["incidents"][rec["incident_id"]] = {
                "incident_id": rec["incident_id"],
                "opened_at": str(rec.get("opened_at")),
                "source": str(rec.get("source")),
                "link": str(rec.get("link")),
                "seen": "; ".join(rec.get("seen") or [])[:300],
                "owner": rec.get("owner"),
                "due": str(rec.get("due")),
                "status": "open",
                "overdue": False,
            }
        elif (
            rec.get("kind") in ("incident_overdue", "incident_closed") and rec.get("incident_id") in index["incidents"]
        ):
            row = index["incidents"][rec["incident_id"]]
            if rec["kind"] == "incident_overdue":
                row["overdue"] = True
            else:
                row["status"] = "closed"
        elif rec.get("kind") == "audit" and rec.get("date"):
            index["audits"][rec["date"]] = _audit(store, rec)  # a re-run of a date replaces it
            index["audits"] = dict(sorted(index["audits"].items())[-KEEP:])
        index["seq"] = seq
    if changed:
        try:
            store.swap(index_key(model), json.dumps(index, sort_keys=True).encode(), expected_etag=etag)
        except ConflictError:
            pass  # another request wrote it first; both derived it from the same log
        except (StoreError, StoreConfigError) as exc:  # e.g. read-only credentials: served, not kept
            log.warning(
                "The Fairness view's index of %s was not written (%s); the next request reads the log again.",
                model,
                exc,
            )
    return index


def overview(
    store: ArtifactStore, *, today: date, decisions: int = 20, audits: int = 30, only: list[str] | None = None
) -> Overview:
    """Per model (of ``only``, when given): the production version, every version, recent lifecycle
    decisions and audits."""
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> ModelOverview:
        pointer, _ = registry.read_pointer(store, name)
        index = summary(store, name)
        dated = [a for d, a in sorted(index["audits"].items()) if d <= today.isoformat()]
        return {
            "name": name,
            "production": pointer and {k: pointer.get(k) for k in ("version", "since", "action", "run_id", "actor")},
            "versions": sorted(index["versions"].values(), key=lambda v: v.get("registered_at") or "", reverse=True),
            "decisions": index["decisions"][:decisions],
            "audits": dated[-audits:],
            "incidents": [i for i in index["incidents"].values() if i["status"] == "open"],
        }

    names = [n for n in models(store) if only is None or n in only]
    with ThreadPoolExecutor(max_workers=min(16, len(names) or 1)) as pool:
        return {"models": list(pool.map(one, names))}
