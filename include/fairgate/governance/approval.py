"""Whether the version production names may be used: only what the evidence chain approved.

The store holds both the production pointer and the evidence log, and anyone who can write to
the bucket can change either file. So nothing is scored, served, bundled or reported "in
production" on the pointer's word alone. One rule, in :func:`production`:

    The version the pointer names may be used only if the **newest promotion record** (a
    ``deployment`` or a ``rollback``, not withdrawn) of the model's verified evidence chain
    wrote **that very pointer** (every field of it), names that model and version, was approved
    (a passing gate, an approving review, or a person's rollback), and binds by sha256 **every
    file the version serves from**, each of which still has that sha256 in the store.

The files a version serves from are listed in one place, :func:`files_to_bind`: the registry's
``model.skops``, ``manifest.json`` (the reference record reasons start from, the rank cutoff,
calibration, the gate's figures, the approver) and ``model_card.md``, and the sources its
manifest names: the policy file the version was trained under, its training snapshot and its
split (what a server's input checks, Shapley background and recourse costs are derived from).

A promotion record is written before the pointer moves and holds the pointer it is about to
write. A record whose compare-and-swap then lost is withdrawn by a ``withdrawal`` record, so
the winner's record is again the newest. A record lacking any field this rule reads is refused,
never skipped. Anything else is :class:`~fairgate.errors.NotApproved` (an integrity error:
never retried), naming the file or the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict, cast

from fairgate.errors import EvidenceIntegrityError, NotApproved, NotFoundError, PromotionConflict, RegistryError
from fairgate.governance import evidence, registry
from fairgate.governance.evidence import Entry
from fairgate.governance.registry import Pointer
from fairgate.storage.base import sha256_bytes

if TYPE_CHECKING:
    from fairgate.storage.base import ArtifactStore

PROMOTIONS = ("deployment", "rollback")
WITHDRAWAL = "withdrawal"
# The registry's files of a version (model_card.md is bound when the registration wrote one).
MODEL, MANIFEST, CARD = "model.skops", "manifest.json", "model_card.md"
# The sources the manifest names, beside its training snapshot.
POLICY, SNAPSHOT, SPLIT = "policy.yaml", "training snapshot", "training split"


class Bound(TypedDict):
    """One file a promotion record binds: its key in the store and the sha256 it had when approved."""

    key: str
    sha256: str


@dataclass(frozen=True)
class Approved:
    """The production version, with the evidence that put it there and the files it binds."""

    model: str
    version: str
    run_id: str  # the run that put it in production
    seq: int  # the evidence record of that promotion
    how: str  # "deployed (gate pass)", "deployed (approved by a reviewer)", "rollback"
    pointer: Pointer
    files: dict[str, Bound] = field(default_factory=dict)


def files_to_bind(manifest: registry.Manifest, model: str, version: str) -> dict[str, str]:
    """Every file ``version`` serves from, by role, as store keys: the one list of what a release binds."""
    prefix = registry.version_prefix(model, version)
    keys = {MODEL: f"{prefix}/{MODEL}", MANIFEST: f"{prefix}/{MANIFEST}", CARD: f"{prefix}/{CARD}"}
    data_key = manifest.get("data_key")
    if isinstance(data_key, str) and data_key:
        folder = data_key.rpartition("/")[0]
        keys |= {POLICY: f"{folder}/policy.yaml", SNAPSHOT: data_key, SPLIT: f"{folder}/split.parquet"}
    return keys


def _required(manifest: registry.Manifest) -> list[str]:
    """The roles a promotion record of a version with ``manifest`` must bind (the card is optional)."""
    return [role for role in files_to_bind(manifest, "m", "0" * 64) if role != CARD]


def bind(store: ArtifactStore, model: str, version: str) -> dict[str, Bound]:
    """The sha256 of every file ``version`` serves from, as stored now (the promotion record keeps it).

    Refuses (:class:`~fairgate.errors.RegistryError`) a version whose required files are missing or
    disagree with its manifest: a promotion binds a release that is whole, or nothing.
    """
    manifest = registry.read_manifest(store, model, version)
    out: dict[str, Bound] = {}
    for role, key in files_to_bind(manifest, model, version).items():
        try:
            out[role] = {"key": key, "sha256": sha256_bytes(store.get(key))}
        except NotFoundError:
            if role != CARD:
                raise RegistryError(
                    f"The {role} of {model!r} version {version[:12]} ({store.uri(key)}) is missing; "
                    "a release is promoted whole or not at all."
                ) from None
    problems = _disagreements(manifest, version, out)
    if problems:
        raise RegistryError(f"{model!r} version {version[:12]} cannot be promoted: {'; '.join(problems)}.")
    return out


def _disagreements(manifest: registry.Manifest, version: str, files: dict[str, Bound]) -> list[str]:
    """Where the bound files disagree with the manifest that names them."""
    problems = []
    if files[MODEL]["sha256"] != version:
        problems.append(f"{MODEL} does not hash to the version")
    if manifest.get("model_sha256") != version:
        problems.append(f"{MANIFEST} names model {str(manifest.get('model_sha256'))[:12]}")
    if SNAPSHOT in files and files[SNAPSHOT]["sha256"] != manifest.get("data_sha256"):
        problems.append(f"the {SNAPSHOT} is not the data_sha256 of {MANIFEST}")
    if POLICY in files and manifest.get("policy_sha256") not in (None, "", files[POLICY]["sha256"]):
        problems.append(f"{POLICY} is not the policy_sha256 of {MANIFEST}")
    return problems


def check_files(store: ArtifactStore, model: str, version: str, entry: Entry) -> dict[str, Bound]:
    """The files ``entry`` (a promotion record) binds, each read back and hashed; refused by name otherwise."""
    rec, seq = entry["record"], entry["seq"]
    files = rec.get("files")
    where = f"{model!r} version {version[:12]}"
    if not isinstance(files, dict) or not all(
        isinstance(b, dict) and isinstance(b.get("key"), str) and isinstance(b.get("sha256"), str)
        for b in files.values()
    ):
        raise NotApproved(
            f"The promotion record of {where} (evidence seq {seq}) binds no files: it was written by an earlier "
            "release of Fairgate, which bound the manifest only. It is not used; re-run the lifecycle to promote "
            "it again."
        )
    bound = cast(dict[str, Bound], files)
    if MANIFEST not in bound or MODEL not in bound:
        missing = [r for r in (MODEL, MANIFEST) if r not in bound]
        raise NotApproved(f"The promotion record of {where} (evidence seq {seq}) does not bind {missing}; not used.")
    for role in [MANIFEST, *(r for r in bound if r != MANIFEST)]:  # the manifest first: it says what else is due
        key, expected = bound[role]["key"], bound[role]["sha256"]
        try:
            actual = sha256_bytes(store.get(key))
        except NotFoundError:
            raise NotApproved(
                f"The {role} of {where} ({store.uri(key)}) is missing; its promotion record (evidence seq {seq}) "
                "binds it, so the version is not used."
            ) from None
        if actual != expected:
            raise NotApproved(
                f"The {role} of {where} ({store.uri(key)}) is not the one its promotion record (evidence seq "
                f"{seq}) binds: sha256 {actual[:16]}, bound {expected[:16]}. It was changed after approval and "
                "the version is not used."
            )
    manifest = registry.read_manifest(store, model, version)
    unbound = [role for role in _required(manifest) if role not in bound]
    if unbound:
        raise NotApproved(
            f"The promotion record of {where} (evidence seq {seq}) does not bind {unbound}, which its "
            f"{MANIFEST} names; not used."
        )
    problems = _disagreements(manifest, version, bound)
    if problems:
        raise NotApproved(f"The files of {where} bound by evidence seq {seq} disagree: {'; '.join(problems)}.")
    return bound


def production(store: ArtifactStore, model: str) -> Approved | None:
    """The version in production of ``model`` if the evidence approves it; ``None`` when nothing is deployed.

    Raises :class:`~fairgate.errors.EvidenceIntegrityError` when the chain does not verify and
    :class:`~fairgate.errors.NotApproved` when the rule of this module does not hold, naming why.
    """
    pointer, _ = registry.read_pointer(store, model)  # shape, model and version checked there
    entry = _newest_promotion(store, model)
    if entry is None:
        if pointer is None:
            return None
        raise NotApproved(
            f"Production of {model!r} names version {pointer['version'][:12]} (run {pointer['run_id']!r}), but "
            "the verified evidence chain holds no deployment or rollback record; it is not used. Re-run the "
            "lifecycle."
        )
    rec = entry["record"]
    version = promoted_version(rec)
    if pointer is None:
        raise NotApproved(
            f"The production pointer of {model!r} ({store.uri(registry.pointer_key(model))}) is missing, but the "
            f"newest promotion record (evidence seq {entry['seq']}) put version {version[:12]} there; nothing is "
            "used until a rollback or a lifecycle run writes it again."
        )
    written = rec.get("pointer")
    if not isinstance(written, dict) or not isinstance(rec.get("files"), dict):
        raise NotApproved(
            f"The newest promotion record of {model!r} (evidence seq {entry['seq']}: {rec.get('kind')} of version "
            f"{version[:12]}) was written by an earlier release of Fairgate, which bound neither the production "
            "pointer nor the files the version serves from; it is not used. Promote it again under the current "
            f"rule: re-run the lifecycle, or record a rollback to it (fairgate rollback --to {version})."
        )
    if written != pointer:
        differ = sorted(k for k in {*pointer, *written} if pointer.get(k) != written.get(k))
        raise NotApproved(
            f"Production of {model!r} names version {pointer['version'][:12]} (run {pointer['run_id']!r}), but the "
            f"newest promotion record of its verified evidence chain (seq {entry['seq']}: {rec.get('kind')} of "
            f"version {version[:12]}, run {rec.get('run_id')!r}) wrote another production pointer (fields "
            f"{', '.join(differ)} differ): the pointer was changed after that promotion and is not used (a "
            "promotion cut off before it moved the pointer is finished by its retry). Record a rollback "
            f"(fairgate rollback --model {model}) or re-run the lifecycle."
        )
    if rec.get("model_name") != model or version != pointer["version"] or rec.get("run_id") != pointer["run_id"]:
        raise NotApproved(
            f"The newest promotion record of {model!r} (evidence seq {entry['seq']}) is not about the version and "
            "run its pointer names; not used."
        )
    how = _approval(rec)
    if how is None:
        raise NotApproved(
            f"The newest promotion record of {model!r} (evidence seq {entry['seq']}) puts version {version[:12]} "
            f"in production without an approval (gate {rec.get('gate_outcome')!r}, no approving review, no person "
            "named); it is not used."
        )
    files = check_files(store, model, version, entry)
    return Approved(
        model=model, version=version, run_id=pointer["run_id"], seq=entry["seq"], how=how, pointer=pointer, files=files
    )


def read_bound(store: ArtifactStore, approved: Approved, role: str) -> bytes:
    """The bytes of one file ``approved`` binds, checked again against its sha256 (read once, used as read)."""
    bound = approved.files.get(role)
    if bound is None:
        raise NotApproved(f"The promotion record of {approved.model!r} (evidence seq {approved.seq}) binds no {role}.")
    try:
        data = store.get(bound["key"])
    except NotFoundError:
        raise NotApproved(f"The {role} of {approved.model!r} ({store.uri(bound['key'])}) is missing.") from None
    if sha256_bytes(data) != bound["sha256"]:
        raise NotApproved(
            f"The {role} of {approved.model!r} version {approved.version[:12]} ({store.uri(bound['key'])}) is not "
            f"the one its promotion record (evidence seq {approved.seq}) binds; not used."
        )
    return data


def _newest_promotion(store: ArtifactStore, model: str) -> Entry | None:
    """The newest promotion record not withdrawn, from the verified chain (read back from a signed HEAD
    only as far as needed, or, without an evidence key, after re-hashing the whole chain)."""
    count = 50
    while True:
        tail = evidence.signed_tail(store, model, count)
        if tail is None:
            break
        entries, complete = tail
        found = newest_promotion(entries)
        if found is not None or complete:
            return found
        count *= 4
    checked = evidence.verify(store, model)
    if not checked.intact_to_head:  # a record past HEAD is a finding of verify-log, not evidence: never read
        raise EvidenceIntegrityError(
            f"The evidence log of {model!r} does not verify ({'; '.join(checked.problems[:2])}); its production "
            f"version is not used until it does (fairgate verify-log --model {model})."
        )
    return newest_promotion([evidence.entry(store, model, seq) for seq in range(checked.head, 0, -1)])


def newest_promotion(entries: list[Entry]) -> Entry | None:
    """Of ``entries`` (newest first), the newest deployment or rollback record that was not withdrawn."""
    withdrawn: set[Any] = set()
    for entry in entries:
        rec = entry["record"]
        if rec.get("kind") == WITHDRAWAL:
            withdrawn.add(rec.get("withdraws"))
        elif rec.get("kind") in PROMOTIONS and entry["seq"] not in withdrawn:
            return entry
    return None


def promote_recorded(
    store: ArtifactStore,
    model: str,
    record: dict[str, Any],
    pointer: Pointer,
    *,
    key: str,
    expected: tuple[Pointer | None, str | None],
) -> Entry:
    """Append a promotion ``record`` holding ``pointer``, then write that pointer by compare-and-swap.

    Keyed by ``key``: a retry finds the record a first try appended and writes the pointer *it* holds.
    A swap that loses appends a ``withdrawal`` of the record, then raises
    :class:`~fairgate.errors.PromotionConflict`: the record never took effect and is not the newest.
    """
    entry = evidence.append(store, model, {**record, "pointer": pointer}, key=key)
    written = cast(Pointer, entry["record"]["pointer"])
    current, etag = expected
    if current != written:
        try:
            registry.move_pointer(store, model, written, expected_etag=etag)
        except PromotionConflict as exc:
            evidence.append(
                store,
                model,
                {
                    "kind": WITHDRAWAL,
                    "withdraws": entry["seq"],
                    "run_id": record.get("run_id"),
                    "version": written["version"],
                    "reason": f"the production pointer moved before this promotion could write it ({exc})",
                },
                key=f"{key}/withdrawal",
            )
            raise
    return entry


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

    The record binds every file of the version (:func:`bind`) and the pointer it writes; the pointer
    then moves by compare-and-swap on ``expected`` (the pointer the caller decided on). See
    :func:`promote_recorded` and :func:`fairgate.stages.lifecycle.deploy`.
    """
    expected = expected if expected is not None else registry.read_pointer(store, model)
    files = bind(store, model, version)
    pointer = registry.next_pointer(
        store, model, version, current=expected[0], action="deploy", run_id=run_id, actor=approver, reason=reason
    )
    record = {
        "kind": "deployment",
        "run_id": run_id,
        "dag_id": dag_id,
        "version": version,
        "manifest_sha256": files[MANIFEST]["sha256"],
        "files": files,
        "replaces": replaces,
        "gate_outcome": gate_outcome,
        "review": review,
        "approver": approver,
    }
    return promote_recorded(
        store, model, record, pointer, key=f"{dag_id}/{run_id}/deployment/{version}", expected=expected
    )


