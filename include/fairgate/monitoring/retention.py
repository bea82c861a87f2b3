"""How long the prediction log keeps decisions and their explanations: ``audit.retention_days``.

:func:`apply` removes each scored day (``predictions/model=M/date=D/``) older than the retention
period, except a day still inside the audit's window (``window_days`` plus ``label_lag_days``: its
outcomes may yet arrive and it is still judged) and a day with an open contest or review (its case
points at the decision). What will be removed (each file with its sha256) and what was kept past the
period, with why, is appended to the evidence log as a ``retention`` record *before* anything is
deleted, and a ``retention_done`` record follows the deletion; a night with nothing past the period
appends nothing. The cut-off never counts from a date after today's (a run dated in the future removes
nothing and says so). The
evidence log, the cases and the audits themselves are kept: they are the record of what was
decided. Served decisions (``online`` parts and compacted files) are kept and removed with their
day. With ``audit.log_table``, the table's rows of those days are deleted too (both channels),
under the same exceptions.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import TypedDict

from fairgate.errors import NotFoundError
from fairgate.governance import evidence
from fairgate.monitoring import cases, log_table
from fairgate.policy.schema import Policy
from fairgate.storage import layout
from fairgate.storage.base import ArtifactStore, sha256_bytes

log = logging.getLogger(__name__)


class Retention(TypedDict):
    cutoff: str  # days before this are past the retention period
    retention_days: int
    removed: list[str]
    kept: dict[str, str]  # a day past the period that was kept, and why
    seq: int | None  # the evidence record of the intent (None when nothing was past the period)
    refused: str | None  # why nothing was removed at all (a run dated after today)


def scored_days(store: ArtifactStore, model: str) -> dict[str, list[str]]:
    """Each scored day of the prediction log and its keys."""
    out: dict[str, list[str]] = {}
    for key in store.list(layout.days_prefix("predictions", model)):
        out.setdefault(layout.day_of(key), []).append(key)
    return out


def apply(store: ArtifactStore, policy: Policy, today: date, *, run_id: str, now: date | None = None) -> Retention:
    """Remove the prediction-log days past ``audit.retention_days`` (see the module) and record it.

    The cut-off is counted from ``today`` (the run's date) but never from a date after ``now`` (the wall
    clock, UTC): a run dated in the future removes nothing and says so. The intent is recorded first
    (each day to remove, each file with its sha256), then the files are deleted, then a
    ``retention_done`` record confirms it; a retry of the same run finishes the intent it recorded.
    """
    model, audit = policy.model_name, policy.audit
    now = now or datetime.now(UTC).date()
    cutoff = today - timedelta(days=audit.retention_days)
    if today > now:
        why = (
            f"the run is dated {today.isoformat()}, after today ({now.isoformat()}): retention counts from the wall "
            "clock, never from a date to come, so nothing was removed"
        )
        log.warning("Retention of %s refused: %s", model, why)
        return _result(cutoff, audit.retention_days, [], {}, None, refused=why)
    key = f"retention/{today.isoformat()}/{run_id}"
    intent = _recorded_intent(store, model, key)
    if intent is None:
        planned = _plan(store, policy, today, cutoff, run_id=run_id)
        if planned is None:
            return _result(cutoff, audit.retention_days, [], {}, None)
        intent = evidence.append(store, model, planned, key=key)
    rec = intent["record"]
    for day_files in rec["files"].values():
        for stored in day_files:
            try:
                store.delete(stored)
            except NotFoundError:  # deleted by the try this one retries
                pass
    log_table_days = rec.get("table_days") or []
    if audit.log_table and log_table_days:
        log_table.delete_days(policy, log_table_days)
    evidence.append(
        store,
        model,
        {"kind": "retention_done", "run_id": run_id, "intent_seq": intent["seq"], "removed": rec["removed"]},
        key=f"{key}/done",
    )
    return _result(rec["cutoff"], rec["retention_days"], rec["removed"], rec["kept"], intent["seq"])


def _recorded_intent(store: ArtifactStore, model: str, key: str) -> evidence.Entry | None:
    """The intent an earlier try of this run recorded, if it did (a retry finishes it, nothing else)."""
    for entry in evidence.recent(store, model, "retention", last=20):
        if entry["record"].get("idempotency_key") == key:
            return entry
    return None


def _plan(store: ArtifactStore, policy: Policy, today: date, cutoff: date, *, run_id: str) -> dict[str, object] | None:
    """The intent record: the days to remove (each file and its sha256) and those kept with why."""
    model, audit = policy.model_name, policy.audit
    window_start = today - timedelta(days=audit.window_days + audit.label_lag_days)
    open_cases = {c["date"] for c in cases.cases_of(store, model) if c.get("outcome") is None}
    removed: list[str] = []
    kept: dict[str, str] = {}
    files: dict[str, dict[str, str]] = {}
    for day, keys in sorted(scored_days(store, model).items()):
        if day >= cutoff.isoformat():
            continue
        if day >= window_start.isoformat():
            kept[day] = f"inside the audit window (from {window_start.isoformat()})"
        elif day in open_cases:
            kept[day] = "a contest or review of one of its decisions is open"
        else:
            files[day] = {k: sha256_bytes(store.get(k)) for k in keys}
            removed.append(day)
    table_days: list[str] = []
    if audit.log_table:  # the table's days under the same rule
        window = {(window_start + timedelta(days=i)).isoformat() for i in range((cutoff - window_start).days + 1)}
        table_days = [d for d in log_table.days_before(policy, cutoff) if d not in window | open_cases]
        removed = sorted({*removed, *table_days})
    if not removed and not kept:
        return None
    return {
        "kind": "retention",
        "run_id": run_id,
        "date": today.isoformat(),
        "retention_days": audit.retention_days,
        "cutoff": cutoff.isoformat(),
        "removed": removed,
        "kept": kept,
        "files": files,
        "table_days": table_days,
    }


def _result(
    cutoff: date | str,
    days: int,
    removed: list[str],
    kept: dict[str, str],
    seq: int | None,
    *,
    refused: str | None = None,
) -> Retention:
    return {
        "cutoff": cutoff if isinstance(cutoff, str) else cutoff.isoformat(),
        "retention_days": days,
        "removed": removed,
        "kept": kept,
        "seq": seq,
        "refused": refused,
    }
