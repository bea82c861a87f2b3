"""Append-only, hash-chained evidence log on the artifact store: one chain per model.

Each record is its own object, ``evidence/<model>/records/<seq>.json``, created once (never
overwritten), holding the previous record's hash; ``evidence/<model>/HEAD.json`` names the last
one and moves by compare-and-swap. Editing, deleting or re-ordering any record breaks the chain,
and :func:`verify` says where.

One chain per model, not one for the store: models are released, audited and handed to auditors
separately, so each chain verifies (and can be exported) on its own, and two models' runs never
contend for the same HEAD.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fairgate.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from fairgate.storage.base import ArtifactStore

GENESIS = "0" * 64


def head_key(model: str) -> str:
    return f"evidence/{model}/HEAD.json"


def records_prefix(model: str) -> str:
    return f"evidence/{model}/records/"


def _record_key(model: str, seq: int) -> str:
    return f"{records_prefix(model)}{seq:010d}.json"


def models(store: ArtifactStore) -> list[str]:
    """Every model with an evidence log in ``store``."""
    return store.folders("evidence/")


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()


def entry_hash(seq: int, prev_hash: str, record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({"seq": seq, "prev_hash": prev_hash, "record": record})).hexdigest()


def head(store: ArtifactStore, model: str) -> dict[str, Any]:
    """The log's head as ``{"seq", "hash"}`` (``seq`` 0 and the genesis hash for an empty log)."""
    current = _head(store, model)[0]  # read once, not once per key
    return {k: current[k] for k in ("seq", "hash")}


def _head(store: ArtifactStore, model: str) -> tuple[dict[str, Any], str | None]:
    try:
        data, etag = store.get_with_etag(head_key(model))
    except NotFoundError:
        return {"seq": 0, "hash": GENESIS}, None
    return json.loads(data), etag


def append(store: ArtifactStore, model: str, record: dict[str, Any], *, attempts: int = 20) -> dict[str, Any]:
    """Append ``record`` to ``model``'s log; the stored entry (``seq``, ``hash``, ``prev_hash``, ``record``)."""
    record = {**record, "model_name": model, "recorded_at": record.get("recorded_at") or datetime.now(UTC).isoformat()}
    for _ in range(attempts):
        head, etag = _head(store, model)
        seq = head["seq"] + 1
        entry = {"seq": seq, "prev_hash": head["hash"], "record": record, "hash": entry_hash(seq, head["hash"], record)}
        try:
            store.put_new(_record_key(model, seq), canonical(entry))
        except ConflictError:
            _repair_head(store, model, head, etag, seq)  # another writer took seq; catch HEAD up and retry
            continue
        try:
            store.swap(head_key(model), canonical({"seq": seq, "hash": entry["hash"]}), expected_etag=etag)
        except ConflictError:
            pass  # someone repaired HEAD to our record already; the record is in the chain
        return entry
    raise ConflictError(f"Could not append to the evidence log after {attempts} attempts (heavy contention).")


def _repair_head(store: ArtifactStore, model: str, head: dict[str, Any], etag: str | None, seq: int) -> None:
    """Move HEAD onto record ``seq`` if that record correctly extends the current head."""
    try:
        existing = json.loads(store.get(_record_key(model, seq)))
    except NotFoundError:
        return
    if existing.get("prev_hash") == head["hash"]:
        try:
            store.swap(head_key(model), canonical({"seq": seq, "hash": existing["hash"]}), expected_etag=etag)
        except ConflictError:
            pass


@dataclass
class Verification:
    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)


def verify(store: ArtifactStore, model: str) -> Verification:
    """Re-hash every record of ``model``'s log and check the links, the numbering and HEAD."""
    keys = store.list(records_prefix(model))
    problems: list[str] = []
    prev = GENESIS
    for i, key in enumerate(keys, start=1):
        if key != _record_key(model, i):
            problems.append(f"record {i} expected at {_record_key(model, i)}, found {key} (deleted or re-numbered)")
            break
        try:
            entry = json.loads(store.get(key))
        except json.JSONDecodeError:
            problems.append(f"{key} is not valid JSON")
            break
        if entry.get("seq") != i:
            problems.append(f"{key} claims seq {entry.get('seq')}")
        if entry.get("prev_hash") != prev:
            problems.append(
                f"{key} links to {str(entry.get('prev_hash'))[:12]}, expected {prev[:12]} "
                "(a record before it was changed, removed or re-ordered)"
            )
        expected = entry_hash(i, entry.get("prev_hash", ""), entry.get("record", {}))
        if entry.get("hash") != expected:
            problems.append(f"{key} content does not match its hash (edited)")
        prev = entry.get("hash", "")
    head, _ = _head(store, model)
    if not problems and (head["seq"], head["hash"]) != (len(keys), prev if keys else GENESIS):  # noqa: SIM102 (the inner case has its own reason)
        # HEAD one behind is an interrupted append, which the next append repairs.
        if head["seq"] != len(keys) - 1:
            problems.append(f"HEAD names seq {head['seq']} but the log has {len(keys)} records")
    return Verification(ok=not problems, records=len(keys), problems=problems)


def entry(store: ArtifactStore, model: str, seq: int) -> dict[str, Any]:
    """The entry numbered ``seq`` (read by its key: no listing)."""
    return dict(json.loads(store.get(_record_key(model, seq))))


def entries(store: ArtifactStore, model: str) -> list[dict[str, Any]]:
    return [json.loads(store.get(k)) for k in store.list(records_prefix(model))]


def recent(store: ArtifactStore, model: str, kind: str, *, last: int = 20) -> list[dict[str, Any]]:
    """The newest ``last`` entries of ``kind``, newest first (reads back only until it has them)."""
    out = []
    for key in reversed(store.list(records_prefix(model))):
        entry = json.loads(store.get(key))
        if entry["record"].get("kind") == kind:
            out.append(entry)
            if len(out) == last:
                break
    return out


def find(store: ArtifactStore, model: str, run_id: str = "latest", *, kind: str | None = None) -> dict[str, Any] | None:
    """The newest record of ``model`` for ``run_id`` (or the newest of ``kind`` for ``latest``)."""
    for key in reversed(store.list(records_prefix(model))):  # newest first; stops at the first match
        entry = json.loads(store.get(key))
        rec = entry["record"]
        if kind and rec.get("kind") != kind:
            continue
        if run_id == "latest" or rec.get("run_id") == run_id:
            return dict(entry)
    return None
