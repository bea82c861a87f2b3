"""The prediction log, outcomes and audits in the artifact store: every read and write of them.

```
predictions/model=M/date=YYYY-MM-DD/part.parquet  row key, model version, score, decision, reasons,
                                                   protected attributes and the features drift is measured on
labels/model=M/date=YYYY-MM-DD/part.parquet       outcomes of that day's predictions, joined by row key once
                                                   audit.label_lag_days have passed
audits/model=M/date=YYYY-MM-DD/audit.json         one audit per logical date (a re-run replaces it)
audits/model=M/date=YYYY-MM-DD/report.html
```

Every path is namespaced by the model (Hive-style ``model=``, so query engines read the folders
as a partition column): one store holds many models' logs, and no model reads another's.

Every write replaces its partition atomically, so re-running a day (a retry or a backfill)
gives the same files, never duplicates.
"""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.contracts import Artifact
from fairgate.data.simulation import day_batch
from fairgate.data.sources import read_location, read_sql, to_parquet_bytes
from fairgate.errors import DataError, NotFoundError, NothingThere, StageError, StoreConfigError
from fairgate.governance import evidence, registry
from fairgate.groups import labels
from fairgate.models import recourse, shapley
from fairgate.monitoring import log_table, served_log
from fairgate.monitoring.audit import AuditResult
from fairgate.monitoring.columns import LABEL_COLUMN, Prediction, as_prediction
from fairgate.storage import layout
from fairgate.storage.base import sha256_bytes

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from fairgate.policy.schema import Policy, SqlSources
    from fairgate.storage.base import ArtifactStore

# Per scored day, each row with a case: its kind and final decision (None while the case is open).
CaseOutcomes = dict[str, dict[str, tuple[str, int | None]]]


def partition_key(kind: str, model: str, day: date) -> str:
    return f"{layout.day_prefix(kind, model, day)}/part.parquet"


def audit_prefix(model: str, day: date | str) -> str:
    return layout.day_prefix("audits", model, day)


def incoming(policy: Policy, day: date, *, scenario: str | None = None) -> pd.DataFrame:
    """The records that arrived on ``day``: the simulated feed, or the ``date=`` partition of a folder."""
    feed = policy.audit.incoming
    if not feed:
        raise StageError(
            f"Policy key 'audit.incoming' is not set for model {policy.model_name!r}: name the folder "
            "(local or s3://) or sql:// connection its records to score arrive in."
        )
    if feed.startswith("simulated://"):
        return day_batch(day, policy, scenario=scenario or policy.audit.scenario, rows=policy.audit.daily_rows)

    try:
        return read_day(
            feed, policy.audit.incoming_query, day, fmt=policy.dataset.format, key="audit.incoming", limits=policy.sql
        )
    except DataError as exc:
        if feed.startswith("sql://"):
            raise
        raise StageError(f"No records to score for {day}: {exc}") from None


def read_day(source: str, query: str | None, day: date, *, fmt: str, key: str, limits: SqlSources) -> pd.DataFrame:
    """One day of a source: ``query`` run with the day as ``:interval_start``/``:interval_end`` for a
    ``sql://`` source, else the ``date=YYYY-MM-DD`` partition of a folder (local or ``s3://``).

    ``key`` is the policy key naming the source (its query is ``<key>_query``), for messages.
    """
    if source.startswith("sql://"):
        from datetime import UTC, datetime, time

        start = datetime.combine(day, time(), tzinfo=UTC)
        return read_sql(source, query or "", (start, start + timedelta(days=1)), key=f"{key}_query", limits=limits)
    return read_location(f"{source.rstrip('/')}/{layout.date_partition(day)}", fmt=fmt, key=key)


