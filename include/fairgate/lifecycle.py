"""The lifecycle stages as plain functions: data and settings in, a small JSON summary out.

Each stage reads its inputs from the artifact store by key, writes what it produced under the
run's prefix, and returns a summary of metrics, keys, URIs and hashes (never rows). The Airflow
operators in ``fairgate_airflow`` are thin wrappers around these; a notebook can call them too.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fairgate import evidence, registry
from fairgate.errors import CODE_VERSION, InputError
from fairgate.store import sha256_bytes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.policy import Policy
    from fairgate.store import ArtifactStore

log = logging.getLogger(__name__)


class StageError(InputError):
    """Bad input for a stage: the message names the column or key and the counts."""


@dataclass(frozen=True)
class RunInfo:
    dag_id: str
    run_id: str
    run_type: str = "manual"
    interval_start: datetime | None = None
    interval_end: datetime | None = None

    @property
    def prefix(self) -> str:
        """Where the run's artifacts live; run ids keep only characters safe in paths and S3 keys."""
        return f"runs/{self.dag_id}/{re.sub(r'[^A-Za-z0-9._=-]', '_', self.run_id)}"

    @property
    def is_backfill(self) -> bool:
        return self.run_type == "backfill"


def _json(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()


def _load_snapshot(store: ArtifactStore, snapshot: dict[str, Any]) -> pd.DataFrame:
    """Read the run's snapshot, refusing it if its bytes no longer match the recorded sha256."""
    import io

    import pandas as pd

    data = store.get(snapshot["key"])
    if sha256_bytes(data) != snapshot["sha256"]:
        raise StageError(f"Snapshot {snapshot['uri']} does not match its recorded sha256; it was changed "
                         "after collection.")
    return pd.read_parquet(io.BytesIO(data))


# --- collect -------------------------------------------------------------------------------------

def collect(store: ArtifactStore, policy: Policy, run: RunInfo) -> dict[str, Any]:
    """Read the source (the run's interval when partitioned) into an immutable Parquet snapshot."""
    from fairgate.data import read_source, to_parquet_bytes

    interval = (run.interval_start, run.interval_end) if run.interval_start and run.interval_end else None
    df = read_source(policy, interval=interval)
    written = store.put_new(f"{run.prefix}/snapshot.parquet", to_parquet_bytes(df))
    return {"key": written.key, "uri": written.uri, "sha256": written.sha256, "rows": len(df),
            "columns": len(df.columns), "source": policy.source,
            "period": [d.isoformat() for d in interval] if interval and policy.partitioned else None}


# --- validate ------------------------------------------------------------------------------------

def validate(store: ArtifactStore, policy: Policy, run: RunInfo, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Run the quality suite; store the full result (JSON + HTML page) and return a capped summary."""
    from fairgate.quality import render_html, validate_frame

    df = _load_snapshot(store, snapshot)
    result = validate_frame(df, policy)
    full = store.put(f"{run.prefix}/quality.json", _json(result.as_dict()))
    page = store.put(f"{run.prefix}/quality.html",
                     render_html(result, title=f"Data quality — {run.dag_id} {run.run_id}").encode())
    return {**result.summary(), "uri": full.uri, "sha256": full.sha256, "html_uri": page.uri}


# --- bias ----------------------------------------------------------------------------------------

def _codes_and_labels(df: pd.DataFrame, policy: Policy) -> tuple[pd.DataFrame, np.ndarray]:
    from fairgate.groups import GroupError, group_codes
    from fairgate.training import labels

    try:
        codes = group_codes(df, policy)
    except GroupError as exc:
        raise StageError(str(exc)) from None
    return codes, labels(df, policy)


def bias_findings(measured: dict[str, dict[str, float]], policy: Policy) -> list[str]:
    """Which data-stage disparities fall outside the policy's ``bias.thresholds``."""
    out = []
    for key, m in measured.items():
        for t in policy.bias_thresholds:
            value = m[t.metric]
            if not t.contains(value):
                out.append(f"{key}: {t.metric}={value:.4f} outside {t.describe()}")
    return out


def proxy_check(df: pd.DataFrame, policy: Policy) -> dict[str, Any]:
    from fairgate.explain import proxy_check as check

    try:
        return check(df, policy)
    except ValueError as exc:  # e.g. a column sklearn cannot encode
        raise StageError(f"Proxy check failed: {exc}") from None


def check_bias(store: ArtifactStore, policy: Policy, run: RunInfo, snapshot: dict[str, Any]) -> dict[str, Any]:
    """AIF360 dataset metrics per attribute and intersection; ``detected`` if any is outside policy."""
    from fairgate import aif360_adapter as aif
    from fairgate.groups import comparisons

    df = _load_snapshot(store, snapshot)
    codes, y = _codes_and_labels(df, policy)
    comps = comparisons(policy)
    measured = {}
    for comp in comps:
        try:
            aif.check_measurable(codes, y, comp, label=policy.label)
        except aif.InsufficientDataError as exc:
            raise StageError(str(exc)) from None
        measured[comp.key] = aif.dataset_metrics(codes, y, comp)
    findings = bias_findings(measured, policy)
    proxies = proxy_check(df, policy)
    result = {"detected": bool(findings), "reasons": findings, "comparisons": measured, "proxies": proxies,
              "warnings": proxies["flagged"]}
    written = store.put(f"{run.prefix}/bias.json", _json(result))
    return {**result, "uri": written.uri}


# --- reweigh -------------------------------------------------------------------------------------

def reweigh(store: ArtifactStore, policy: Policy, run: RunInfo, snapshot: dict[str, Any]) -> dict[str, Any]:
    """AIF360 reweighing weights on the whole snapshot, saved as an artifact, with DI after."""
    import io

    import pandas as pd

    from fairgate import aif360_adapter as aif
    from fairgate.groups import comparisons

    df = _load_snapshot(store, snapshot)
    codes, y = _codes_and_labels(df, policy)
    weights = aif.reweighing_weights(codes, y)
    after = {c.key: aif.dataset_metrics(codes, y, c, weights=weights) for c in comparisons(policy)}
    buf = io.BytesIO()
    pd.DataFrame({"weight": weights}).to_parquet(buf, index=False)
    written = store.put(f"{run.prefix}/weights.parquet", buf.getvalue())
    max_err = max(abs(m["disparate_impact"] - 1.0) for m in after.values())
    return {"applied": True, "method": "reweighing (Kamiran & Calders, AIF360)", "key": written.key,
            "uri": written.uri, "sha256": written.sha256, "after": after, "max_abs_di_error": max_err,
            "weight_min": float(weights.min()), "weight_max": float(weights.max())}


# --- train ---------------------------------------------------------------------------------------

def train(store: ArtifactStore, policy: Policy, run: RunInfo, snapshot: dict[str, Any],
          weights: dict[str, Any] | None = None) -> dict[str, Any]:
    """Split, fit the policy's pipeline (with reweighing weights if given) and store the model."""
    import io

    import numpy as np
    import pandas as pd

    from fairgate import explain, training

    df = _load_snapshot(store, snapshot)
    codes, y = _codes_and_labels(df, policy)
    strata = y.astype(np.int64)
    for i, col in enumerate(codes.columns):
        strata = strata + codes[col].to_numpy(dtype=np.int64) * (2 << i)
    split = training.split_rows(df, policy, strata)
    sample_weight = None
    if weights:
        w_data = store.get(weights["key"])
        if sha256_bytes(w_data) != weights["sha256"]:
            raise StageError(f"Weights {weights['uri']} do not match their recorded sha256.")
        sample_weight = pd.read_parquet(io.BytesIO(w_data))["weight"].to_numpy()
        if len(sample_weight) != len(df):
            raise StageError(f"Weights have {len(sample_weight)} rows but the snapshot has {len(df)}.")
    is_train, is_val = split == "train", split == "validation"
    model = training.fit(df[is_train], policy, sample_weight=None if sample_weight is None
                         else sample_weight[is_train])
    scores, pred = training.predict(model, df[is_val], policy)
    m = store.put(f"{run.prefix}/model.skops", training.dump_model(model))
    buf = io.BytesIO()
    training.split_frame(split, df, policy).to_parquet(buf, index=False)
    s = store.put(f"{run.prefix}/split.parquet", buf.getvalue())
    out = {
        "model_key": m.key, "model_uri": m.uri, "model_sha256": m.sha256,
        "split_key": s.key, "split_uri": s.uri, "split_sha256": s.sha256,
        "weighted": sample_weight is not None, "estimator": policy.estimator,
        "features": list(policy.features),
        "rows": {name: int((split == name).sum()) for name in training.SPLITS},
        "validation": training.performance(y[is_val], scores, pred),
        "reference": explain.reference_record(df[is_train], policy),
    }
    if sample_weight is not None:
        # The same pipeline on the same rows without the weights, so the effect of reweighing is
        # measured on the test rows rather than assumed.
        b = store.put(f"{run.prefix}/unmitigated_model.skops", training.dump_model(training.fit(df[is_train], policy)))
        out["unmitigated"] = {"model_key": b.key, "model_uri": b.uri, "model_sha256": b.sha256}
    return out


# --- gate ----------------------------------------------------------------------------------------

def evaluate(store: ArtifactStore, policy: Policy, run: RunInfo, snapshot: dict[str, Any],
             trained: dict[str, Any]) -> dict[str, Any]:
    """Measure the candidate on the held-out test rows and decide pass / fail / review."""
    import io

    import numpy as np
    import pandas as pd

    from fairgate import explain, gate, training
    from fairgate.groups import comparisons
    from fairgate.metrics import measure

    df = _load_snapshot(store, snapshot)
    split = pd.read_parquet(io.BytesIO(store.get(trained["split_key"])))["split"].to_numpy()
    test = df[split == "test"].reset_index(drop=True)
    model = training.load_model_bytes(store.get(trained["model_key"]), expected_sha256=trained["model_sha256"],
                                      where=trained["model_uri"])
    codes, y = _codes_and_labels(test, policy)
    comps = comparisons(policy)

    def assess(m) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
        scores, pred = training.predict(m, test, policy)
        return (training.performance(y, scores, pred),
                measure(codes, y, pred, comps, confidence=policy.confidence_level), pred)

    def position(perf: dict[str, Any], fair: dict[str, Any]) -> dict[str, Any]:
        """Where a model sits on the fairness-accuracy plane: its performance and each metric's value."""
        return {**perf, "fairness": {k: {m: v["value"] for m, v in r["metrics"].items()} for k, r in fair.items()}}

    perf, fairness, pred = assess(model)
    compared = {"candidate": position(perf, fairness)}
    importance = {"candidate": explain.importance(model, test, policy)}
    if trained.get("unmitigated"):
        u = trained["unmitigated"]
        unmitigated = training.load_model_bytes(store.get(u["model_key"]), expected_sha256=u["model_sha256"],
                                                where=u["model_uri"])
        compared["unmitigated"] = position(*assess(unmitigated)[:2])
        importance["unmitigated"] = explain.importance(unmitigated, test, policy)

    champion = None
    current = registry.production_version(store, policy.model_name)
    if current:
        production = registry.load_model(store, policy.model_name, current)
        lacking = sorted(set(getattr(production, "feature_names_in_", ())) - set(policy.features))
        if lacking:  # the policy changed the model's inputs: the two cannot be scored on the same rows
            champion = {"version": current, "not_comparable": f"it needs input columns {lacking} that the "
                                                              "policy no longer names"}
        else:
            p_perf, p_fair, _ = assess(production)
            champion = {"version": current, **p_perf}
            compared["production"] = {"version": current, **position(p_perf, p_fair)}
    decision = gate.decide(fairness, perf, policy, constant_predictor=len(np.unique(pred)) < 2, champion=champion)
    result = {
        "outcome": decision.outcome, "branch": gate.BRANCH[decision.outcome], "reasons": decision.reasons,
        "findings": decision.as_dict()["findings"], "performance": perf, "fairness": fairness,
        "champion": champion, "thresholds": {t.metric: t.describe() for t in policy.fairness_thresholds},
        "comparison": compared, "importance": importance,
    }
    written = store.put(f"{run.prefix}/gate.json", _json(result))
    return {**result, "uri": written.uri, "sha256": written.sha256}


# --- deploy / reject -----------------------------------------------------------------------------

def deploy(store: ArtifactStore, policy: Policy, run: RunInfo, snapshot: dict[str, Any],
           trained: dict[str, Any], gate_result: dict[str, Any], *, approver: str,
           review: dict[str, Any] | None = None, card_md: str | None = None) -> dict[str, Any]:
    """Register the approved model and move the production pointer (never from a backfill)."""
    model_bytes = store.get(trained["model_key"])
    if sha256_bytes(model_bytes) != trained["model_sha256"]:
        raise StageError(f"Model {trained['model_uri']} does not match its recorded sha256.")
    expected = registry.read_pointer(store, policy.model_name)
    manifest = registry.register(store, policy.model_name, model_bytes, {
        "model": policy.model_name, "approved": True, "approver": approver, "review": review,
        "gate_outcome": gate_result["outcome"], "gate_reasons": gate_result["reasons"],
        "registered_at": datetime.now(UTC).isoformat(), "dag_id": run.dag_id, "run_id": run.run_id,
        "data_sha256": snapshot["sha256"], "data_uri": snapshot["uri"],
        "data_key": snapshot["key"], "policy_sha256": policy.sha256,
        "code_version": CODE_VERSION, "performance": gate_result["performance"],
        "fairness": {k: v["metrics"] for k, v in gate_result["fairness"].items()},
        "weighted": trained["weighted"], "estimator": trained["estimator"],
        "reference": trained.get("reference"),
    }, card_md=card_md)
    version = manifest["version"]
    previous = expected[0]["version"] if expected[0] else None
    if run.is_backfill:
        return {"version": version, "promoted": False, "previous": previous,
                "note": "backfill runs register versions but never move the production pointer"}
    registry.promote(store, policy.model_name, version, action="deploy", run_id=run.run_id, actor=approver,
                     reason="; ".join(gate_result["reasons"])[:500], expected=expected)
    return {"version": version, "promoted": True, "previous": previous}


def reject(store: ArtifactStore, policy: Policy) -> dict[str, Any]:
    """A rejection changes nothing; it reports what stays in production."""
    return {"promoted": False, "production_version": registry.production_version(store, policy.model_name)}


# --- evidence ------------------------------------------------------------------------------------

def evidence_record(policy: Policy, run: RunInfo, *, decision: str, collect: dict | None, quality: dict | None,
                    bias: dict | None, mitigation: dict | None, trained: dict | None, gate_result: dict | None,
                    review: dict | None, deployed: dict | None, report: dict | None = None) -> dict[str, Any]:
    """The DESIGN §7 evidence record of one lifecycle run, from the stages' summaries."""
    fairness = None
    if gate_result:
        fairness = {key: {**res["metrics"], "counts": res["counts"]} for key, res in gate_result["fairness"].items()}
    return {
        "kind": "lifecycle", "run_id": run.run_id, "dag_id": run.dag_id, "run_type": run.run_type,
        "decision": decision, "model_name": policy.model_name,
        "policy": {"sha256": policy.sha256, "path": policy.path}, "code_version": CODE_VERSION,
        "data": collect and {k: collect.get(k) for k in ("rows", "sha256", "uri", "source", "period")},
        "quality": quality and {k: quality[k] for k in ("passed", "rows", "checks", "failed", "failures", "uri",
                                                        "html_uri")},
        "bias": bias and {"detected": bias["detected"], "reasons": bias["reasons"],
                          "comparisons": bias["comparisons"], "uri": bias["uri"], "proxies": bias.get("proxies"),
                          "warnings": bias.get("warnings", [])},
        "mitigation": (mitigation and {k: mitigation[k] for k in ("applied", "method", "after", "uri", "sha256",
                                                                  "max_abs_di_error")})
        or ({"applied": False, "reason": "disparity within policy"} if bias else None),
        "model": trained and {"sha256": trained["model_sha256"], "uri": trained["model_uri"],
                              "version": (deployed or {}).get("version"), "weighted": trained["weighted"],
                              "estimator": trained["estimator"], "rows": trained["rows"]},
        "performance": gate_result and gate_result["performance"],
        "fairness": fairness,
        "gate": gate_result and {"outcome": gate_result["outcome"], "reasons": gate_result["reasons"],
                                 "uri": gate_result["uri"], "champion": gate_result["champion"],
                                 "thresholds": gate_result.get("thresholds")},
        "comparison": gate_result and gate_result.get("comparison"),
        "importance": gate_result and gate_result.get("importance"),
        "review": review,
        "deployment": deployed,
        "report": report,
    }


def record(store: ArtifactStore, record_: dict[str, Any]) -> dict[str, Any]:
    entry = evidence.append(store, record_)
    return {"seq": entry["seq"], "hash": entry["hash"], "decision": record_["decision"]}
