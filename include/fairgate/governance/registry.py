"""Model registry on the artifact store.

```
registry/<model>/versions/<sha256>/model.skops     immutable, content-addressed
registry/<model>/versions/<sha256>/manifest.json   lineage, metrics, gate decision, approver
registry/<model>/versions/<sha256>/model_card.md
registry/<model>/production.json                   the pointer: the only thing that says what is deployed
```

The pointer moves only by compare-and-swap on the version the mover read, so two concurrent
promotions cannot both win; the loser gets :class:`PromotionConflict` and changes nothing.

The store is not trusted on its own: a pointer or manifest that is not of its shape, or names a
version that is not a sha256, is an :class:`~fairgate.errors.IntegrityError` naming the key, and a
model file must hash to its version (the content address) as well as to its manifest. Whether
the version production names may be *used* is decided against the evidence chain, in
:mod:`fairgate.governance.approval`.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

from fairgate.errors import (
    ConflictError,
    EvidenceIntegrityError,
    ModelIntegrityError,
    NotFoundError,
    PromotionConflict,
    RegistryError,
)
from fairgate.models.training import Selection, load_model_bytes
from fairgate.storage.base import sha256_bytes

if TYPE_CHECKING:
    from fairgate.fairness.estimation import Calibration
    from fairgate.fairness.metrics import Interval
    from fairgate.storage.base import ArtifactStore


SHA256 = re.compile(r"[0-9a-f]{64}")


class ReviewRules(TypedDict):
    """The policy's ``review`` section as a manifest keeps it."""

    required: str
    approvers: list[str]
    quorum: int
    separate_from_trigger: bool


class ImpactAnswers(TypedDict):
    """The policy's ``impact_assessment`` as a manifest keeps it (None where unanswered)."""

    affected_groups: str | None
    misuse: str | None
    redress: str | None
    severity: str | None
    mitigations: list[str]


class OwnerAnswers(TypedDict):
    retraining: str | None
    monitoring: str | None
    complaints: str | None


class Manifest(TypedDict, total=False):
    """A registered version's ``manifest.json``: lineage, the gate's figures, the approver, the serving contract.

    Written once by the deployment (:func:`fairgate.stages.lifecycle.deploy`); ``version``,
    ``model_sha256`` and ``model_uri`` are added by :func:`register`. Keys are optional because
    manifests of earlier releases lack the later ones.
    """

    model: str
    version: str
    model_sha256: str
    model_uri: str
    approved: bool
    approver: str
    review: dict[str, Any] | None
    gate_outcome: str
    gate_reasons: list[str]
    registered_at: str
    dag_id: str
    run_id: str
    data_sha256: str
    data_uri: str
    data_key: str
    policy_sha256: str
    code_version: str
    performance: dict[str, Any] | None
    fairness: dict[str, dict[str, Interval]]  # per comparison: each metric with its interval (no counts)
    weighted: bool
    estimator: str
    mitigation: str | None
    decides_with_protected_attributes: list[str]
    reference: dict[str, Any]  # the typical record, per input (reason codes start from it)
    calibration: Calibration | None
    recourse_cost_unit: dict[str, float] | None
    selection: Selection | None  # decisions by rank: the rule, and the cutoff the gate's selection had
    threshold_overrides: dict[str, Any] | None  # a manual run's override of the gate thresholds, with its reason
    review_rules: ReviewRules  # the policy's review section in force
    impact_assessment: ImpactAnswers
    owners: OwnerAnswers  # who answers for retraining, monitoring, complaints


def _prefix(model: str) -> str:
    return f"registry/{model}"


def check_version(version: Any, where: str) -> str:
    """``version`` if it is a sha256 (the only form a version has); else an integrity error naming ``where``."""
    if not isinstance(version, str) or not SHA256.fullmatch(version):
        raise EvidenceIntegrityError(f"{where} names version {str(version)[:80]!r}, which is not a sha256.")
    return version


def version_prefix(model: str, version: str) -> str:
    return f"{_prefix(model)}/versions/{check_version(version, f'a reference to a version of {model!r}')}"


