"""Scoring a day's records: decisions, scores and plain-language reasons, as the prediction log's rows.

Pure: a model and a frame in, the log rows (and the outcomes, when the records carry them) out.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any

from fairgate.errors import GroupError, StageError
from fairgate.groups import group_codes, labels
from fairgate.models import explain, training
from fairgate.monitoring import review_triggers as triggers
from fairgate.monitoring.columns import LABEL_COLUMN

if TYPE_CHECKING:
    import pandas as pd

    from fairgate.policy.schema import Policy

REASONS = 3  # plain-language reasons stored with each prediction


def check_records(records: pd.DataFrame, policy: Policy, day: date) -> None:
    """Refuse records that cannot be scored and audited, naming the key or column."""
    if policy.dataset.row_key is None:
        raise StageError("Policy key 'dataset.row_key' is required to join predictions with later outcomes.")
    if len(records) == 0:
        raise StageError(f"No incoming records for {day}: nothing to score.")
    try:
        group_codes(records, policy)
    except GroupError as exc:
        raise StageError(str(exc)) from None
    missing = [c for c in (policy.dataset.row_key, *policy.features) if c not in records.columns]
    if missing:
        raise StageError(f"Incoming records for {day} lack the model's input column(s) {missing}; nothing scored.")


def unseen_categories(records: pd.DataFrame, training: pd.DataFrame, policy: Policy) -> dict[str, dict[str, object]]:
    """Per category input, the records whose value the training rows never held: how many, and up to five
    of the values (the server refuses such a record; a batch scores it, and its summary says so here)."""
    out: dict[str, dict[str, object]] = {}
    for col in policy.categorical:
        if col in records.columns and col in training.columns:
            known = set(training[col].dropna().astype(str))
            values = records[col].dropna().astype(str)
            new = values[~values.isin(known)]
            if len(new):
                out[col] = {"rows": len(new), "values": sorted(new.unique().tolist())[:5]}
    return out


def score_records(
    model: Any,
    records: pd.DataFrame,
    policy: Policy,
    *,
    version: str,
    reference: dict[str, Any],
    ranges: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The prediction log rows for ``records`` and, when they carry the label, their outcomes.

    The simulated feed knows the outcomes already; the audit only uses them once
    ``audit.label_lag_days`` have passed, the way real outcomes arrive. With review triggers in the
    policy, each row also carries its ``review_status`` and ``review_reasons``
    (:mod:`fairgate.monitoring.review_triggers`; ``ranges`` are the production model's training ranges).
    """

    assert policy.dataset.row_key is not None  # check_records
    if policy.model.selection != "threshold":  # decisions by rank: the cutoff of this day's scores
        policy = training.at_cutoff(
            policy, training.rank_cutoff(training.predict(model, records, policy)[0], policy, day=True)
        )
    scores, decisions, reasons = explain.explained(model, records, policy, reference, top=REASONS)
    keep = [
        policy.dataset.row_key,
        *policy.protected_columns,
        *[c for c in policy.features if c not in policy.protected_columns],
    ]
    log = records[keep].reset_index(drop=True)
    log.insert(1, "model_version", version)
    log["score"] = scores
    log["decision"] = decisions
    for i in range(REASONS):
        log[f"reason_{i + 1}"] = [r[i]["text"] if len(r) > i else None for r in reasons]
    log["reasons"] = [json.dumps(r, default=str) for r in reasons]
    if policy.reviews_before_harm:
        why = triggers.reasons(records.reset_index(drop=True), scores, policy, ranges=ranges)
        log["review_status"] = triggers.queue(scores, why, policy)
        log["review_reasons"] = [json.dumps(r) for r in why]
    outcomes = None
    if policy.dataset.label in records.columns:
        outcomes = records[[policy.dataset.row_key]].reset_index(drop=True)
        outcomes[LABEL_COLUMN] = labels(records, policy)
    return log, outcomes
