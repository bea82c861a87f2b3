"""The deployed model in use: daily scoring into the prediction log.

```
predictions/date=YYYY-MM-DD/part.parquet   row key, model version, score, decision, reasons, protected
                                            attributes and the features drift is measured on
labels/date=YYYY-MM-DD/part.parquet        outcomes of that day's predictions, joined by row key once
                                            audit.label_lag_days have passed
```

Every write replaces its partition atomically, so re-running a day (a retry or a backfill)
gives the same files, never duplicates.
"""

from __future__ import annotations

import io
import json
from datetime import date
from typing import TYPE_CHECKING, Any

from fairgate import explain, registry
from fairgate.data import to_parquet_bytes
from fairgate.lifecycle import StageError

if TYPE_CHECKING:
    import pandas as pd

    from fairgate.policy import Policy
    from fairgate.store import ArtifactStore

LABEL_COLUMN = "outcome"


def partition_key(kind: str, day: date) -> str:
    return f"{kind}/date={day.isoformat()}/part.parquet"

def incoming(policy: Policy, day: date, *, scenario: str | None = None) -> pd.DataFrame:
    """The records that arrived on ``day``: the simulated feed, or the ``date=`` partition of a folder."""
    from pathlib import Path

    from fairgate.data import _read_file
    from fairgate.simulation import day_batch

    if policy.audit_incoming.startswith("simulated://"):
        return day_batch(day, policy, scenario=scenario or policy.audit_scenario, rows=policy.audit_daily_rows)
    folder = Path(policy.audit_incoming.removeprefix("file://")) / f"date={day.isoformat()}"
    files = sorted(folder.glob(f"*.{policy.format}"))
    if not files:
        raise StageError(f"Policy key 'audit.incoming': no {policy.format} files in {folder}.")
    import pandas as pd

    return pd.concat([_read_file(f, policy.format) for f in files], ignore_index=True)


REASONS = 3  # plain-language reasons stored with each prediction


def _reference(store: ArtifactStore, policy: Policy, version: str, records: pd.DataFrame) -> dict[str, Any]:
    """The typical record reasons are measured against: the one stored at deployment, else rebuilt."""
    manifest, training_data = deployment_baseline(store, policy, version)
    if manifest.get("reference"):
        return dict(manifest["reference"])
    return explain.reference_record(training_data if training_data is not None else records, policy)


def score_day(store: ArtifactStore, policy: Policy, day: date, records: pd.DataFrame) -> dict[str, Any]:
    """Score ``records`` with the production model and write the day's prediction partition."""
    from fairgate import training
    from fairgate.groups import GroupError, group_codes

    version = registry.production_version(store, policy.model_name)
    if version is None:
        raise StageError(f"No model of {policy.model_name!r} is in production; run fairgate_lifecycle first.")
    model = registry.load_model(store, policy.model_name, version)
    if policy.row_key is None:
        raise StageError("Policy key 'dataset.row_key' is required to join predictions with later outcomes.")
    if len(records) == 0:
        raise StageError(f"No incoming records for {day}: nothing to score.")
    try:
        group_codes(records, policy)
    except GroupError as exc:
        raise StageError(str(exc)) from None
    missing = [c for c in (policy.row_key, *policy.features) if c not in records.columns]
    if missing:
        raise StageError(f"Incoming records for {day} lack the model's input column(s) {missing}; nothing scored.")
    scores, decisions = training.predict(model, records, policy)
    keep = [policy.row_key, *policy.protected_columns, *[c for c in policy.features if c not in
                                                        policy.protected_columns]]
    log = records[keep].reset_index(drop=True)
    log.insert(1, "model_version", version)
    log["score"] = scores
    log["decision"] = decisions
    reasons = explain.reason_codes(model, records, policy, _reference(store, policy, version, records))
    for i in range(REASONS):
        log[f"reason_{i + 1}"] = [r[i]["text"] if len(r) > i else None for r in reasons]
    log["reasons"] = [json.dumps(r, default=str) for r in reasons]
    written = store.put(partition_key("predictions", day), to_parquet_bytes(log))
    out = {"day": day.isoformat(), "rows": len(log), "model_version": version, "uri": written.uri,
           "sha256": written.sha256, "selection_rate": float(decisions.mean())}
    if policy.label in records.columns:
        # The simulated feed knows the outcomes already; the audit only uses them once
        # `audit.label_lag_days` have passed, the way real outcomes arrive.
        outcomes = records[[policy.row_key]].copy()
        outcomes[LABEL_COLUMN] = training.labels(records, policy)
        store.put(partition_key("labels", day), to_parquet_bytes(outcomes))
        out["labels_written"] = True
    return out


def find_prediction(store: ArtifactStore, policy: Policy, row: str, *, day: date | None = None,
                    days: int = 90) -> dict[str, Any] | None:
    """The newest logged prediction for row key ``row`` (on ``day``, or in the last ``days`` partitions)."""
    import pandas as pd

    from fairgate.store import NotFoundError

    if day:
        keys = [partition_key("predictions", day)]
    else:
        keys = [k for k in store.list("predictions/date=") if k.endswith("/part.parquet")][-days:]
    for key in reversed(keys):
        try:
            df = pd.read_parquet(io.BytesIO(store.get(key)))
        except NotFoundError:
            return None
        match = df[df[policy.row_key].astype(str) == str(row)]
        if len(match):
            rec = match.iloc[-1]
            return {"row": str(row), "date": key.split("date=")[1].split("/")[0],
                    "model_version": rec["model_version"], "score": float(rec["score"]),
                    "decision": int(rec["decision"]),
                    "reasons": json.loads(rec["reasons"]) if "reasons" in rec and rec["reasons"] else []}
    return None


def deployment_baseline(store: ArtifactStore, policy: Policy,
                        version: str) -> tuple[dict[str, Any], pd.DataFrame | None]:
    """The deployment manifest and the training snapshot it was built from (for drift baselines)."""
    from fairgate.store import NotFoundError, sha256_bytes

    manifest = registry.read_manifest(store, policy.model_name, version)
    key = manifest.get("data_key")
    try:
        data = store.get(key) if key else None
    except NotFoundError:
        data = None
    if data is None or sha256_bytes(data) != manifest.get("data_sha256"):
        return manifest, None  # reported by the caller as "drift not measured"
    import pandas as pd

    return manifest, pd.read_parquet(io.BytesIO(data))


def score(store: ArtifactStore, policy: Policy, day: date, *, scenario: str | None = None) -> dict[str, Any]:
    """The scoring stage: the day's incoming records, scored with the production model into the log."""
    return score_day(store, policy, day, incoming(policy, day, scenario=scenario))
