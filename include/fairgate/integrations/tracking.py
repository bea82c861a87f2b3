"""MLflow as a window on Fairgate's evidence: tracked runs, model versions and the production alias.

The evidence log and the production pointer stay the source of truth; everything here is derived
from them and can be derived again. :func:`sync` walks a model's log and writes what MLflow lacks,
so a tracking server that was down loses nothing:

- each lifecycle run → an MLflow run in experiment ``fairgate/<model>`` (tag ``fairgate.run_id``):
  the policy as params; data sha256, rows, code version, decision, evidence hash and run URL as
  tags; performance and every fairness metric with its interval as metrics; the report, model
  card, datasheet, quality page and evidence record as artifacts; each mitigation-search candidate
  as a nested run;
- each deployed version → a version of the registered model ``<model>``, an MLflow pyfunc
  (:mod:`fairgate.integrations.mlflow_model`, models-from-code) tagged with its sha256 and gate decision;
- the ``production`` alias → the version Fairgate's pointer names (:func:`sync_alias`);
- the nightly audits → one run per model (``audit``), each metric stepped by the audit's date.

A run is written, then tagged ``fairgate.complete``; a run without that tag is a write that was
cut off, and the next sync replaces it. :func:`disagreements` lists where MLflow and Fairgate differ.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fairgate import configuration
from fairgate.contracts import Tracked
from fairgate.errors import NOT_RETRIED, IntegrityError, StageError, TrackingUnavailable
from fairgate.governance import approval, evidence, registry
from fairgate.governance.evidence import Entry
from fairgate.governance.records import LifecycleRecord
from fairgate.integrations import serving
from fairgate.policy.reading import read_policy_yaml
from fairgate.storage.base import read_recorded, verify
from fairgate.storage.local import default_artifact_root

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from fairgate.policy.schema import Policy
    from fairgate.storage.base import ArtifactStore

ALIAS = "production"
AUDIT_RUN = "audit"
MAX_PARAM = 6000  # MLflow's limit on a param value
BATCH = 100  # params per log_batch call (MLflow's limit; metrics allow 1000)
# The client retries a refused connection with exponential backoff; a few quick tries are enough here,
# Airflow's task retries do the patient part.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


def tracking_uri(configured: str | None = None) -> str:
    """``configured`` (an Airflow connection's), else ``MLFLOW_TRACKING_URI``, else the embedded store.

    The embedded store is SQLite in ``.mlflow/`` beside a local artifact store (``FAIRGATE_ARTIFACT_ROOT``
    or the project's ``.artifacts``), so each store has its own.
    """
    uri = configured or configuration.value("mlflow_tracking_uri")
    if uri:
        return uri

    root = configuration.value("artifact_root") or ""
    local = Path(root.removeprefix("file://")) if root and not root.startswith("s3://") else default_artifact_root()
    home = local.parent / ".mlflow"
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home}/mlflow.db"


def _embedded_artifacts(uri: str) -> str | None:
    """Where an embedded (sqlite) store keeps artifacts: beside its database, not in the working directory."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()


def client(uri: str | None = None) -> MlflowClient:
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from mlflow import MlflowClient

    resolved = tracking_uri(uri)
    return MlflowClient(tracking_uri=resolved, registry_uri=resolved)


def _unavailable(exc: BaseException, uri: str) -> TrackingUnavailable:
    shown = re.sub(r"//[^@/]*@", "//", uri)  # never a password in a message
    return TrackingUnavailable(f"MLflow at {shown} did not take the write: {type(exc).__name__}: {exc}")


def _tracking_errors() -> tuple[type[BaseException], ...]:
    import requests
    import sqlalchemy.exc
    from mlflow.exceptions import MlflowException

    return (MlflowException, requests.RequestException, sqlalchemy.exc.SQLAlchemyError, OSError)


def name(*parts: str) -> str:
    """A metric or param name MLflow accepts, with '/' between parts (the UI groups by them)."""
    return "/".join(re.sub(r"[^\w.\- ]", "_", p) for p in parts)


def _ms(stamp: str | None) -> int:
    when = datetime.fromisoformat(stamp) if stamp else datetime.now(UTC)
    return int(when.timestamp() * 1000)


def _flatten(prefix: str, obj: Any) -> dict[str, str]:
    if isinstance(obj, dict) and obj:
        out: dict[str, str] = {}
        for key, value in obj.items():
            out.update(_flatten(f"{prefix}.{key}" if prefix else str(key), value))
        return out
    text = obj if isinstance(obj, str) else json.dumps(obj, default=str)
    return {prefix: text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 1] + "…"}


def params_of(policy_raw: dict[str, Any]) -> dict[str, str]:
    """The policy's values as MLflow params (dotted keys: ``fairness.thresholds.disparate_impact.min``)."""
    return {name(k): v for k, v in _flatten("", policy_raw).items()}


def _finite(value: Any) -> bool:
    import math

    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def fairness_metrics(fairness: dict[str, Any], prefix: str = "fairness") -> dict[str, float]:
    """Every comparison's metrics with their intervals, and each side's rates from its counts."""
    out: dict[str, float] = {}
    for comp, result in (fairness or {}).items():
        metrics = result.get("metrics", result)
        for metric, m in metrics.items():
            if metric == "counts" or not isinstance(m, dict):
                continue
            for part, key in (("value", metric), ("ci_low", f"{metric}/ci_low"), ("ci_high", f"{metric}/ci_high")):
                if _finite(m.get(part)):
                    out[name(prefix, comp, *key.split("/"))] = float(m[part])
        for side, c in (result.get("counts") or {}).items():
            if not isinstance(c, dict) or "n" not in c:
                continue
            rates = {"rows": c.get("n"), "selection_rate": c["selected"] / c["n"] if c.get("n") else None}
            if "tp" in c:
                pos, neg = c["tp"] + c["fn"], c["fp"] + c["tn"]
                rates.update(
                    {
                        "true_positive_rate": c["tp"] / pos if pos else None,
                        "false_positive_rate": c["fp"] / neg if neg else None,
                    }
                )
            out.update(
                {name("group", comp, side, k): float(v) for k, v in rates.items() if v is not None and _finite(v)}
            )
    return out


def lifecycle_metrics(rec: LifecycleRecord) -> dict[str, float]:
    out = {name("performance", k): float(v) for k, v in (rec.performance or {}).items() if _finite(v)}
    out.update(fairness_metrics(rec.fairness or {}))
    if rec.data:
        out["data/rows"] = float(rec.data.rows)
    return out


def lifecycle_tags(entry: Entry, *, run_url: str | None) -> dict[str, str]:
    rec = LifecycleRecord.from_json(entry["record"])
    tags = {
        "fairgate.kind": "lifecycle",
        "fairgate.run_id": rec.run_id,
        "fairgate.dag_id": rec.dag_id,
        "fairgate.decision": rec.decision,
        "fairgate.code_version": str(rec.code_version),
        "fairgate.policy_sha256": rec.policy.sha256,
        "fairgate.evidence_seq": str(entry["seq"]),
        "fairgate.evidence_hash": entry["hash"],
        "mlflow.runName": rec.run_id,
    }
    if rec.data:
        tags.update({"fairgate.data_sha256": rec.data.sha256, "fairgate.data_rows": str(rec.data.rows)})
    if rec.gate:
        tags["fairgate.gate_outcome"] = rec.gate.outcome
    if rec.model:
        tags.update({"fairgate.model_sha256": rec.model.sha256, "fairgate.estimator": str(rec.model.estimator)})
    if rec.review:
        tags["fairgate.approver"] = str(rec.reviewer or "")
    if rec.overrides:  # a manual run's exception to the policy's thresholds, on the run itself
        tags["fairgate.threshold_overrides"] = json.dumps(rec.overrides.get("overrides"), sort_keys=True)
        tags["fairgate.override_rationale"] = str(rec.overrides.get("rationale"))[:500]
        tags["fairgate.override_requested_by"] = str(rec.overrides.get("requested_by") or "")
    if run_url:
        tags["fairgate.run_url"] = run_url
    return tags


@dataclass
class Synced:
    """What one :func:`sync` wrote (and what it found already there)."""

    runs: list[str] = field(default_factory=list)
    present: int = 0
    versions: list[str] = field(default_factory=list)
    audits: int = 0
    alias: str | None = None


def experiment(mlflow: MlflowClient, model: str) -> str:
    exp = mlflow.get_experiment_by_name(f"fairgate/{model}")
    if exp is not None:
        return str(exp.experiment_id)
    location = _embedded_artifacts(str(mlflow.tracking_uri))
    return str(
        mlflow.create_experiment(f"fairgate/{model}", artifact_location=location, tags={"fairgate.model": model})
    )


def _runs(mlflow: MlflowClient, exp: str, tag: str, value: str) -> list[Any]:
    if "'" in value:
        raise StageError(f"Cannot look up {tag} {value!r} in MLflow: it contains a quote.")
    return list(mlflow.search_runs([exp], filter_string=f"tags.`{tag}` = '{value}'", max_results=50))


def _log(
    mlflow: MlflowClient,
    run_id: str,
    *,
    metrics: dict[str, float] | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    at: int,
    step: int = 0,
) -> None:
    from mlflow.entities import Metric, Param, RunTag

    metric_list = [Metric(k, v, at, step) for k, v in sorted((metrics or {}).items())]
    param_list = [Param(k, v) for k, v in sorted((params or {}).items())]
    tag_list = [RunTag(k, v) for k, v in sorted((tags or {}).items())]
    for i in range(0, max(len(metric_list), len(param_list), len(tag_list)), BATCH):
        mlflow.log_batch(
            run_id, metrics=metric_list[i : i + BATCH], params=param_list[i : i + BATCH], tags=tag_list[i : i + BATCH]
        )


def _artifacts(store: ArtifactStore, rec: LifecycleRecord, entry: Entry, folder: Path) -> Path:
    """The run's pages and its evidence record, each checked against the sha256 the record names."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = {
        "report.html": rec.report,
        "model_card.md": rec.model_card,
        "datasheet.md": rec.datasheet,
        "quality.html": rec.quality.page if rec.quality else None,
    }
    for file, ref in pages.items():
        if ref and ref.uri and ref.sha256:
            (folder / file).write_bytes(_recorded(store, ref.uri, ref.sha256, file))
    (folder / "evidence.json").write_text(json.dumps(entry, indent=2, sort_keys=True, default=str))
    return folder


def _recorded(store: ArtifactStore, uri: str, sha256: str | None, what: str) -> bytes:
    """An artifact an evidence record names (found in a moved or copied store too), checked against its sha256."""
    data = read_recorded(store, uri)
    if data is None:
        raise IntegrityError(f"The {what} {uri} an evidence record names is missing from the store.")
    return verify(data, sha256, where=f"{what} {uri}") if sha256 else data


def _policy_file(store: ArtifactStore, rec: LifecycleRecord) -> bytes | None:
    uri = rec.policy.uri
    return read_recorded(store, uri) if uri else None


def log_lifecycle(
    mlflow: MlflowClient, store: ArtifactStore, policy: Policy, entry: Entry, *, run_url: str | None = None
) -> tuple[str, bool]:
    """The MLflow run of one lifecycle evidence entry, and whether this call wrote it."""
    rec = LifecycleRecord.from_json(entry["record"])
    exp = experiment(mlflow, policy.model_name)
    for found in _runs(mlflow, exp, "fairgate.run_id", rec.run_id):
        if found.data.tags.get("fairgate.evidence_hash") == entry["hash"] and found.data.tags.get("fairgate.complete"):
            return str(found.info.run_id), False
        if found.data.tags.get("fairgate.kind") == "lifecycle":
            mlflow.delete_run(found.info.run_id)  # cut off, or of a record since replaced: write it again
    at = _ms(rec.recorded_at)
    kept = _policy_file(store, rec)
    raw = read_policy_yaml(kept, source="the run's kept policy.yaml") if kept else policy.raw
    run = mlflow.create_run(exp, start_time=at, tags=lifecycle_tags(entry, run_url=run_url), run_name=rec.run_id)
    run_id = str(run.info.run_id)
    _log(mlflow, run_id, metrics=lifecycle_metrics(rec), params=params_of(raw), at=at)
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.log_artifacts(run_id, str(_artifacts(store, rec, entry, Path(tmp) / "fairgate")), "fairgate")
    for cand in (rec.search or {}).get("candidates") or []:
        child = mlflow.create_run(
            exp,
            start_time=at,
            run_name=cand["id"],
            tags={
                "mlflow.parentRunId": run_id,
                "fairgate.kind": "candidate",
                "fairgate.run_id": rec.run_id,
                "fairgate.candidate": cand["id"],
                "fairgate.status": str(cand.get("status")),
                "fairgate.chosen": str(bool(cand.get("chosen"))).lower(),
            },
        )
        validation = cand.get("validation") or {}
        metrics = {
            name("validation", k): float(v) for k, v in (validation.get("performance") or {}).items() if _finite(v)
        }
        metrics.update(
            fairness_metrics(
                {k: {"metrics": v} for k, v in (validation.get("fairness") or {}).items()}, "validation/fairness"
            )
        )
        params = {k: str(v) for k, v in cand.items() if k in ("method", "estimator", "params") and v is not None}
        _log(mlflow, str(child.info.run_id), metrics=metrics, params=params, at=at)
        status = "FINISHED" if cand.get("status") == "fitted" else "FAILED"
        mlflow.set_terminated(child.info.run_id, status, end_time=at)
    mlflow.set_tag(run_id, "fairgate.complete", "true")
    mlflow.set_terminated(run_id, "FINISHED", end_time=at)
    return run_id, True


def _model_versions(mlflow: MlflowClient, model: str) -> list[Any]:
    return list(mlflow.search_model_versions(f"name = '{model}'", max_results=1000))


def mlflow_version(mlflow: MlflowClient, model: str, version: str) -> Any | None:
    """The MLflow model version of Fairgate ``version`` (by its sha256 tag), if registered."""
    for mv in _model_versions(mlflow, model):
        if mv.tags.get("fairgate.sha256") == version:
            return mv
    return None


def _promoted(rec: LifecycleRecord) -> str | None:
    """The version a lifecycle run promoted to production (None when it promoted nothing)."""
    return rec.deployment.version if rec.deployment and rec.promoted else None


def register_version(
    mlflow: MlflowClient,
    store: ArtifactStore,
    policy: Policy,
    version: str,
    *,
    run_id: str,
    rec: LifecycleRecord,
    evidence_hash: str,
) -> tuple[str, bool]:
    """The MLflow version of Fairgate ``version`` (registered under ``run_id`` if new), and whether it is new."""
    model = policy.model_name
    existing = mlflow_version(mlflow, model, version)
    if existing is not None:
        return str(existing.version), False
    manifest = registry.read_manifest(store, model, version)
    with tempfile.TemporaryDirectory() as tmp:
        save_served_model(store, policy, version, Path(tmp), policy_file=_policy_file(store, rec))
        mlflow.log_artifacts(run_id, str(Path(tmp) / "model"), "model")
    try:
        mlflow.get_registered_model(model)
    except Exception:  # not there yet (MLflow raises RESOURCE_DOES_NOT_EXIST)
        mlflow.create_registered_model(
            model,
            tags={"fairgate.model": model},
            description=f"Registered by Fairgate from {model}'s lifecycle runs; the "
            f"'{ALIAS}' alias follows Fairgate's production pointer.",
        )
    review = rec.review or {}
    mv = mlflow.create_model_version(
        model,
        source=f"{mlflow.get_run(run_id).info.artifact_uri}/model",
        run_id=run_id,
        tags={
            "fairgate.sha256": version,
            "fairgate.gate_outcome": str(manifest.get("gate_outcome")),
            "fairgate.approver": str(manifest.get("approver") or review.get("reviewer") or ""),
            "fairgate.rationale": str(review.get("rationale") or ""),
            "fairgate.run_id": str(manifest.get("run_id")),
            "fairgate.evidence_hash": evidence_hash,
        },
        description=f"Fairgate version {version[:12]} (sha256 {version}).",
    )
    return str(mv.version), True


def save_served_model(
    store: ArtifactStore, policy: Policy, version: str, folder: Path, *, policy_file: bytes | None = None
) -> Path:
    """``version`` as the MLflow model-from-code ``mlflow models serve`` runs, saved to ``folder/model``
    (its files in ``folder/files``); what a registered version holds."""
    import mlflow as mlflow_module
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec

    signature = ModelSignature(
        params=ParamSchema(
            [
                ParamSpec("reasons", "boolean", True),
                ParamSpec("recourse", "boolean", False),
                ParamSpec("shapley", "boolean", False),
            ]
        )
    )
    files = serving.write_bundle(store, policy, version, folder / "files", policy_file=policy_file)
    # MLflow suggests type hints and an input example; the checks of the input are ours
    # (fairgate.integrations.serving). Recorded, not shown: MLflow sets its own "once" filter inside.
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore", UserWarning)
        mlflow_module.pyfunc.save_model(
            path=str(folder / "model"),
            python_model=str(Path(__file__).with_name("mlflow_model.py")),
            artifacts={f: str(files / f) for f in (*serving.FILES, *serving.OPTIONAL_FILES)},
            model_config={"model_name": policy.model_name, "version": version},
            signature=signature,
            pip_requirements=_requirements(),
        )
    return folder / "model"


def _requirements() -> list[str]:
    """The served model's environment: the packages it imports, at this environment's versions."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    out = []
    for dist in ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "PyYAML", "shap"):
        try:
            out.append(f"{dist}=={installed(dist)}")
        except PackageNotFoundError:
            continue
    return out