def fetch_outcomes(store: ArtifactStore, policy: Policy, day: date) -> list[str]:
    """Copy the outcomes that have arrived at ``audit.outcomes`` into the log, for every day of the window
    ending ``day`` that is past the label lag and has predictions but no outcomes yet.

    A day whose outcomes are not at the source yet is left for a later audit. Returns the days copied.
    """
    import pandas as pd

    source, key = policy.audit.outcomes, policy.dataset.row_key
    if not source or not key:
        return []
    copied = []
    for i in range(policy.audit.window_days - 1, policy.audit.label_lag_days - 1, -1):
        d = day - timedelta(days=i)
        name = policy.model_name
        scored = store.exists(partition_key("predictions", name, d)) or bool(
            store.list(f"{served_log.day_prefix(name, d)}/online")
        )
        if not scored or store.exists(partition_key("labels", name, d)):
            continue
        try:
            rows = read_day(
                source,
                policy.audit.outcomes_query,
                d,
                fmt=policy.dataset.format,
                key="audit.outcomes",
                limits=policy.sql,
            )
        except NothingThere:
            continue  # not arrived yet: a later audit fetches them
        if rows.empty:
            continue
        missing = [c for c in (key, policy.dataset.label) if c not in rows.columns]
        if missing:
            raise StageError(
                f"Policy key 'audit.outcomes': the outcomes of {d} lack column(s) {missing} "
                f"(they have {sorted(map(str, rows.columns))})."
            )
        outcomes = pd.DataFrame({key: rows[key].to_numpy(), LABEL_COLUMN: labels(rows, policy)})
        store.put(partition_key("labels", name, d), to_parquet_bytes(outcomes))
        if policy.audit.log_table:
            log_table.write_outcomes(policy, d, outcomes)
        copied.append(d.isoformat())
    return copied


def write_day(
    store: ArtifactStore, model: str, day: date, log: pd.DataFrame, outcomes: pd.DataFrame | None
) -> Artifact:
    """Replace the day's prediction partition (and its outcomes, when known)."""
    written = store.put(partition_key("predictions", model, day), to_parquet_bytes(log))
    if outcomes is not None:
        store.put(partition_key("labels", model, day), to_parquet_bytes(outcomes))
    return Artifact(key=written.key, uri=written.uri, sha256=written.sha256)


def find_prediction(
    store: ArtifactStore, policy: Policy, row: str, *, day: date | None = None, days: int = 90
) -> Prediction | None:
    """The newest logged decision for row key ``row`` (on ``day``, or in the last ``days`` scored days),
    scored in batch or served online (with ``audit.log_table``, served ones are looked up in that table)."""
    import pandas as pd

    if day:
        scored = [day.isoformat()]
    else:
        scored = sorted({layout.day_of(k) for k in store.list(layout.days_prefix("predictions", policy.model_name))})
        scored = scored[-days:]
    key_col = policy.dataset.row_key or ""
    inputs = list(dict.fromkeys([*policy.features, *policy.protected_columns]))
    online_in_sql = policy.audit.log_table is not None
    found_sql = log_table.find_online(policy, row) if online_in_sql else None
    if found_sql is not None and day is not None and found_sql["date"] != day.isoformat():
        found_sql = None
    for d in reversed(scored):
        if found_sql is not None and found_sql["date"] >= d:  # served on a day at least as recent as any batch day left
            return found_sql
        frames = []
        try:
            frames.append(
                pd.read_parquet(
                    io.BytesIO(store.get(partition_key("predictions", policy.model_name, date.fromisoformat(d))))
                )
            )
        except NotFoundError:
            pass
        online = None if online_in_sql else served_log.read_online(store, served_log.rules_for(store, policy), d)
        if online is not None:
            frames.append(online.sort_values("scored_at"))  # the newest served one last
        for df in reversed(frames):  # a decision served online that day is newer than the day's batch
            match = df[df[key_col].astype(str) == str(row)]
            if len(match):
                rec = match.iloc[-1]
                return as_prediction(
                    {str(k): v for k, v in rec.items()}, row, d, [c for c in inputs if c in match.columns]
                )
    return found_sql


def read_frame(store: ArtifactStore, key: str) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(store.get(key)))


def review_queue_key(model: str, day: date) -> str:
    return f"{layout.day_prefix('reviews', model, day)}/queue.parquet"