def rollback_binding(store: ArtifactStore, model: str, entries: list[Entry], version: str) -> dict[str, Bound]:
    """The files a rollback to ``version`` binds: those its own promotion record bound, checked against the
    store now (a file changed since is refused), or, for a record of an earlier release that bound the
    manifest only, the files as stored now with that manifest's sha256 checked."""
    for entry in entries:  # newest first
        rec = entry["record"]
        if rec.get("kind") not in PROMOTIONS or version not in (rec.get("version"), rec.get("to_version")):
            continue
        if isinstance(rec.get("files"), dict):
            return check_files(store, model, version, entry)
        files = bind(store, model, version)
        if rec.get("manifest_sha256") not in (None, files[MANIFEST]["sha256"]):
            raise NotApproved(
                f"The manifest of {model!r} version {version[:12]} is not the one its promotion record (evidence "
                f"seq {entry['seq']}) names; it was changed after approval, so nothing is rolled back to it."
            )
        return files
    raise RegistryError(f"No promotion record of {model!r} names version {version[:12]}; nothing to roll back to.")


def was_deployed(entries: list[Entry], version: str) -> bool:
    """Whether the records (newest first) show ``version`` approved and put in production (a rollback target must be).

    A lifecycle record of a deployed run shows it. A ``deployment`` record alone does not: it is
    written before the swap, which may have lost; it counts once a newer record saw the version in
    production (a deployment that replaced it, a rollback away from it).
    """
    withdrawn = {e["record"].get("withdraws") for e in entries if e["record"].get("kind") == WITHDRAWAL}
    for i, entry in enumerate(entries):
        rec = entry["record"]
        if entry["seq"] in withdrawn or _deployed(rec, version) is None:
            continue
        if rec.get("kind") == "lifecycle" or any(
            newer["record"].get("replaces" if newer["record"].get("kind") == "deployment" else "from_version")
            == version
            for newer in entries[:i]
            if newer["record"].get("kind") in PROMOTIONS and newer["seq"] not in withdrawn
        ):
            return True
    return False