def alias_version(mlflow: MlflowClient, model: str) -> str | None:
    """The MLflow version number the ``production`` alias names, or None (no alias, or no registered model)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow.get_model_version_by_alias(model, ALIAS).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def sync_alias(mlflow: MlflowClient, store: ArtifactStore, model: str) -> str | None:
    """Point the ``production`` alias at the MLflow version of Fairgate's production version (or remove it).

    Only a version the evidence approves (:func:`fairgate.governance.approval.production`) is mirrored;
    a pointer the chain does not back raises instead of moving the alias.
    """
    approved = approval.production(store, model)
    version = approved.version if approved else None
    if version is None:
        if alias_version(mlflow, model) is not None:
            mlflow.delete_registered_model_alias(model, ALIAS)
        return None
    mv = mlflow_version(mlflow, model, version)
    if mv is None:
        raise StageError(
            f"Fairgate's production version {version[:12]} of {model!r} is not registered in MLflow; "
            "run `fairgate mlflow-sync` to register it."
        )
    mlflow.set_registered_model_alias(model, ALIAS, str(mv.version))
    return str(mv.version)


def audit_metrics(result: dict[str, Any]) -> dict[str, float]:
    out = fairness_metrics(
        {
            k: {"metrics": v["metrics"], "counts": (v.get("counts") or {}).get("all")}
            for k, v in (result.get("fairness") or {}).items()
        }
    )
    out.update({name("drift", k.strip("_")): float(v) for k, v in (result.get("drift") or {}).items() if _finite(v)})
    for key in ("rows", "labeled_rows", "accuracy", "balanced_accuracy"):
        if _finite(result.get(key)):
            out[key] = float(result[key])
    for comp, sides in (result.get("estimated_performance") or {}).items():  # before outcomes, and its error
        for side, entry in sides.items():
            for part in ("estimated", "error"):
                out.update(
                    {
                        name("estimated" if part == "estimated" else "estimation_error", comp, side, rate): float(v)
                        for rate, v in (entry.get(part) or {}).items()
                        if v is not None and _finite(v)
                    }
                )
    out["status/degraded"] = float(result.get("status") == "degraded")
    out["status/insufficient_evidence"] = float(result.get("status") == "insufficient_evidence")
    return out


def log_audits(mlflow: MlflowClient, store: ArtifactStore, model: str, audits: list[Entry]) -> int:
    """Append the audit entries not yet logged to the model's audit run, each at step = its date."""
    if not audits:
        return 0
    exp = experiment(mlflow, model)
    found = _runs(mlflow, exp, "fairgate.kind", "audit")
    done = int(found[0].data.tags.get("fairgate.audit_seq", "0")) if found else 0
    todo = [entry for entry in audits if entry["seq"] > done]
    if not todo:
        return 0
    run_id = str(
        found[0].info.run_id
        if found
        else mlflow.create_run(exp, run_name=AUDIT_RUN, tags={"fairgate.kind": "audit"}).info.run_id
    )
    logged = 0
    for entry in todo:
        rec = entry["record"]
        result = json.loads(_recorded(store, rec["audit_uri"], rec["audit_sha256"], "audit"))
        day = date.fromisoformat(rec["date"])
        at = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)
        _log(mlflow, run_id, metrics=audit_metrics(result), at=at, step=day.toordinal() - date(1970, 1, 1).toordinal())
        _log(
            mlflow,
            run_id,
            tags={
                "fairgate.audit_seq": str(entry["seq"]),
                "fairgate.last_audit": rec["date"],
                "fairgate.last_status": rec["status"],
            },
            at=at,
        )
        logged += 1
    return logged


