"""How long the prediction log keeps decisions and their explanations: ``audit.retention_days``.

:func:`apply` removes each scored day (``predictions/model=M/date=D/``) older than the retention
period, except a day still inside the audit's window (``window_days`` plus ``label_lag_days``: its
outcomes may yet arrive and it is still judged) and a day with an open contest or review (its case
points at the decision). What was removed and what was kept past the period, with why, is appended
to the evidence log as a ``retention`` record; a night with nothing to remove appends nothing. The
evidence log, the cases and the audits themselves are kept: they are the record of what was
decided. Served decisions (``online`` parts and compacted files) are kept and removed with their
day. With ``audit.log_table``, the table's rows of those days are deleted too (both channels),
under the same exceptions.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TypedDict

from fairgate.governance import cases, evidence
from fairgate.monitoring import log_table
from fairgate.policy.schema import Policy
from fairgate.storage.base import ArtifactStore

PREFIX = "predictions/model={model}/date="


class Retention(TypedDict):
    cutoff: str  # days before this are past the retention period
    retention_days: int
    removed: list[str]
    kept: dict[str, str]  # a day past the period that was kept, and why
    seq: int | None  # the evidence record (None when nothing was past the period)


def scored_days(store: ArtifactStore, model: str) -> dict[str, list[str]]:
    """Each scored day of the prediction log and its keys."""
    prefix = PREFIX.format(model=model)
    out: dict[str, list[str]] = {}
    for key in store.list(prefix):
        day = key[len(prefix) :].split("/", 1)[0]
        out.setdefault(day, []).append(key)
    return out


def apply(store: ArtifactStore, policy: Policy, today: date, *, run_id: str) -> Retention:
    """Remove the prediction-log days past ``audit.retention_days`` (see the module) and record it."""
    model, audit = policy.model_name, policy.audit
    cutoff = today - timedelta(days=audit.retention_days)
    window_start = today - timedelta(days=audit.window_days + audit.label_lag_days)
    open_cases = {c["date"] for c in cases.cases_of(store, model) if c.get("outcome") is None}
    removed: list[str] = []
    kept: dict[str, str] = {}
    for day, keys in sorted(scored_days(store, model).items()):
        if day >= cutoff.isoformat():
            continue
        if day >= window_start.isoformat():
            kept[day] = f"inside the audit window (from {window_start.isoformat()})"
        elif day in open_cases:
            kept[day] = "a contest or review of one of its decisions is open"
        else:
            for key in keys:
                store.delete(key)
            removed.append(day)
    if audit.log_table:  # the table's days under the same rule (a day inside the window is never past the cutoff
        # when window_days + label_lag_days < retention_days; kept by name otherwise)
        window = {(window_start + timedelta(days=i)).isoformat() for i in range((cutoff - window_start).days + 1)}
        for day in log_table.expire(policy, cutoff, keep=window | open_cases):
            if day not in removed:
                removed.append(day)
        removed.sort()
    seq = None
    if removed or kept:
        seq = evidence.append(
            store,
            model,
            {
                "kind": "retention",
                "run_id": run_id,
                "date": today.isoformat(),
                "retention_days": audit.retention_days,
                "cutoff": cutoff.isoformat(),
                "removed": removed,
                "kept": kept,
            },
            key=f"retention/{today.isoformat()}/{run_id}",
        )["seq"]
    return {
        "cutoff": cutoff.isoformat(),
        "retention_days": audit.retention_days,
        "removed": removed,
        "kept": kept,
        "seq": seq,
    }
