"""Whether the version production names may be used: only what the evidence chain approved.

The store holds both the production pointer and the evidence log, and anyone who can write to
the bucket can move the pointer. So nothing is scored, served, bundled or reported "in
production" on the pointer's word alone. :func:`production` accepts the pointer's version only
when the model's own evidence chain verifies and holds, up to HEAD, a record of the very run the
pointer names that put this version there:

- a ``deployment`` record (written before the pointer moves, see
  :func:`fairgate.stages.lifecycle.deploy`) naming the version, the manifest's sha256 and how it
  was approved (the gate passed, or a person approved a review);
- a ``lifecycle`` record of a deployed run (records written before ``deployment`` records
  existed), with a passing gate or an approving review;
- a ``rollback`` record to the version, whose target was itself deployed through a record.

The model file must hash to the version (checked when it is loaded) and the manifest to the
sha256 the record names. Anything else is :class:`~fairgate.errors.NotApproved` (an integrity
error: never retried), naming the version and the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fairgate.errors import EvidenceIntegrityError, NotApproved
from fairgate.governance import evidence, registry
from fairgate.governance.evidence import Entry
from fairgate.governance.registry import Pointer

if TYPE_CHECKING:
    from fairgate.storage.base import ArtifactStore


@dataclass(frozen=True)
class Approved:
    """The production version, with the evidence that put it there."""

    model: str
    version: str
    run_id: str  # the run that put it in production
    seq: int  # the evidence record of that run
    how: str  # "deployed (gate pass)", "deployed (approved by a reviewer)", "rollback"
    pointer: Pointer


def production(store: ArtifactStore, model: str) -> Approved | None:
    """The version in production of ``model`` if the evidence approves it; ``None`` when nothing is deployed.

    Raises :class:`~fairgate.errors.EvidenceIntegrityError` when the chain does not verify and
    :class:`~fairgate.errors.NotApproved` when no record of the pointer's run put this version there.
    """
    pointer, _ = registry.read_pointer(store, model)  # shape, model and version checked there
    if pointer is None:
        return None
    version, run_id = pointer["version"], pointer["run_id"]
    signed, found = _signed_promotion(store, model, version, run_id)
    if not signed:  # no evidence key: the whole chain is re-hashed, then searched
        checked = evidence.verify(store, model)
        if not checked.intact_to_head:  # a record past HEAD is a finding of verify-log, not evidence: never read
            raise EvidenceIntegrityError(
                f"The evidence log of {model!r} does not verify ({'; '.join(checked.problems[:2])}); production "
                f"version {version[:12]} is not used until it does (fairgate verify-log --model {model})."
            )
        entries = [evidence.entry(store, model, seq) for seq in range(checked.head, 0, -1)]  # newest first
        complete = _promotion(entries, version, run_id, complete=True)
        found = complete if isinstance(complete, tuple) else None
    if found is None:
        raise NotApproved(
            f"Production of {model!r} names version {version[:12]} (run {run_id!r}), but no deployment or "
            f"rollback record of that run in the verified evidence chain puts it there; it is not used. "
            "Roll back to a recorded version (fairgate rollback) or re-run the lifecycle."
        )
    entry, how = found
    bound = entry["record"].get("manifest_sha256")
    if bound is not None and bound != registry.manifest_sha256(store, model, version):
        raise NotApproved(
            f"The manifest of {model!r} version {version[:12]} is not the one its deployment record "
            f"(evidence seq {entry['seq']}) names; it was changed after approval and is not used."
        )
    return Approved(model=model, version=version, run_id=run_id, seq=entry["seq"], how=how, pointer=pointer)


def deploy_recorded(
    store: ArtifactStore,
    model: str,
    version: str,
    *,
    run_id: str,
    dag_id: str,
    gate_outcome: str,
    replaces: str | None,
    approver: str,
    review: dict[str, Any] | None = None,
    reason: str = "",
    expected: tuple[Pointer | None, str | None] | None = None,
) -> Entry:
    """Put a registered ``version`` in production, evidence first; the ``deployment`` entry.

    Appends the ``deployment`` record (keyed by the run, so a retry finds it), then moves the pointer
    by compare-and-swap on ``expected`` (the pointer the caller decided on), unless the pointer
    already names this run's version (a retry after the swap). See :func:`fairgate.stages.lifecycle.deploy`.
    """
    expected = expected if expected is not None else registry.read_pointer(store, model)
    intent = evidence.append(
        store,
        model,
        {
            "kind": "deployment",
            "run_id": run_id,
            "dag_id": dag_id,
            "version": version,
            "manifest_sha256": registry.manifest_sha256(store, model, version),
            "replaces": replaces,
            "gate_outcome": gate_outcome,
            "review": review,
            "approver": approver,
        },
        key=f"{dag_id}/{run_id}/deployment/{version}",
    )
    pointer = expected[0]
    if not (pointer and pointer["run_id"] == run_id and pointer["version"] == version):
        registry.promote(
            store, model, version, action="deploy", run_id=run_id, actor=approver, reason=reason, expected=expected
        )
    return intent


def was_deployed(entries: list[Entry], version: str) -> bool:
    """Whether the records (newest first) show ``version`` approved and put in production (a rollback target must be).

    A lifecycle record of a deployed run shows it. A ``deployment`` record alone does not: it is
    written before the swap, which may have lost; it counts once a newer record saw the version in
    production (a deployment that replaced it, a rollback away from it).
    """
    for i, entry in enumerate(entries):
        rec = entry["record"]
        if _deployed(rec, version) is None:
            continue
        if rec.get("kind") == "lifecycle" or any(
            newer["record"].get("replaces" if newer["record"].get("kind") == "deployment" else "from_version")
            == version
            for newer in entries[:i]
            if newer["record"].get("kind") in ("deployment", "rollback")
        ):
            return True
    return False


UNDECIDED = "undecided"  # _promotion on the newest records only: older ones are needed to decide


def _signed_promotion(
    store: ArtifactStore, model: str, version: str, run_id: str
) -> tuple[bool, tuple[Entry, str] | None]:
    """With an evidence key, ``(True, the promotion)`` found in the newest records, read back from the
    signed HEAD only as far as needed (50, then 4x more each time); ``(False, None)`` without a key."""
    count = 50
    while True:
        tail = evidence.signed_tail(store, model, count)
        if tail is None:
            return False, None
        entries, complete = tail
        found = _promotion(entries, version, run_id, complete=complete)
        if found != UNDECIDED:
            return True, found if isinstance(found, tuple) else None
        count *= 4


def _promotion(entries: list[Entry], version: str, run_id: str, *, complete: bool) -> tuple[Entry, str] | str | None:
    """The newest record (of ``entries``, newest first) of ``run_id`` that put ``version`` in production.

    ``complete=False``: ``entries`` are only the newest records; where older ones could decide (the
    run's rollback to a version deployed before them, or no record of the run yet): :data:`UNDECIDED`.
    """
    for i, entry in enumerate(entries):
        rec = entry["record"]
        if rec.get("run_id") != run_id:
            continue
        how = _deployed(rec, version)
        if how is not None:
            return entry, how
        if rec.get("kind") == "rollback" and rec.get("to_version") == version:
            if was_deployed(entries[i + 1 :], version):
                return entry, "rollback"
            if not complete:
                return UNDECIDED
    if not complete:
        return UNDECIDED
    return None


def _deployed(rec: dict[str, Any], version: str) -> str | None:
    """How ``rec`` approved and deployed ``version`` (None if it did not)."""
    kind = rec.get("kind")
    if kind == "deployment" and rec.get("version") == version:
        return _approval(rec.get("gate_outcome"), rec.get("review"))
    if kind == "lifecycle":
        deployment, model = rec.get("deployment") or {}, rec.get("model") or {}
        if deployment.get("promoted") and deployment.get("version") == version == model.get("sha256"):
            return _approval((rec.get("gate") or {}).get("outcome"), rec.get("review"))
    return None


def _approval(gate_outcome: Any, review: Any) -> str | None:
    if gate_outcome == "pass":
        return "deployed (gate pass)"
    if isinstance(review, dict) and review.get("approved"):
        return f"deployed (approved by {review.get('reviewer') or 'a reviewer'})"
    return None