def pointer_key(model: str) -> str:
    return f"{_prefix(model)}/production.json"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()


def register(
    store: ArtifactStore, model: str, model_bytes: bytes, manifest: Manifest, card_md: str | None = None
) -> Manifest:
    """Store a model version (idempotent: the same bytes give the same version).

    Returns the stored manifest; for an existing version that is the first one written.
    """
    version = sha256_bytes(model_bytes)
    prefix = version_prefix(model, version)
    store.put_new(f"{prefix}/model.skops", model_bytes)
    manifest = {
        **manifest,
        "version": version,
        "model_sha256": version,
        "model_uri": store.uri(f"{prefix}/model.skops"),
    }
    try:
        store.put_new(f"{prefix}/manifest.json", dumps(manifest))
    except ConflictError:
        return read_manifest(store, model, version)
    if card_md is not None:
        store.put_new(f"{prefix}/model_card.md", card_md.encode())
    return manifest


def manifest_key(model: str, version: str) -> str:
    return f"{version_prefix(model, version)}/manifest.json"


def read_manifest(store: ArtifactStore, model: str, version: str) -> Manifest:
    key = manifest_key(model, version)
    try:
        manifest = json.loads(store.get(key))
    except NotFoundError:
        raise RegistryError(f"Model {model!r} has no version {version} ({store.uri(key)} not found).") from None
    except ValueError as exc:
        raise EvidenceIntegrityError(f"Manifest {store.uri(key)} is corrupt: {exc}.") from None
    if not isinstance(manifest, dict) or manifest.get("model_sha256") != version:
        raise EvidenceIntegrityError(
            f"Manifest {store.uri(key)} does not describe version {version[:12]} (its model_sha256 differs)."
        )
    return cast("Manifest", manifest)  # checked above: a JSON object naming this version


def manifest_sha256(store: ArtifactStore, model: str, version: str) -> str:
    """sha256 of the manifest's stored bytes: what a deployment record binds."""
    return sha256_bytes(store.get(manifest_key(model, version)))


def list_versions(store: ArtifactStore, model: str) -> list[Manifest]:
    """Every registered version's manifest, oldest first."""
    keys = [k for k in store.list(f"{_prefix(model)}/versions/") if k.endswith("/manifest.json")]
    manifests = [read_manifest(store, model, k.split("/")[-2]) for k in keys]
    return sorted(manifests, key=lambda m: str(m.get("registered_at", "")))


POINTER_FIELDS = ("model", "version", "since", "action", "run_id")


class Move(TypedDict, total=False):
    """One earlier position of the production pointer (its ``history``)."""

    version: str
    since: str
    action: str
    run_id: str


class Pointer(TypedDict):
    """``production.json``: the version in production, how it got there, and where it was before."""

    model: str
    version: str
    since: str
    action: str  # "deploy" or "rollback"
    run_id: str
    actor: NotRequired[str]
    reason: NotRequired[str]
    history: NotRequired[list[Move]]


def read_pointer(store: ArtifactStore, model: str) -> tuple[Pointer | None, str | None]:
    """The production pointer and its etag, or ``(None, None)`` before the first deployment.

    A pointer that is not JSON, lacks a field, names another model or a version that is not a
    sha256 is an :class:`~fairgate.errors.EvidenceIntegrityError` naming the key.
    """
    key = pointer_key(model)
    try:
        data, etag = store.get_with_etag(key)
    except NotFoundError:
        return None, None
    where = f"Production pointer {store.uri(key)}"
    try:
        pointer = json.loads(data)
    except ValueError:
        raise EvidenceIntegrityError(f"{where} is not valid JSON.") from None
    if not isinstance(pointer, dict) or any(not isinstance(pointer.get(f), str) for f in POINTER_FIELDS):
        raise EvidenceIntegrityError(f"{where} lacks one of the fields {list(POINTER_FIELDS)} (each a string).")
    if pointer["model"] != model:
        raise EvidenceIntegrityError(f"{where} names model {pointer['model']!r}, not {model!r}.")
    check_version(pointer["version"], where)
    return cast(Pointer, pointer), etag  # its fields checked just above