def sync(
    store: ArtifactStore,
    policy: Policy,
    *,
    mlflow: MlflowClient | None = None,
    run_id: str | None = None,
    lifecycle_runs: bool = True,
    run_url: str | None = None,
) -> Synced:
    """Write to MLflow what the model's evidence log holds and MLflow lacks; then move the alias.

    ``run_id`` limits the lifecycle runs to one (the task at the end of a lifecycle run), and
    ``lifecycle_runs=False`` leaves them out (after an audit or a rollback); audits and the alias
    are always brought up to date. Raises :class:`TrackingUnavailable` when the
    server cannot be reached; what was written before stays and the next sync goes on from there.
    """
    mlflow = mlflow or client()
    uri = str(mlflow.tracking_uri)
    out = Synced()
    try:
        entries = evidence.entries(store, policy.model_name)
        audits = []
        for entry in entries:
            kind = entry["record"].get("kind")
            if kind == "audit":
                audits.append(entry)
            wanted = lifecycle_runs and (run_id is None or entry["record"].get("run_id") == run_id)
            if kind != "lifecycle" or not wanted:
                continue
            rec = LifecycleRecord.from_json(entry["record"])
            mlflow_run, wrote = log_lifecycle(mlflow, store, policy, entry, run_url=run_url)
            if wrote:
                out.runs.append(mlflow_run)
            else:
                out.present += 1
            version = _promoted(rec)
            if version:
                mv, new = register_version(
                    mlflow, store, policy, version, run_id=mlflow_run, rec=rec, evidence_hash=entry["hash"]
                )
                if new:
                    out.versions.append(mv)
        production = registry.production_version(store, policy.model_name)
        if production and mlflow_version(mlflow, policy.model_name, production) is None:
            # The alias needs the production version in MLflow: log the run that deployed it too.
            deployed = next(
                (
                    e
                    for e in reversed(entries)
                    if e["record"].get("kind") == "lifecycle"
                    and _promoted(LifecycleRecord.from_json(e["record"])) == production
                ),
                None,
            )
            if deployed is not None:
                mlflow_run, wrote = log_lifecycle(mlflow, store, policy, deployed)
                if wrote:
                    out.runs.append(mlflow_run)
                mv, _ = register_version(
                    mlflow,
                    store,
                    policy,
                    production,
                    run_id=mlflow_run,
                    rec=LifecycleRecord.from_json(deployed["record"]),
                    evidence_hash=deployed["hash"],
                )
                out.versions.append(mv)
        out.audits = log_audits(mlflow, store, policy.model_name, audits)
        out.alias = sync_alias(mlflow, store, policy.model_name)
    except _tracking_errors() as exc:
        raise _unavailable(exc, uri) from exc
    return out


