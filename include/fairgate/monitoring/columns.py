"""Column names and row shapes of the prediction log that its writers (scoring, the model server, SQL tables)
and readers (the audit, contests) share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from fairgate.models.explain import Reason

LABEL_COLUMN = "outcome"  # the outcome of a scored record, once it has arrived: 1 favourable, 0 not


class Prediction(TypedDict):
    """One logged decision, found by its row key."""

    row: str
    date: str
    model_version: str
    score: float
    decision: int
    reasons: list[Reason]
    inputs: dict[str, Any]  # the record's inputs and protected columns, as logged


def as_prediction(rec: Mapping[str, Any], row: str, day: str, inputs: list[str]) -> Prediction:
    """A logged row (a Parquet record or a table's row) as a :class:`Prediction`."""
    return {
        "row": str(row),
        "date": day,
        "model_version": rec["model_version"],
        "score": float(rec["score"]),
        "decision": int(rec["decision"]),
        "reasons": json.loads(rec["reasons"]) if rec.get("reasons") else [],
        "inputs": {c: rec[c].item() if hasattr(rec[c], "item") else rec[c] for c in inputs},
    }
