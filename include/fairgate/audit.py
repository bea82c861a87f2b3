"""The nightly fairness audit of the deployed model, over a window of the prediction log.

```
audits/date=YYYY-MM-DD/audit.json          one audit per logical date (a re-run replaces it)
audits/date=YYYY-MM-DD/report.html
```

The audit judges the model version that was in production at the window's end, with the same
evidence rules as the fairness gate (:func:`fairgate.gate.short_groups`).
"""

from __future__ import annotations

import io
import json
import math
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from fairgate import evidence
from fairgate.contracts import Artifact, Audit
from fairgate.errors import CODE_VERSION
from fairgate.lifecycle import StageError
from fairgate.scoring import LABEL_COLUMN, deployment_baseline, partition_key

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.policy import Policy
    from fairgate.store import ArtifactStore

STATUSES = ("healthy", "degraded", "insufficient_evidence")
# Measurable from the decisions alone; the other metrics need outcomes.
SELECTION_METRICS = ("disparate_impact", "statistical_parity_difference")


def psi(expected: np.ndarray, actual: np.ndarray, *, eps: float = 1e-4) -> float:
    """Population stability index of two distributions over the same bins.

    ``PSI = Σ (a_i − e_i) · ln(a_i / e_i)`` over bin shares, with empty bins floored at ``eps``.
    """
    import numpy as np

    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    e = np.clip(e / e.sum(), eps, None)
    a = np.clip(a / a.sum(), eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(reference: pd.Series, current: pd.Series, *, numeric: bool, bins: int = 10) -> float:
    """PSI of one feature: deciles of the reference for numerics, categories otherwise."""
    import numpy as np

    if numeric:
        edges = np.unique(np.quantile(reference.to_numpy(dtype=float), np.linspace(0, 1, bins + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        e = np.histogram(reference.to_numpy(dtype=float), edges)[0]
        a = np.histogram(current.to_numpy(dtype=float), edges)[0]
        return psi(e, a)
    def counts(s: pd.Series) -> pd.Series:
        # value_counts first, then stringify the few categories (fast on dictionary-encoded columns)
        vc = s.value_counts()
        vc.index = vc.index.astype(str)
        return vc.groupby(level=0).sum()

    ref, cur = counts(reference), counts(current)
    cats = ref.index.union(cur.index)
    return psi(ref.reindex(cats, fill_value=0).to_numpy(), cur.reindex(cats, fill_value=0).to_numpy())


def read_window(store: ArtifactStore, day: date, window_days: int, *, row_key: str, label_lag_days: int = 0
                ) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Predictions of ``[day - window + 1, day]`` joined with the outcomes that have arrived.

    Returns the rows (without the row key and score, which the audit does not need row by row),
    the days read and the model versions seen, ordered by the last day each scored: the last one
    scored the newest day, so it is the version the production pointer named at the window's end
    (scoring stamps each prediction with the pointer's version). Outcomes of day ``d`` count as
    arrived when ``d <= day - label_lag_days``; the result does
    not depend on the order in which days were scored or labels were written. Reading and the
    outcome lookup run in Arrow, not in pandas.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    def table(key: str, dictionary: tuple[str, ...] = ()) -> pa.Table:
        return pq.read_table(io.BytesIO(store.get(key)), read_dictionary=list(dictionary))

    tables: list[pa.Table] = []
    days: list[str] = []
    versions: list[str] = []
    for i in range(window_days - 1, -1, -1):
        d = day - timedelta(days=i)
        key = partition_key("predictions", d)
        if not store.exists(key):
            continue
        t = table(key, ("model_version",))  # one value per day: dictionary-encoded, unique() is free
        t = t.cast(pa.schema([f.with_type(pa.string()) if f.name == row_key else f for f in t.schema]))
        label_key = partition_key("labels", d)
        if d <= day - timedelta(days=label_lag_days) and store.exists(label_key):
            labels = table(label_key)
            labels = labels.cast(pa.schema([f.with_type(pa.string()) if f.name == row_key else
                                            f.with_type(pa.int8()) for f in labels.schema]))
            if labels.num_rows != pc.count_distinct(labels[row_key]).as_py():
                raise StageError(f"{store.uri(label_key)} has duplicate values in {row_key!r}.")
            # A key lookup, not a join: only the outcome column moves (a join drags every column along).
            where = pc.index_in(t[row_key], value_set=labels[row_key].combine_chunks())
            t = t.append_column(LABEL_COLUMN, pc.take(labels[LABEL_COLUMN], where))
        else:
            t = t.append_column(LABEL_COLUMN, pa.nulls(t.num_rows, pa.int8()))
        # One version per day's partition; after a redeploy, newer days carry the newer version.
        seen = pc.unique(t["model_version"].combine_chunks().dictionary_decode()).to_pylist()
        versions[:] = [v for v in versions if v not in seen] + seen  # by last day scored (rollbacks too)
        t = t.set_column(t.schema.get_field_index("model_version"), "model_version",
                         t["model_version"].cast(pa.string()))
        tables.append(t.drop_columns([c for c in (row_key, "score") if c in t.column_names]))
        days.append(d.isoformat())
    if not tables:
        import pandas as pd

        return pd.DataFrame(), days, []
    return pa.concat_tables(tables, promote_options="permissive").to_pandas(), days, versions


def _per_version(df: pd.DataFrame, policy: Policy, versions: list[str]) -> dict[str, dict[str, Any]]:
    """Rows and selection metrics of each model version that scored part of the window (not pooled)."""
    import numpy as np

    from fairgate.groups import comparisons, group_codes
    from fairgate.metrics import measure

    out = {}
    for v in versions:
        part = df[df["model_version"] == v].reset_index(drop=True)
        pred = part["decision"].to_numpy(dtype=np.int8)
        measured = measure(group_codes(part, policy), np.zeros(len(part), dtype=np.int8), pred,
                           comparisons(policy), confidence=policy.confidence_level)
        out[v] = {"rows": len(part), "labeled_rows": int(part[LABEL_COLUMN].notna().sum()),
                  "selection_rate": float(pred.mean()),
                  "fairness": {k: {m: r["metrics"][m] for m in ("disparate_impact", "statistical_parity_difference")}
                               for k, r in measured.items()}}
    return out


def audit_day(store: ArtifactStore, policy: Policy, day: date, *, run_id: str) -> dict[str, Any]:
    """Measure the window ending ``day`` and classify it healthy / degraded / insufficient evidence."""
    import numpy as np

    from fairgate.gate import judge_metric, short_groups
    from fairgate.groups import cell_mask, comparisons, group_codes
    from fairgate.metrics import measure

    df, days, versions = read_window(store, day, policy.audit_window_days, row_key=policy.row_key or "",
                                     label_lag_days=policy.audit_label_lag_days)
    base = {"kind": "audit", "run_id": run_id, "date": day.isoformat(), "window_days": days,
            "policy_sha256": policy.sha256, "code_version": CODE_VERSION, "model_name": policy.model_name}
    if df.empty:
        return {**base, "status": "insufficient_evidence", "reasons": ["no predictions in the window"],
                "rows": 0, "labeled_rows": 0}
    version = versions[-1]  # in production at the window's end (see read_window); the one judged
    per_version = _per_version(df, policy, versions) if len(versions) > 1 else {}
    df = df[df["model_version"] == version].reset_index(drop=True)
    codes = group_codes(df, policy)
    pred = df["decision"].to_numpy(dtype=np.int8)
    labeled = df[LABEL_COLUMN].notna().to_numpy()
    comps = comparisons(policy)
    # Selection metrics need no outcomes: all predictions count.
    selection = measure(codes, np.zeros(len(df), dtype=np.int8), pred, comps, confidence=policy.confidence_level)
    outcome = measure(codes[labeled].reset_index(drop=True), df.loc[labeled, LABEL_COLUMN].to_numpy(dtype=np.int8),
                      pred[labeled], comps, confidence=policy.confidence_level) if labeled.any() else {}

    reasons: list[str] = []
    insufficient: list[str] = []
    fairness: dict[str, dict[str, Any]] = {}
    for comp in comps:
        sel, out = selection[comp.key], outcome.get(comp.key)
        metrics = {m: sel["metrics"][m] for m in SELECTION_METRICS}
        if out:
            metrics.update({m: out["metrics"][m] for m in ("equal_opportunity_difference", "average_odds_difference",
                                                           "false_positive_rate_difference",
                                                           "false_negative_rate_difference")})
        all_counts: dict[str, dict[str, float]] = {
            side: {"n": sel["counts"][side]["n"], "selected": sel["counts"][side]["selected"]}
            for side in ("unprivileged", "privileged")}
        labeled_counts: dict[str, dict[str, float]] | None = out["counts"] if out else None
        counts = {"all": all_counts, "labeled": labeled_counts}
        fairness[comp.key] = {"metrics": metrics, "counts": counts,
                              "rates": {"selection": {s: sel["rates"][s]["selection_rate"] for s in sel["rates"]},
                                        "outcome": out["rates"] if out else None}}
        short = short_groups(all_counts, policy, unit="predictions", positives=False)
        if short:
            insufficient.extend(f"{comp.key}: {s}" for s in short)
            continue
        lacking = short_groups(labeled_counts, policy, unit="labeled rows") if labeled_counts else \
            ["no outcomes have arrived: insufficient evidence"]
        for t in policy.fairness_thresholds:
            m = metrics.get(t.metric)
            if m is None:
                continue
            if t.metric not in SELECTION_METRICS and lacking:
                insufficient.extend(f"{comp.key}: {t.metric}: {s}" for s in lacking)
                continue
            # A monitor alerts when the estimate leaves the bound; the interval says how sure it is.
            if m["value"] is not None and not t.contains(m["value"]):
                _, msg = judge_metric(t, m["value"], m["ci_low"], m["ci_high"], 0.0)
                reasons.append(f"{comp.key}: {msg}")

    manifest, snapshot = deployment_baseline(store, policy, version)
    drift = {}
    if snapshot is not None:
        for col in policy.features:
            if col in df.columns and col in snapshot.columns:
                value = feature_psi(snapshot[col], df[col], numeric=col in policy.numeric)
                drift[col] = value
                if value > policy.audit_psi_threshold:
                    reasons.append(f"feature {col!r} drifted: PSI={value:.3f} > {policy.audit_psi_threshold:g}")
        ref_codes = group_codes(snapshot, policy)
        cells = [tuple(zip(codes.columns, v, strict=True)) for v in
                 np.ndindex(*(2,) * len(codes.columns))]
        mix = psi(np.array([cell_mask(ref_codes, c).sum() for c in cells]),
                  np.array([cell_mask(codes, c).sum() for c in cells]))
        drift["__group_mix__"] = mix
        if mix > policy.audit_group_mix_psi_threshold:
            reasons.append(f"group mix drifted: PSI={mix:.3f} > {policy.audit_group_mix_psi_threshold:g}")
    else:
        insufficient.append("training snapshot of the production model not found: drift not measured")

    deployed_fairness = manifest.get("fairness") or {}
    changes: dict[str, dict[str, float]] = {}
    for key, res in fairness.items():
        for metric, m in res["metrics"].items():
            before = (deployed_fairness.get(key) or {}).get(metric, {}).get("value")
            if before is not None and m.get("value") is not None:
                changes.setdefault(key, {})[metric] = round(m["value"] - before, 6)

    status = "degraded" if reasons else "insufficient_evidence" if insufficient else "healthy"
    labels_rows = int(labeled.sum())
    accuracy = float((pred[labeled] == df.loc[labeled, LABEL_COLUMN].to_numpy(dtype=np.int8)).mean()) \
        if labels_rows else None
    return {**base, "status": status, "reasons": reasons, "insufficient": insufficient, "rows": len(df),
            "labeled_rows": labels_rows, "model_versions": versions, "judged_version": version,
            "per_version": per_version, "selection_rate": float(pred.mean()),
            "accuracy": accuracy, "fairness": fairness, "drift": {k: round(v, 6) for k, v in drift.items()},
            "change_since_deployment": changes}


def save_audit(store: ArtifactStore, result: dict[str, Any], *, report_html: str) -> dict[str, Any]:
    """Replace the day's audit (idempotent per date) and append it to the evidence log."""
    prefix = f"audits/date={result['date']}"
    page = store.put(f"{prefix}/report.html", report_html.encode())
    result = {**result, "report": {"uri": page.uri, "sha256": page.sha256}}
    written = store.put(f"{prefix}/audit.json", json.dumps(result, indent=2, sort_keys=True, default=str).encode())
    entry = evidence.append(store, {**{k: result[k] for k in ("kind", "run_id", "date", "status", "reasons",
                                                             "policy_sha256", "code_version")},
                                    "audit_uri": written.uri, "audit_sha256": written.sha256})
    return {"status": result["status"], "uri": written.uri, "report_uri": page.uri, "seq": entry["seq"],
            "result": Artifact(key=written.key, uri=written.uri, sha256=written.sha256),
            "report": Artifact(key=page.key, uri=page.uri, sha256=page.sha256)}


def audit_trend(store: ArtifactStore, result: dict[str, Any], *, last: int = 30) -> list[dict[str, Any]]:
    """The audits a report of ``result`` shows: the stored ones before its date, then ``result`` itself.

    A re-run of an audit date replaces that date's stored audit, so it is left out of the history.
    """
    day = date.fromisoformat(result["date"])
    earlier = [a for a in audit_history(store, until=day, last=last) if a["date"] != result["date"]]
    return (earlier + [result])[-last:]


def audit_history(store: ArtifactStore, *, until: date, last: int = 30) -> list[dict[str, Any]]:
    """The stored audits up to ``until``, oldest first (one per date)."""
    keys = [k for k in store.list("audits/date=") if k.endswith("/audit.json")
            and k.split("date=")[1].split("/")[0] <= until.isoformat()]
    return [json.loads(store.get(k)) for k in keys[-last:]]  # read only the ones shown


def _v(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


def audit_report(result: dict[str, Any], history: list[dict[str, Any]], thresholds: list[Any] | None = None) -> str:
    """HTML page: per-group rates with intervals, the trend of each metric (chart and table), the drift table."""
    from fairgate import charts
    from fairgate.pages import Image, render_html

    metric_rows = []
    for key, res in (result.get("fairness") or {}).items():
        sel = res["rates"]["selection"]
        for m, v in res["metrics"].items():
            metric_rows.append([key, m, _v(v.get("value")), f"[{_v(v.get('ci_low'))}, {_v(v.get('ci_high'))}]",
                                f"{_v(sel['unprivileged'].get('value'))} / {_v(sel['privileged'].get('value'))}"])
    trend_keys = sorted({(k, m) for h in history for k, r in (h.get("fairness") or {}).items() for m in r["metrics"]})
    trend_rows = [[k, m, *(_v(((h.get("fairness") or {}).get(k) or {}).get("metrics", {}).get(m, {}).get("value"))
                           for h in history)] for k, m in trend_keys]
    return render_html(
        "audit_report.html.j2", result=result, window_days=len(result.get("window_days", [])),
        judged=(result.get("judged_version") or "")[:12],
        per_version_rows=[[v[:12], p["rows"], p["labeled_rows"], _v(p["selection_rate"]),
                           "; ".join(f"{k}: DI {_v(m['disparate_impact']['value'])}" for k, m in p["fairness"].items())]
                          for v, p in (result.get("per_version") or {}).items()],
        reasons=result.get("reasons", []) + result.get("insufficient", []), metric_rows=metric_rows,
        trend_dates=history, trend_rows=trend_rows,
        trend_chart=Image(charts.audit_trend(history, thresholds), "trend of the audited fairness metrics")
        if history else None,
        drift_rows=[[k, _v(v)] for k, v in (result.get("drift") or {}).items()])


def audit(store: ArtifactStore, policy: Policy, day: date, *, run_id: str, run_type: str = "manual") -> Audit:
    """The audit stage: measure the window ending ``day``, write its report, store it and append the evidence."""
    result = audit_day(store, policy, day, run_id=run_id)
    page = audit_report(result, audit_trend(store, result), list(policy.fairness_thresholds))
    saved = save_audit(store, result, report_html=page)
    return Audit(date=result["date"], status=result["status"], reasons=tuple(result["reasons"]),
                 insufficient=tuple(result.get("insufficient", [])), rows=result["rows"],
                 labeled_rows=result["labeled_rows"], run_type=run_type, result=saved["result"],
                 report=saved["report"], seq=saved["seq"], judged_version=result.get("judged_version"))
