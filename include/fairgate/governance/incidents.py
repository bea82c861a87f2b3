"""Incidents: an ethical breach on record, with its reporting clock, its owner and what was done about it.

An incident is opened by the nightly audit (a degraded audit, when ``incidents.open_on_degraded_audit``;
an overturn rate of reviewed decisions above ``incidents.max_overturn_rate``) or by a person
(``fairgate incidents open --what ...``). It lives in the model's evidence log, the one store of
record, as a sequence of records:

- ``incident``: opened: what was seen, where (the audit or the person), the owner
  (``owners.monitoring``), the severity (``impact_assessment.severity``), the reporting clock and
  its deadline;
- ``incident_action``: a rollback, a retraining or a note, with who did it;
- ``incident_overdue``: the sweep found it still open after its deadline (once per incident);
- ``incident_closed``: closed with a rationale, by whom.

:func:`incidents` reads every incident's state back from those records. The reporting clocks are
the EU AI Act's for a serious incident (Art. 73): at most 15 days after becoming aware of it, 2 days
for a widespread infringement, 10 days in the event of a person's death; ``incidents.clock`` says
which one an incident the audit opens starts. :func:`sweep` is what enforces them: the audit DAG
runs it every night and its task fails, naming each overdue incident, until they are closed.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, TypedDict

from fairgate.errors import InputError
from fairgate.governance import evidence
from fairgate.pages import render_markdown

if TYPE_CHECKING:
    from fairgate.policy.schema import Policy
    from fairgate.storage.base import ArtifactStore

Clock = Literal["serious", "widespread", "death"]
CLOCK_DAYS: dict[str, int] = {"serious": 15, "widespread": 2, "death": 10}  # EU AI Act Art. 73(2)-(4)
ACTIONS = ("rollback", "retraining", "note")


class Action(TypedDict):
    action: str
    note: str
    by: str
    at: str


class Incident(TypedDict):
    """One incident as its records say it stands (:func:`incidents`)."""

    incident_id: str
    model: str
    opened_at: str
    opened_by: str
    source: str  # audit_degraded | overturn_rate | reported
    link: str  # the audit date, or what the person referred to
    version: str | None  # the version in production it concerns
    seen: list[str]
    owner: str | None
    severity: str | None
    clock: str
    due: str
    status: Literal["open", "closed"]
    overdue: bool  # past its deadline while open (or closed after it)
    actions: list[Action]
    closed_at: str | None
    closed_by: str | None
    rationale: str | None


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def incident_id(model: str, source: str, link: str) -> str:
    """A stable id: the same audit opens the same incident, however often it is re-run."""
    return "inc-" + hashlib.sha256(f"{model}/{source}/{link}".encode()).hexdigest()[:10]


def open_incident(
    store: ArtifactStore,
    policy: Policy,
    *,
    source: str,
    link: str,
    seen: list[str],
    opened_by: str = "fairgate (nightly audit)",
    clock: str | None = None,
    version: str | None = None,
    now: datetime | None = None,
) -> Incident:
    """Open an incident (or return the one already opened for the same ``source`` and ``link``)."""
    chosen = clock or policy.incidents.clock
    if chosen not in CLOCK_DAYS:
        raise InputError(f"Incident clock {chosen!r} is not one of {sorted(CLOCK_DAYS)}.")
    if not any(s.strip() for s in seen):
        raise InputError("An incident needs a description of what was seen (--what).")
    model = policy.model_name
    ident = incident_id(model, source, link)
    opened = _now(now)
    evidence.append(
        store,
        model,
        {
            "kind": "incident",
            "incident_id": ident,
            "opened_at": opened.isoformat(),
            "opened_by": opened_by,
            "source": source,
            "link": link,
            "version": version,
            "seen": [s for s in seen if s.strip()][:20],
            "owner": policy.owners.monitoring,
            "severity": policy.impact_assessment.severity,
            "clock": chosen,
            "due": (opened + timedelta(days=CLOCK_DAYS[chosen])).isoformat(),
        },
        key=f"incident/{ident}",
    )
    return _one(store, model, ident)


def _record_on_open(
    store: ArtifactStore, model: str, ident: str, record: dict[str, str], *, if_closed: str, key: str | None = None
) -> Incident:
    """Append ``record`` about incident ``ident`` if it is open (else refuse with ``if_closed``); its new state."""
    found = _one(store, model, ident)
    if found["status"] != "open":
        raise InputError(if_closed.format(**found))
    evidence.append(store, model, {**record, "incident_id": ident}, key=key)
    return _one(store, model, ident)


def act(store: ArtifactStore, model: str, ident: str, *, action: str, note: str, by: str) -> Incident:
    """Record what was done about an open incident: a rollback, a retraining, or a note."""
    if action not in ACTIONS:
        raise InputError(f"An incident action is one of {list(ACTIONS)}. Got {action!r}.")
    return _record_on_open(
        store,
        model,
        ident,
        {"kind": "incident_action", "action": action, "note": note.strip(), "by": by},
        if_closed=f"Incident {ident} is closed; open a new one to record more.",
    )


def close(store: ArtifactStore, model: str, ident: str, *, rationale: str, by: str) -> Incident:
    """Close an open incident; the rationale (what was found and done) is required."""
    if not rationale.strip():
        raise InputError(f"Closing incident {ident} needs a rationale: what was found, and what was done.")
    return _record_on_open(
        store,
        model,
        ident,
        {"kind": "incident_closed", "rationale": rationale.strip(), "by": by},
        if_closed=f"Incident {ident} was closed already, on {{closed_at}} by {{closed_by}}.",
        key=f"incident_closed/{ident}",
    )


def sweep(store: ArtifactStore, model: str, *, now: datetime | None = None) -> list[Incident]:
    """The open incidents past their deadline; each is recorded overdue once (``incident_overdue``)."""
    at = _now(now)
    late = [i for i in incidents(store, model) if i["status"] == "open" and datetime.fromisoformat(i["due"]) < at]
    for i in late:
        evidence.append(
            store,
            model,
            {"kind": "incident_overdue", "incident_id": i["incident_id"], "due": i["due"], "found_at": at.isoformat()},
            key=f"incident_overdue/{i['incident_id']}",
        )
    return [_one(store, model, i["incident_id"]) for i in late]


def incidents(store: ArtifactStore, model: str) -> list[Incident]:
    """Every incident of ``model``, oldest first, as its records in the evidence log say it stands."""
    out: dict[str, Incident] = {}
    for entry in evidence.entries(store, model):
        rec, at = entry["record"], str(entry["record"].get("recorded_at"))
        kind, ident = rec.get("kind"), rec.get("incident_id")
        if kind == "incident" and isinstance(ident, str):
            out[ident] = {
                "incident_id": ident,
                "model": model,
                "opened_at": rec["opened_at"],
                "opened_by": rec["opened_by"],
                "source": rec["source"],
                "link": rec["link"],
                "version": rec.get("version"),
                "seen": list(rec["seen"]),
                "owner": rec.get("owner"),
                "severity": rec.get("severity"),
                "clock": rec["clock"],
                "due": rec["due"],
                "status": "open",
                "overdue": False,
                "actions": [],
                "closed_at": None,
                "closed_by": None,
                "rationale": None,
            }
        elif isinstance(ident, str) and ident in out:
            found = out[ident]
            if kind == "incident_action":
                found["actions"].append({"action": rec["action"], "note": rec["note"], "by": rec["by"], "at": at})
            elif kind == "incident_overdue":
                found["overdue"] = True
            elif kind == "incident_closed":
                found["status"], found["closed_at"] = "closed", at
                found["closed_by"], found["rationale"] = rec["by"], rec["rationale"]
                found["overdue"] = found["overdue"] or at > found["due"]
    return list(out.values())


def _one(store: ArtifactStore, model: str, ident: str) -> Incident:
    for found in incidents(store, model):
        if found["incident_id"] == ident:
            return found
    known = [i["incident_id"] for i in incidents(store, model)]
    raise InputError(f"No incident {ident!r} for model {model!r}; its incidents are {known}.")


def describe(found: Incident) -> str:
    """One incident in a line or two, for the CLI and the alert."""
    state = "OVERDUE" if found["overdue"] and found["status"] == "open" else found["status"]
    head = (
        f"{found['incident_id']} [{state}] {found['source']} ({found['link']}), opened {found['opened_at'][:16]} "
        f"by {found['opened_by']}; owner {found['owner'] or 'not named (owners.monitoring)'}; severity "
        f"{found['severity'] or 'not assessed'}; {found['clock']} clock, due {found['due'][:16]}"
    )
    lines = [head, *(f"    seen: {s}" for s in found["seen"][:3])]
    lines += [f"    {a['action']} by {a['by']} at {a['at'][:16]}: {a['note']}" for a in found["actions"]]
    if found["status"] == "closed":
        lines.append(f"    closed {str(found['closed_at'])[:16]} by {found['closed_by']}: {found['rationale']}")
    return "\n".join(lines)


def monitoring_plan(policy: Policy) -> str:
    """The post-market monitoring plan (EU AI Act Art. 72) the policy amounts to, in Markdown: what is
    measured, how often, against which thresholds, who owns it, and what opens an incident."""
    return render_markdown(
        "monitoring_plan.md.j2",
        model=policy.model_name,
        schedule=policy.schedule.model_dump(),
        audit=policy.audit,
        thresholds=[f"{t.metric} {t.describe()}" for t in policy.fairness.bounds],
        confidence=f"{policy.fairness.confidence_level:.0%}",
        alpha=f"{1 - policy.fairness.confidence_level:.2g}",
        protected=list(policy.protected_columns),
        intersections=[" × ".join(c) for c in policy.intersections],
        recourse_gap=policy.recourse.max_share_gap,
        triggers=policy.reviews_before_harm,
        owners=policy.owners.model_dump(),
        incidents=policy.incidents,
        clock_days=CLOCK_DAYS,
    )
