"""Model registry on the artifact store.

```
registry/<model>/versions/<sha256>/model.skops     immutable, content-addressed
registry/<model>/versions/<sha256>/manifest.json   lineage, metrics, gate decision, approver
registry/<model>/versions/<sha256>/model_card.md
registry/<model>/production.json                   the pointer: the only thing that says what is deployed
```

The pointer moves only by compare-and-swap on the version the mover read, so two concurrent
promotions cannot both win; the loser gets :class:`PromotionConflict` and changes nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fairgate.errors import (
    ConflictError,
    ModelIntegrityError,
    NotFoundError,
    PromotionConflict,
    RegistryError,
)
from fairgate.models.training import load_model_bytes
from fairgate.storage.base import sha256_bytes

if TYPE_CHECKING:
    from fairgate.storage.base import ArtifactStore


def _prefix(model: str) -> str:
    return f"registry/{model}"


def version_prefix(model: str, version: str) -> str:
    return f"{_prefix(model)}/versions/{version}"


def pointer_key(model: str) -> str:
    return f"{_prefix(model)}/production.json"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True, default=str).encode()


def register(
    store: ArtifactStore, model: str, model_bytes: bytes, manifest: dict[str, Any], card_md: str | None = None
) -> dict[str, Any]:
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


def read_manifest(store: ArtifactStore, model: str, version: str) -> dict[str, Any]:
    key = f"{version_prefix(model, version)}/manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(store.get(key))
        return manifest
    except NotFoundError:
        raise RegistryError(f"Model {model!r} has no version {version} ({store.uri(key)} not found).") from None
    except json.JSONDecodeError as exc:
        raise RegistryError(f"Manifest {store.uri(key)} is corrupt: {exc}.") from None


def list_versions(store: ArtifactStore, model: str) -> list[dict[str, Any]]:
    """Every registered version's manifest, oldest first."""
    keys = [k for k in store.list(f"{_prefix(model)}/versions/") if k.endswith("/manifest.json")]
    manifests = [json.loads(store.get(k)) for k in keys]
    return sorted(manifests, key=lambda m: m.get("registered_at", ""))


def read_pointer(store: ArtifactStore, model: str) -> tuple[dict[str, Any] | None, str | None]:
    """The production pointer and its etag, or ``(None, None)`` before the first deployment."""
    try:
        data, etag = store.get_with_etag(pointer_key(model))
    except NotFoundError:
        return None, None
    return json.loads(data), etag


def production_version(store: ArtifactStore, model: str) -> str | None:
    pointer, _ = read_pointer(store, model)
    return pointer["version"] if pointer else None


def promote(
    store: ArtifactStore,
    model: str,
    version: str,
    *,
    action: str,
    run_id: str,
    actor: str,
    reason: str,
    expected: tuple[dict[str, Any] | None, str | None] | None = None,
) -> dict[str, Any]:
    """Point production at ``version`` by compare-and-swap; only approved versions qualify.

    ``expected`` is the ``(pointer, etag)`` the caller based its decision on; by default the
    pointer is read here. If it moved in between, :class:`PromotionConflict` is raised.
    """
    manifest = read_manifest(store, model, version)
    if not manifest.get("approved"):
        raise RegistryError(
            f"Version {version} of {model!r} was never approved "
            f"(gate decision {manifest.get('gate_outcome')!r}); it cannot be put in production."
        )
    current, etag = expected if expected is not None else read_pointer(store, model)
    history = list(current.get("history", [])) if current else []
    if current:
        history.append({k: current[k] for k in ("version", "since", "action", "run_id") if k in current})
    pointer = {
        "model": model,
        "version": version,
        "since": datetime.now(UTC).isoformat(),
        "action": action,
        "run_id": run_id,
        "actor": actor,
        "reason": reason,
        "history": history,
    }
    try:
        store.swap(pointer_key(model), dumps(pointer), expected_etag=etag)
    except ConflictError as exc:
        now = production_version(store, model)
        raise PromotionConflict(
            f"Promotion of {model!r} version {version[:12]} lost the race: production moved to "
            f"{(now or 'nothing')[:12]} after this run read it. Nothing was changed; re-run to compare "
            f"against the new production model. ({exc})"
        ) from exc
    return pointer


def load_model(store: ArtifactStore, model: str, version: str) -> Any:
    """Load a registered version after checking it against its manifest; errors name the version."""
    manifest = read_manifest(store, model, version)
    key = f"{version_prefix(model, version)}/model.skops"
    try:
        return load_model_bytes(
            store.get(key),
            expected_sha256=manifest["model_sha256"],
            where=f"{model} version {version[:12]} ({store.uri(key)})",
        )
    except NotFoundError:
        raise ModelIntegrityError(f"{model} version {version[:12]}: model file {store.uri(key)} is missing.") from None


def rollback_target(pointer: dict[str, Any] | None, to_version: str | None) -> str:
    """The version a rollback moves to: ``to_version``, or the last one before the current."""
    if pointer is None:
        raise RegistryError("Nothing is in production, so there is nothing to roll back.")
    if to_version:
        if to_version == pointer["version"]:
            raise RegistryError(f"Version {to_version[:12]} is already in production.")
        return to_version
    for entry in reversed(pointer.get("history", [])):
        if entry["version"] != pointer["version"]:
            return str(entry["version"])
    raise RegistryError("Production has no earlier version to roll back to; name one with --to.")


def rollback(
    store: ArtifactStore, model: str, *, to_version: str | None, actor: str, reason: str, run_id: str
) -> dict[str, Any]:
    """Move production back to an earlier approved version (compare-and-swap, like a deployment)."""
    pointer, etag = read_pointer(store, model)
    target = rollback_target(pointer, to_version)
    assert pointer is not None  # rollback_target refuses a model with nothing in production
    moved = promote(
        store, model, target, action="rollback", run_id=run_id, actor=actor, reason=reason, expected=(pointer, etag)
    )
    return {
        "kind": "rollback",
        "model_name": model,
        "run_id": run_id,
        "decision": "rolled_back",
        "from_version": pointer["version"],
        "to_version": target,
        "actor": actor,
        "reason": reason,
        "since": moved["since"],
    }