def disagreements(store: ArtifactStore, model: str, *, mlflow: MlflowClient | None = None) -> list[str]:
    """Where MLflow's registry and runs differ from Fairgate's pointer and evidence log (empty: none)."""
    mlflow = mlflow or client()
    uri = str(mlflow.tracking_uri)
    problems = []
    try:
        version = registry.production_version(store, model)
        versions = _model_versions(mlflow, model)
        by_number = {str(mv.version): mv for mv in versions}
        aliased = alias_version(mlflow, model)
        if version and aliased is None:
            problems.append(f"Fairgate has {version[:12]} in production but MLflow's '{ALIAS}' alias is not set.")
        elif version is None and aliased is not None:
            problems.append(
                f"Nothing is in production in Fairgate, but MLflow's '{ALIAS}' alias names version {aliased}."
            )
        elif version and aliased is not None:
            sha = by_number[aliased].tags.get("fairgate.sha256") if aliased in by_number else None
            if sha != version:
                problems.append(
                    f"MLflow's '{ALIAS}' alias names version {aliased} ({str(sha)[:12]}), but Fairgate's "
                    f"production version is {version[:12]}."
                )
        chain = {e["hash"] for e in evidence.entries(store, model)}
        claims: dict[str, list[str]] = {}
        for mv in versions:
            claims.setdefault(str(mv.tags.get("fairgate.sha256")), []).append(str(mv.version))
            if mv.tags.get("fairgate.evidence_hash") not in chain:  # a tag anyone can copy; the hash must be ours
                problems.append(
                    f"MLflow version {mv.version} of {model!r} names no record of Fairgate's evidence chain "
                    "(fairgate.evidence_hash): Fairgate did not register it."
                )
        for sha, numbers in claims.items():
            if len(numbers) > 1:
                problems.append(f"MLflow versions {numbers} of {model!r} all claim Fairgate version {sha[:12]}.")
        known = {m["version"] for m in registry.list_versions(store, model)}
        for mv in versions:
            sha = mv.tags.get("fairgate.sha256")
            if sha not in known:
                problems.append(
                    f"MLflow version {mv.version} of {model!r} ({str(sha)[:12]}) is not a version in "
                    "Fairgate's registry."
                )
        exp = mlflow.get_experiment_by_name(f"fairgate/{model}")
        logged: set[str] = set()
        if exp is not None:
            for run in mlflow.search_runs(
                [exp.experiment_id], filter_string="tags.`fairgate.kind` = 'lifecycle'", max_results=50000
            ):
                if run.data.tags.get("fairgate.complete"):
                    logged.add(run.data.tags.get("fairgate.evidence_hash", ""))
        missing = [
            e["record"]["run_id"]
            for e in evidence.entries(store, model)
            if e["record"].get("kind") == "lifecycle" and e["hash"] not in logged
        ]
        if missing:
            problems.append(
                f"{len(missing)} lifecycle run(s) are not in MLflow (first: {missing[0]}); run `fairgate mlflow-sync`."
            )
    except _tracking_errors() as exc:
        raise _unavailable(exc, uri) from exc
    return problems