def production_version(store: ArtifactStore, model: str) -> str | None:
    pointer, _ = read_pointer(store, model)
    return pointer["version"] if pointer else None


def next_pointer(
    store: ArtifactStore,
    model: str,
    version: str,
    *,
    current: Pointer | None,
    action: str,
    run_id: str,
    actor: str,
    reason: str,
) -> Pointer:
    """The pointer that puts ``version`` in production after ``current``; only approved versions qualify.

    Built before it is written, so the promotion record can hold it whole: the record binds every
    field of the pointer it moves (:func:`fairgate.governance.approval.production` compares the two).
    """
    manifest = read_manifest(store, model, version)
    if not manifest.get("approved"):
        raise RegistryError(
            f"Version {version} of {model!r} was never approved "
            f"(gate decision {manifest.get('gate_outcome')!r}); it cannot be put in production."
        )
    history: list[Move] = list(current.get("history", [])) if current else []
    if current:
        history.append(
            Move(version=current["version"], since=current["since"], action=current["action"], run_id=current["run_id"])
        )
    return {
        "model": model,
        "version": version,
        "since": datetime.now(UTC).isoformat(),
        "action": action,
        "run_id": run_id,
        "actor": actor,
        "reason": reason,
        "history": history,
    }


def move_pointer(store: ArtifactStore, model: str, pointer: Pointer, *, expected_etag: str | None) -> Pointer:
    """Write ``pointer`` by compare-and-swap on ``expected_etag``; :class:`PromotionConflict` if it moved."""
    try:
        store.swap(pointer_key(model), dumps(pointer), expected_etag=expected_etag)
    except ConflictError as exc:
        now = production_version(store, model)
        raise PromotionConflict(
            f"Promotion of {model!r} version {pointer['version'][:12]} lost the race: production moved to "
            f"{(now or 'nothing')[:12]} after this run read it. Nothing was changed; re-run to compare "
            f"against the new production model. ({exc})"
        ) from exc
    return pointer


def promote(
    store: ArtifactStore,
    model: str,
    version: str,
    *,
    action: str,
    run_id: str,
    actor: str,
    reason: str,
    expected: tuple[Pointer | None, str | None] | None = None,
) -> Pointer:
    """Point production at ``version`` by compare-and-swap (no evidence: the registry's own mechanics).

    ``expected`` is the ``(pointer, etag)`` the caller based its decision on; by default the pointer
    is read here. What a deployment does is :func:`fairgate.governance.approval.deploy_recorded`.
    """
    current, etag = expected if expected is not None else read_pointer(store, model)
    pointer = next_pointer(
        store, model, version, current=current, action=action, run_id=run_id, actor=actor, reason=reason
    )
    return move_pointer(store, model, pointer, expected_etag=etag)


def load_model(store: ArtifactStore, model: str, version: str) -> Any:
    """Load a registered version after checking it against its manifest; errors name the version."""
    read_manifest(store, model, version)  # refuses a manifest of another version
    key = f"{version_prefix(model, version)}/model.skops"
    try:
        return load_model_bytes(
            store.get(key),
            expected_sha256=version,  # the content address: a re-written manifest cannot vouch for other bytes
            where=f"{model} version {version[:12]} ({store.uri(key)})",
        )
    except NotFoundError:
        raise ModelIntegrityError(f"{model} version {version[:12]}: model file {store.uri(key)} is missing.") from None


def rollback_target(current: str | None, to_version: str | None) -> str:
    """The version a rollback moves to: ``to_version``, which must not be ``current`` (the version in
    production as the evidence chain says; the caller also finds the one before it there: the pointer's
    ``history`` is a copy for people, never read to decide)."""
    if current is None:
        raise RegistryError("Nothing is in production, so there is nothing to roll back.")
    if not to_version:
        raise RegistryError("Production has no earlier version to roll back to; name one with --to.")
    if to_version == current:
        raise RegistryError(f"Version {to_version[:12]} is already in production.")
    return to_version