def write_review_queue(store: ArtifactStore, policy: Policy, day: date, log: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    """The day's review queue (:func:`review_queue` of the day's batch log), written beside the log."""
    queue = review_queue(policy, log)
    return store.put(review_queue_key(policy.model_name, day), to_parquet_bytes(queue)), queue


def review_queue(policy: Policy, log: pd.DataFrame) -> pd.DataFrame:
    """The decisions of ``log`` pending review (and, with ``above_cap: hold``, those over the cap), most
    borderline first, with the row key, score, decision, groups and why."""
    assert policy.dataset.row_key is not None  # scoring refuses a policy without one
    statuses = ["pending", "over_cap"] if policy.review_triggers.above_cap == "hold" else ["pending"]
    rows = log[log["review_status"].isin(statuses)].copy()
    rows["distance"] = (rows["score"] - policy.model.decision_threshold).abs()
    keep = [
        policy.dataset.row_key,
        "model_version",
        *policy.protected_columns,
        "score",
        "decision",
        "review_status",
        "review_reasons",
        "distance",
    ]
    return rows.sort_values(["distance", policy.dataset.row_key])[keep].reset_index(drop=True)


def recourse_context(store: ArtifactStore, policy: Policy, version: str) -> tuple[Any, dict[str, float], list[str]]:
    """What recourse under ``version`` needs: the model (sha256-checked), the cost unit its gate measured
    on the training split (:func:`fairgate.models.recourse.cost_unit`, kept in the manifest), and the inputs
    its training run flagged as proxies."""
    model = registry.load_model(store, policy.model_name, version)
    manifest = registry.read_manifest(store, policy.model_name, version)
    scale = manifest.get("recourse_cost_unit")
    if not isinstance(scale, dict):  # registered before the manifest kept it: the same unit, from the run's files
        scale = recourse.cost_unit(_training_split(store, policy, version, manifest), policy)
    run = evidence.find(store, policy.model_name, manifest.get("run_id", ""))
    record = run["record"] if run else {}
    attributes = ((record.get("bias") or {}).get("proxies") or {}).get("attributes", {})
    proxies = sorted({c for a in attributes.values() for c in a.get("flagged", [])})
    return model, scale, proxies


def shapley_context(store: ArtifactStore, policy: Policy, version: str) -> tuple[Any, pd.DataFrame]:
    """What Shapley values under ``version`` need: the model (sha256-checked) and the background, a fixed
    sample of its training split (:func:`fairgate.models.shapley.background`, as its gate used)."""
    manifest = registry.read_manifest(store, policy.model_name, version)
    training = _training_split(store, policy, version, manifest)
    return registry.load_model(store, policy.model_name, version), shapley.background(training, seed=policy.model.seed)


def _training_split(store: ArtifactStore, policy: Policy, version: str, manifest: registry.Manifest) -> pd.DataFrame:
    """The training-split rows of ``version``'s snapshot: the split is stored beside the snapshot."""
    import pandas as pd

    _, snapshot = deployment_baseline(store, policy, version)
    folder, _, _ = str(manifest.get("data_key") or "").rpartition("/")
    split = None
    if folder:
        try:
            split = pd.read_parquet(io.BytesIO(store.get(f"{folder}/split.parquet")))["split"].to_numpy()
        except (NotFoundError, StoreConfigError, KeyError):
            split = None
    if snapshot is None or split is None or len(split) != len(snapshot):
        raise StageError(
            f"The training rows of {policy.model_name} version {version[:12]} are missing or changed; "
            "recourse costs are measured in their standard deviations."
        )
    train: pd.DataFrame = snapshot[split == "train"]
    return train


def deployment_baseline(
    store: ArtifactStore, policy: Policy, version: str
) -> tuple[registry.Manifest, pd.DataFrame | None]:
    """The deployment manifest and the training snapshot it was built from (for drift baselines)."""
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


def read_window(
    store: ArtifactStore,
    model: str,
    day: date,
    window_days: int,
    *,
    row_key: str,
    label_lag_days: int = 0,
    case_outcomes: CaseOutcomes | None = None,
    rules: served_log.Rules | None = None,
    quarantined: list[served_log.Quarantined] | None = None,
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Predictions of ``[day - window + 1, day]`` joined with the outcomes that have arrived.

    Returns the rows (without the row key, which the audit does not need row by row),
    the days read and the model versions seen, ordered by the last day each scored: the last one
    scored the newest day, so it is the version the production pointer named at the window's end
    (scoring stamps each prediction with the pointer's version). Outcomes of day ``d`` count as
    arrived when ``d <= day - label_lag_days``; the result does
    not depend on the order in which days were scored or labels were written. Reading and the
    outcome lookup run in Arrow, not in pandas. With ``case_outcomes`` (from
    :func:`fairgate.monitoring.cases.outcomes_by_day`), each day's rows also say which decisions were
    contested or reviewed, and a decision a person overturned counts as the person decided.

    Served decisions are read by ``rules`` (:func:`fairgate.monitoring.served_log.rules_for` of the policy;
    without them, the row key and the registry's versions), and a file that fails them is quarantined and
    listed in ``quarantined``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    def table(key: str, *, text_as_dictionary: bool = False) -> pa.Table:
        data = io.BytesIO(store.get(key))
        dictionary = (
            [
                f.name
                for f in pq.read_schema(data)
                if f.name != row_key and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
            ]
            if text_as_dictionary
            else []
        )
        return pq.read_table(data, read_dictionary=dictionary)

    checks = rules or served_log.Rules(
        model=model, row_key=row_key, versions=served_log.registered_versions(store, model)
    )
    tables: list[pa.Table] = []
    days: list[str] = []
    versions: list[str] = []
    with_cases = case_outcomes
    for i in range(window_days - 1, -1, -1):
        d = day - timedelta(days=i)
        key = partition_key("predictions", model, d)
        parts: list[pa.Table] = []
        if store.exists(key):
            # Text columns other than the key come dictionary-encoded (pandas categoricals): a few values
            # repeated over millions of rows, so grouping, counting and sampling them stay on integer codes.
            batch = table(key, text_as_dictionary=True)
            parts.append(
                batch.append_column("channel", pa.array([served_log.BATCH] * batch.num_rows).dictionary_encode())
            )
        online = served_log.read_online(store, checks, d, quarantined)
        if online is not None:  # decisions served that day, in the order they were made
            online = online.sort_values(["scored_at", "decision_id"]).drop(columns=["scored_at", "decision_id"])
            parts.append(_dictionary_text(pa.Table.from_pandas(online, preserve_index=False), row_key))
        if not parts:
            continue
        t = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
        t = t.cast(pa.schema([f.with_type(pa.string()) if f.name == row_key else f for f in t.schema]))
        label_key = partition_key("labels", model, d)
        if d <= day - timedelta(days=label_lag_days) and store.exists(label_key):
            labels = table(label_key)
            labels = labels.cast(
                pa.schema(
                    [f.with_type(pa.string()) if f.name == row_key else f.with_type(pa.int8()) for f in labels.schema]
                )
            )
            t = t.append_column(LABEL_COLUMN, _outcomes_of(t[row_key], labels, row_key, store.uri(label_key)))
        else:
            t = t.append_column(LABEL_COLUMN, pa.nulls(t.num_rows, pa.int8()))
        if with_cases is not None:
            t = _apply_cases(t, row_key, with_cases.get(d.isoformat(), {}))
        # One version per day's partition; after a redeploy, newer days carry the newer version.
        seen = pc.unique(t["model_version"])  # on the dictionary's codes: nothing decoded
        seen = (seen.dictionary_decode() if pa.types.is_dictionary(seen.type) else seen).to_pylist()
        versions[:] = [v for v in versions if v not in seen] + seen  # by last day scored (rollbacks too)
        tables.append(t.drop_columns([c for c in (row_key,) if c in t.column_names]))
        days.append(d.isoformat())
    if not tables:
        import pandas as pd

        return pd.DataFrame(), days, []
    return pa.concat_tables(tables, promote_options="permissive").to_pandas(), days, versions


def _dictionary_text(t: pa.Table, row_key: str) -> pa.Table:
    """``t`` with its text columns (other than the key) dictionary-encoded, as the batch partitions are read."""
    import pyarrow as pa

    for i, f in enumerate(t.schema):
        if f.name != row_key and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            t = t.set_column(i, f.name, t.column(i).cast(pa.string()).dictionary_encode())
    return t


def _outcomes_of(keys: Any, labels: Any, row_key: str, where: str) -> Any:
    """The outcome of each prediction (null where none arrived), by a hash join of the keys alone.

    Outcomes in the predictions' own row order (as scoring writes them) are taken as they are.
    Otherwise only the key and a row number go into the join (not the prediction's other columns),
    and the outcomes are scattered back by row number. A key with two outcomes is refused.
    """
    import numpy as np
    import pyarrow as pa

    n = len(keys)
    if len(labels) == n and keys.equals(labels[row_key]):
        # Outcomes written row for row with the predictions (scoring writes them so): no join needed.
        return labels[LABEL_COLUMN].combine_chunks()
    left = pa.table({"k": keys, "__row": pa.array(np.arange(n, dtype=np.int64))})
    right = pa.table({"k": labels[row_key], "y": labels[LABEL_COLUMN]})
    joined = left.join(right, "k", join_type="inner", use_threads=True)
    rows = joined["__row"].to_numpy()
    if len(rows) and np.bincount(rows, minlength=n).max() > 1:
        raise StageError(f"{where} has duplicate values in {row_key!r}.")
    y = joined["y"]
    known = ~np.asarray(y.is_null().to_numpy(zero_copy_only=False))
    out = np.zeros(n, dtype=np.int8)
    mask = np.zeros(n, dtype=bool)
    out[rows[known]] = np.asarray(y.to_numpy(zero_copy_only=False))[known].astype(np.int8)
    mask[rows[known]] = True
    return pa.array(out, mask=~mask)


def _apply_cases(t: Any, row_key: str, day_cases: dict[str, tuple[str, int | None]]) -> Any:
    """The day's rows with ``case_kind`` (contest, review or null), ``case_decided`` and ``overturned``;
    an overturned decision is reversed (the reviewer's decision supersedes the automatic one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = pa.array(list(day_cases), pa.string())
    kinds = pa.array([k for k, _ in day_cases.values()], pa.string())
    finals = pa.array([f for _, f in day_cases.values()], pa.int8())
    where = pc.index_in(t[row_key], value_set=rows)
    final = pc.take(finals, where)
    decided = pc.fill_null(pc.is_valid(final), False)
    overturned = pc.fill_null(pc.not_equal(final, t["decision"].cast(pa.int8())), False)
    decision = pc.if_else(overturned, final, t["decision"].cast(pa.int8()))
    t = t.set_column(t.schema.get_field_index("decision"), "decision", decision)
    return (
        t.append_column("case_kind", pc.take(kinds, where))
        .append_column("case_decided", decided)
        .append_column("overturned", overturned)
    )


class SavedAudit(TypedDict):
    """Where :func:`save_audit` put the day's audit, and its evidence record's position."""

    status: str
    uri: str
    report_uri: str
    seq: int
    result: Artifact
    report: Artifact


def save_audit(store: ArtifactStore, model: str, result: AuditResult, *, report_html: str) -> SavedAudit:
    """Replace the day's audit (idempotent per date) and append it to the model's evidence log."""
    prefix = audit_prefix(model, result["date"])
    page = store.put(f"{prefix}/report.html", report_html.encode())
    result = {**result, "report": {"uri": page.uri, "sha256": page.sha256}}
    written = store.put(f"{prefix}/audit.json", json.dumps(result, indent=2, sort_keys=True, default=str).encode())
    entry = evidence.append(
        store,
        model,
        {
            **{k: result[k] for k in ("kind", "run_id", "date", "status", "reasons", "policy_sha256", "code_version")},
            "judged_version": result.get("judged_version"),
            "model_versions": result.get("model_versions", []),
            "audit_uri": written.uri,
            "audit_sha256": written.sha256,
        },
        # a retry that wrote this very audit finds its own record; a re-run that judged differently appends
        key=f"{result['run_id']}/audit/{result['date']}/{written.sha256}",
    )
    return {
        "status": result["status"],
        "uri": written.uri,
        "report_uri": page.uri,
        "seq": entry["seq"],
        "result": Artifact(key=written.key, uri=written.uri, sha256=written.sha256),
        "report": Artifact(key=page.key, uri=page.uri, sha256=page.sha256),
    }


def audit_history(store: ArtifactStore, model: str, *, until: date, last: int = 30) -> list[AuditResult]:
    """The model's stored audits up to ``until``, oldest first (one per date)."""
    keys = [
        k
        for k in store.list(layout.days_prefix("audits", model))
        if k.endswith("/audit.json") and layout.day_of(k) <= until.isoformat()
    ]
    return [json.loads(store.get(k)) for k in keys[-last:]]  # read only the ones shown


def audit_trend(store: ArtifactStore, model: str, result: AuditResult, *, last: int = 30) -> list[AuditResult]:
    """The audits a report of ``result`` shows: the stored ones before its date, then ``result`` itself.

    A re-run of an audit date replaces that date's stored audit, so it is left out of the history.
    """
    day = date.fromisoformat(result["date"])
    earlier = [a for a in audit_history(store, model, until=day, last=last) if a["date"] != result["date"]]
    return ([*earlier, result])[-last:]