def not_logged(store: ArtifactStore, model: str, *, run_id: str, error: str) -> Entry:
    """Record in the evidence log that a lifecycle run did not reach MLflow (the re-sync command logs it later)."""
    return evidence.append(
        store,
        model,
        {
            "kind": "tracking",
            "status": "not_logged",
            "lifecycle_run_id": run_id,
            "error": error[:2000],
            "resync": "fairgate mlflow-sync",
        },
        key=f"tracking/{run_id}/not_logged",
    )


def _not_logged(store: ArtifactStore, policy: Policy, run_id: str | None, error: str) -> Tracked:
    if run_id:
        not_logged(store, policy.model_name, run_id=run_id, error=error)
    return Tracked(logged=False, error=error)


def track(
    store: ArtifactStore,
    policy: Policy,
    *,
    uri: str | None = None,
    run_id: str | None = None,
    lifecycle_runs: bool = True,
    run_url: str | None = None,
    last_try: bool = True,
) -> Tracked:
    """The tracking stage: :func:`sync`, and for a lifecycle run that did not reach MLflow, the evidence of it.

    When the server cannot be reached, a try that is not the last raises (the task retries); the
    last one records ``not_logged`` in the evidence log for ``run_id`` and returns, so the run it
    belongs to still concludes. ``fairgate mlflow-sync`` logs it later. A refusal that a retry
    cannot change (bad input, say) is recorded at once, the same way. A run that was logged adds
    nothing to the evidence log: its MLflow run carries the evidence hash (``fairgate.evidence_hash``).
    """
    try:
        mlflow = client(uri)
        synced = sync(store, policy, mlflow=mlflow, run_id=run_id, lifecycle_runs=lifecycle_runs, run_url=run_url)
    except TrackingUnavailable as exc:
        if not last_try:
            raise
        return _not_logged(store, policy, run_id, str(exc))
    except NOT_RETRIED as exc:  # e.g. a production version no evidence record deployed: retrying will not help
        return _not_logged(store, policy, run_id, f"{type(exc).__name__}: {exc}")
    return Tracked(
        logged=True,
        runs=tuple(synced.runs),
        versions=tuple(synced.versions),
        audits=synced.audits,
        alias=synced.alias,
        tracking_uri=re.sub(r"//[^@/]*@", "//", str(mlflow.tracking_uri)),
    )