def promoted_version(rec: dict[str, Any]) -> str:
    """The version a promotion record puts in production."""
    return str(rec.get("version") if rec.get("kind") == "deployment" else rec.get("to_version"))


def previous_version(entries: list[Entry]) -> str | None:
    """The version production held before the newest promotion (``entries`` newest first), from the chain."""
    newest = newest_promotion(entries)
    if newest is None:
        return None
    rec = newest["record"]
    before = rec.get("replaces") if rec.get("kind") == "deployment" else rec.get("from_version")
    return before if isinstance(before, str) else None


def _approval(rec: dict[str, Any]) -> str | None:
    """How a promotion record approved what it promoted (None: it did not)."""
    if rec.get("kind") == "rollback":
        actor = rec.get("actor")
        return "rollback" if isinstance(actor, str) and actor.strip() else None
    if rec.get("gate_outcome") == "pass":
        return "deployed (gate pass)"
    review = rec.get("review")
    if isinstance(review, dict) and review.get("approved"):
        return f"deployed (approved by {review.get('reviewer') or 'a reviewer'})"
    return None


def _deployed(rec: dict[str, Any], version: str) -> str | None:
    """How ``rec`` approved and deployed ``version`` (None if it did not)."""
    kind = rec.get("kind")
    if kind == "deployment" and rec.get("version") == version:
        return _approval(rec)
    if kind == "lifecycle":
        deployment, model = rec.get("deployment") or {}, rec.get("model") or {}
        if deployment.get("promoted") and deployment.get("version") == version == model.get("sha256"):
            gate = (rec.get("gate") or {}).get("outcome")
            return _approval({"kind": "deployment", "gate_outcome": gate, "review": rec.get("review")})
    return None
