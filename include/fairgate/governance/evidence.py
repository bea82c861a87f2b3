"""Append-only, hash-chained evidence log on the artifact store: one chain per model.

Each record is its own object, ``evidence/<model>/records/<seq>.json``, created once (never
overwritten), holding the previous record's hash; ``evidence/<model>/HEAD.json`` names the last
one and moves by compare-and-swap. Editing, deleting or re-ordering any record breaks the chain,
and :func:`verify` says where.

One chain per model, not one for the store: models are released, audited and handed to auditors
separately, so each chain verifies (and can be exported) on its own, and two models' runs never
contend for the same HEAD.

An append with a ``key`` is idempotent: a retried task whose first try appended (and was killed
before it could say so) finds its own record instead of appending a second. A HEAD that is lost
is rebuilt from the records; a record past HEAD is finished by the next append (an append
interrupted between the record and HEAD) and, until then, is a finding of :func:`verify`.

Anyone who can write to the store could rewrite a whole chain and its HEAD consistently. With an
evidence key (``FAIRGATE_EVIDENCE_KEY``, or in Airflow the password of the connection
``fairgate_evidence``), HEAD carries an HMAC-SHA256 of the model, seq and hash under that key,
held outside the store: :func:`verify` refuses a HEAD whose MAC does not check, and a lost HEAD
is not rebuilt from the records (they may be the rewritten ones) until someone who checked them
signs it again (``fairgate verify-log --sign-head``). What a signed HEAD cannot show is a
chain cut back to an earlier signed HEAD; compare the head against one kept elsewhere
(``verify-bundle --expect-head``, the ``fairgate.evidence_hash`` tag of each MLflow version).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

from fairgate.errors import ConflictError, EvidenceIntegrityError, NotFoundError
from fairgate.storage import anchor, signing

if TYPE_CHECKING:
    from fairgate.storage.base import ArtifactStore

GENESIS = "0" * 64


class Head(TypedDict):
    """``HEAD.json``: the last record's seq and hash (and, with an evidence key, their MAC)."""

    seq: int
    hash: str
    mac: NotRequired[str]


class Entry(TypedDict):
    """One stored record: its place in the chain, the record, and its hash (and MAC, with a key)."""

    seq: int
    prev_hash: str
    hash: str
    record: dict[str, Any]
    mac: NotRequired[str]


LEGACY_RECORD = "fairgate-head"  # the label records (and HEADs) were signed under before HEADs had their own


def head_mac(key: bytes, model: str, seq: int, hash_: str) -> str:
    """The MAC of "HEAD of ``model``'s chain names record ``seq`` with ``hash_``" (HEAD's own label)."""
    return signing.mac(key, signing.HEAD, model, seq, hash_)


def record_mac(key: bytes, model: str, seq: int, hash_: str) -> str:
    """The MAC of "record ``seq`` of ``model``'s chain has ``hash_``": under another label than a HEAD's, so
    a record's MAC never makes a HEAD (a HEAD rewritten to an earlier record does not check)."""
    return signing.mac(key, signing.RECORD, model, seq, hash_)


def _record_signed(key: bytes, model: str, entry: Entry | dict[str, Any]) -> bool:
    """Whether ``entry`` carries a record MAC under ``key`` (or the label records had before HEADs had theirs)."""
    mac, seq, hash_ = entry.get("mac"), entry.get("seq"), entry.get("hash")
    return isinstance(mac, str) and any(
        signing.checks(key, mac, label, model, seq, hash_) for label in (signing.RECORD, LEGACY_RECORD)
    )


def _signed(model: str, seq: int, hash_: str) -> Head:
    """``{"seq", "hash"}`` with its ``mac`` when there is an evidence key (HEAD as stored)."""
    key = signing.key()
    head: Head = {"seq": seq, "hash": hash_}
    if key:
        head["mac"] = head_mac(key, model, seq, hash_)
    return head


def _unsigned(model: str, head: Head) -> str | None:
    """Why ``head`` lacks a valid HEAD MAC under the evidence key (None: it has one, or no key is set)."""
    key = signing.key()
    if not key:
        return None
    if not isinstance(head.get("mac"), str):
        return (
            f"HEAD of {model!r} (seq {head['seq']}) is not signed, and an evidence key is set: the chain may have "
            f"been rewritten by someone without the key (after checking it: fairgate verify-log --model {model} "
            "--sign-head)"
        )
    if not signing.checks(key, head["mac"], signing.HEAD, model, head["seq"], head["hash"]):
        return (
            f"HEAD of {model!r} (seq {head['seq']}) has a MAC that does not check under the evidence key as a "
            "HEAD's: it was written without the key, for another chain, copied from a record, or by a release "
            "before HEADs had a label of their own (after checking the chain: fairgate verify-log --sign-head)"
        )
    return None


def _anchored(store: ArtifactStore, model: str, head: Head) -> str | None:
    """Why ``head`` contradicts the outside anchor (None: it agrees, or no anchor is configured): a HEAD
    behind the anchor is a chain cut back; a record at the anchor's seq with another hash, a rewrite."""
    outside = anchor.current()
    found = outside.read(model) if outside else None
    if outside is None or found is None:
        return None
    seq, hash_ = found
    if head["seq"] < seq:
        return (
            f"HEAD of {model!r} names record {head['seq']}, but the outside anchor ({outside.where}) saw the chain "
            f"reach record {seq}: the chain was cut back (records after {head['seq']} removed, or an older HEAD "
            "put back)"
        )
    try:
        at = head if head["seq"] == seq else _entry_at(store, _record_key(model, seq))
    except NotFoundError:
        return f"record {seq} of {model!r}, which the outside anchor ({outside.where}) holds, is missing"
    if at["hash"] != hash_:
        return (
            f"record {seq} of {model!r} has hash {str(at['hash'])[:12]}, but the outside anchor ({outside.where}) "
            f"holds {hash_[:12]}: the chain was rewritten"
        )
    return None


def _advance_anchor(model: str, seq: int, hash_: str) -> None:
    outside = anchor.current()
    if outside is not None:
        outside.advance(model, seq, hash_)


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


def head(store: ArtifactStore, model: str) -> Head:
    """The log's head as ``{"seq", "hash"}`` (``seq`` 0 and the genesis hash for an empty log)."""
    current = _head(store, model)[0]  # read once, not once per key
    return {"seq": current["seq"], "hash": current["hash"]}


def _head(store: ArtifactStore, model: str) -> tuple[Head, str | None]:
    key = head_key(model)
    try:
        data, etag = store.get_with_etag(key)
    except NotFoundError:
        return _rebuilt_head(store, model), None
    try:
        head = json.loads(data)
        if isinstance(head, dict) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str):
            return cast(Head, head), etag  # its shape checked just above
    except ValueError:
        pass
    raise EvidenceIntegrityError(f"{store.uri(key)} is not an evidence HEAD ({{'seq': int, 'hash': str}}).")


def _rebuilt_head(store: ArtifactStore, model: str) -> Head:
    """HEAD from the records when HEAD.json is missing: the last record, if the chain up to it holds."""
    keys = store.list(records_prefix(model))
    if not keys:
        return {"seq": 0, "hash": GENESIS}
    if signing.key():
        raise EvidenceIntegrityError(
            f"{store.uri(head_key(model))} is missing and an evidence key is set, so HEAD is not rebuilt from the "
            f"records (anyone who can write to the store could have rewritten them). Check the chain, then "
            f"`fairgate verify-log --model {model} --sign-head`."
        )
    checked = verify(store, model, head_required=False)
    if not checked.ok:
        raise EvidenceIntegrityError(
            f"{store.uri(head_key(model))} is missing and the records do not form a chain to rebuild it from: "
            + "; ".join(checked.problems[:3])
        )
    last = _entry_at(store, keys[-1])
    return {"seq": last["seq"], "hash": last["hash"]}


def _entry_at(store: ArtifactStore, key: str) -> Entry:
    """The entry stored at ``key``, or :class:`EvidenceIntegrityError` naming the key (never a traceback)."""
    try:
        entry = json.loads(store.get(key))
    except ValueError:
        raise EvidenceIntegrityError(f"Evidence record {store.uri(key)} is not valid JSON.") from None
    if not (
        isinstance(entry, dict)
        and isinstance(entry.get("seq"), int)
        and isinstance(entry.get("hash"), str)
        and isinstance(entry.get("record"), dict)
    ):
        raise EvidenceIntegrityError(
            f"Evidence record {store.uri(key)} is not an entry ({{'seq', 'prev_hash', 'hash', 'record'}})."
        )
    return cast(Entry, entry)  # its shape checked just above


def _own(store: ArtifactStore, model: str, key: str, *, look_back: int = 50) -> Entry | None:
    """The entry appended earlier with idempotency ``key`` (a retried task's first try), if any."""
    for k in list(reversed(store.list(records_prefix(model))))[:look_back]:
        entry = _entry_at(store, k)
        if entry["record"].get("idempotency_key") == key:
            return entry
    return None


def append(
    store: ArtifactStore, model: str, record: dict[str, Any], *, key: str | None = None, attempts: int = 20
) -> Entry:
    """Append ``record`` to ``model``'s log; the stored entry (``seq``, ``hash``, ``prev_hash``, ``record``).

    With ``key`` (for example ``<dag>/<run>/<stage>``) an entry already appended under the same key is
    returned instead, and HEAD is moved onto it if the append that wrote it was cut off before HEAD.
    """
    if key is not None:
        found = _own(store, model, key)
        if found is not None:
            head, etag = _head(store, model)
            if head["seq"] == found["seq"] - 1 and found.get("prev_hash") == head["hash"]:
                _repair_head(store, model, head, etag, found["seq"])
            return found
    record = {**record, "model_name": model, "recorded_at": record.get("recorded_at") or datetime.now(UTC).isoformat()}
    if key is not None:
        record["idempotency_key"] = key
    for _ in range(attempts):
        head, etag = _head(store, model)
        unsigned = (_unsigned(model, head) if head["seq"] else None) or _anchored(store, model, head)
        if unsigned:  # never extend (and so vouch for) a chain the key did not sign, or one cut back
            raise EvidenceIntegrityError(unsigned)
        seq = head["seq"] + 1
        hash_ = entry_hash(seq, head["hash"], record)
        entry: Entry = {"seq": seq, "prev_hash": head["hash"], "hash": hash_, "record": record}
        key_now = signing.key()
        if key_now:
            entry["mac"] = record_mac(key_now, model, seq, hash_)
        try:
            store.put_new(_record_key(model, seq), canonical(entry))
        except ConflictError:
            if not _repair_head(store, model, head, etag, seq):  # another writer took seq; catch HEAD up, retry
                raise EvidenceIntegrityError(
                    f"Record {seq} of {model!r} ({store.uri(_record_key(model, seq))}) lies past HEAD and is not "
                    "signed with the evidence key, so it was not appended by Fairgate; nothing is appended after "
                    "it. Check and remove it (fairgate verify-log lists it)."
                ) from None
            continue
        try:
            store.swap(head_key(model), canonical(_signed(model, seq, entry["hash"])), expected_etag=etag)
        except ConflictError:
            pass  # someone repaired HEAD to our record already; the record is in the chain
        _advance_anchor(model, seq, entry["hash"])
        return entry
    raise ConflictError(
        f"Could not append to the evidence log of {model!r} after {attempts} attempts: other writers kept "
        "taking the next number (HEAD is repaired on each attempt)."
    )


def _repair_head(store: ArtifactStore, model: str, head: Head, etag: str | None, seq: int) -> bool:
    """Move HEAD onto record ``seq`` if that record extends the current head; False if it is not signed
    with the evidence key (a key is set and the record was not written with it: never adopted)."""
    try:
        existing = json.loads(store.get(_record_key(model, seq)))
    except NotFoundError:
        return True
    if existing.get("prev_hash") != head["hash"]:
        return True  # not an extension of this head (HEAD moved meanwhile): the caller reads HEAD again
    key = signing.key()
    if key and not _record_signed(key, model, existing):
        return False
    try:
        store.swap(head_key(model), canonical(_signed(model, seq, existing["hash"])), expected_etag=etag)
    except ConflictError:
        pass
    _advance_anchor(model, seq, existing["hash"])
    return True


@dataclass
class Verification:
    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    head: int = 0  # the seq HEAD names (records past it are problems)
    past_head: tuple[int, ...] = ()  # records past HEAD: a finding, but not evidence (nothing reads them)

    @property
    def intact_to_head(self) -> bool:
        """Every record up to HEAD verifies (records past HEAD, never read as evidence, aside)."""
        return len(self.problems) == (1 if self.past_head else 0)


def verify(store: ArtifactStore, model: str, *, head_required: bool = True) -> Verification:
    """Re-hash every record of ``model``'s log and check the links, the numbering and HEAD.

    A record past HEAD is a problem: an append cut off between the record and HEAD (the next
    append finishes it) or a record added without moving HEAD; either way nothing is read from
    it until HEAD names it.

    Parameters
    ----------
    store
        The store holding the log.
    model
        The model whose log is checked.
    head_required
        False accepts a log that has records but no HEAD yet.

    Returns
    -------
    Verification
        ``ok``, the number of records, and each problem found in words.
    """
    keys = store.list(records_prefix(model))
    problems: list[str] = []
    prev = GENESIS
    for i, key in enumerate(keys, start=1):
        if key != _record_key(model, i):
            problems.append(f"record {i} expected at {_record_key(model, i)}, found {key} (deleted or re-numbered)")
            break
        try:
            entry = json.loads(store.get(key))
        except ValueError:
            problems.append(f"{key} is not valid JSON")
            break
        if not isinstance(entry, dict) or not isinstance(entry.get("record"), dict):
            problems.append(f"{key} is not an evidence entry")
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
    if not head_required:
        return Verification(ok=not problems, records=len(keys), problems=problems, head=len(keys))
    try:
        head, _ = _head(store, model)
    except EvidenceIntegrityError as exc:
        return Verification(ok=False, records=len(keys), problems=[*problems, str(exc)])
    unsigned = _unsigned(model, head) if keys else None
    if unsigned:
        problems.append(unsigned)
    cut = _anchored(store, model, head)
    if cut:
        problems.append(cut)
    past_head: tuple[int, ...] = ()
    if not problems and head["seq"] < len(keys):
        past_head = tuple(range(head["seq"] + 1, len(keys) + 1))
        past = ", ".join(map(str, past_head))
        problems.append(
            f"record(s) {past} past HEAD (seq {head['seq']}): an append cut off before HEAD moved, or a "
            "record added without moving HEAD; the next append finishes a cut-off one"
        )
    elif not problems and (head["seq"], head["hash"]) != (len(keys), prev if keys else GENESIS):
        problems.append(f"HEAD names seq {head['seq']} ({head['hash'][:12]}) but the log has {len(keys)} records")
    return Verification(ok=not problems, records=len(keys), problems=problems, head=head["seq"], past_head=past_head)


def entry(store: ArtifactStore, model: str, seq: int) -> Entry:
    """The entry numbered ``seq`` (read by its key: no listing)."""
    return _entry_at(store, _record_key(model, seq))


def keys_to_head(store: ArtifactStore, model: str) -> list[str]:
    """The record keys up to HEAD: a record past HEAD is not read as evidence until HEAD names it."""
    head = _head(store, model)[0]["seq"]
    return [k for k in store.list(records_prefix(model)) if k <= _record_key(model, head)]


def entries(store: ArtifactStore, model: str) -> list[Entry]:
    """Every entry up to HEAD, oldest first."""
    return [_entry_at(store, k) for k in keys_to_head(store, model)]


def recent(store: ArtifactStore, model: str, kind: str, *, last: int = 20) -> list[Entry]:
    """The newest ``last`` entries of ``kind`` up to HEAD, newest first (reads back only until it has them)."""
    out = []
    for key in reversed(keys_to_head(store, model)):
        entry = _entry_at(store, key)
        if entry["record"].get("kind") == kind:
            out.append(entry)
            if len(out) == last:
                break
    return out


def find(store: ArtifactStore, model: str, run_id: str = "latest", *, kind: str | None = None) -> Entry | None:
    """The newest record of ``model`` for ``run_id`` (or the newest of ``kind`` for ``latest``)."""
    for key in reversed(keys_to_head(store, model)):  # newest first; stops at the first match
        entry = _entry_at(store, key)
        rec = entry["record"]
        if kind and rec.get("kind") != kind:
            continue
        if run_id == "latest" or rec.get("run_id") == run_id:
            return entry
    return None


def signed_tail(store: ArtifactStore, model: str, count: int) -> tuple[list[Entry], bool] | None:
    """The newest ``count`` entries, newest first, each checked by its hash link back from a signed HEAD,
    and whether they reach the first record; None without an evidence key (then only :func:`verify`,
    which re-hashes the whole chain, can vouch for a record).

    A HEAD whose MAC checks authenticates its hash, the hash authenticates the last record, and each
    record's ``prev_hash`` the one before: reading back only as far as needed is as sound as the full
    walk for those records (what lies before them is not vouched for, and not used).
    """
    if not signing.key():
        return None
    head = _head(store, model)[0]
    unsigned = (_unsigned(model, head) if head["seq"] else None) or _anchored(store, model, head)
    if unsigned:
        raise EvidenceIntegrityError(unsigned)
    out: list[Entry] = []
    expected_hash, seq = head["hash"], head["seq"]
    while seq >= 1 and len(out) < count:
        entry = _entry_at(store, _record_key(model, seq))
        if (
            entry["seq"] != seq
            or entry["hash"] != expected_hash
            or entry_hash(seq, entry.get("prev_hash", ""), entry["record"]) != entry["hash"]
        ):
            raise EvidenceIntegrityError(
                f"Evidence record {seq} of {model!r} does not match the chain its signed HEAD names (edited, "
                f"replaced or re-ordered); see fairgate verify-log --model {model}."
            )
        out.append(entry)
        expected_hash, seq = entry["prev_hash"], seq - 1
    if seq == 0 and expected_hash != GENESIS:
        raise EvidenceIntegrityError(f"The first evidence record of {model!r} does not start the chain.")
    return out, seq == 0


def sign_head(store: ArtifactStore, model: str) -> Head:
    """Sign HEAD of a chain that verifies apart from its signature; refused over records nobody vouches for.

    For adopting an evidence key on an existing log, after a lost HEAD, or after an upgrade from a release
    whose HEADs had no label of their own: the person running it vouches for the chain up to the HEAD it
    signs, which is the current HEAD or the last record that carries a record MAC under the key, whichever
    is later. A record past that point (no MAC: not written by Fairgate holding the key) is never signed
    over: it is listed, for someone to check and remove. Nor is a HEAD signed behind the outside anchor.
    """
    key = signing.key()
    if not key:
        raise EvidenceIntegrityError("No evidence key is set (FAIRGATE_EVIDENCE_KEY): there is nothing to sign with.")
    checked = verify(store, model, head_required=False)
    if not checked.ok:
        raise EvidenceIntegrityError(
            f"The records of {model!r} do not form a chain ({'; '.join(checked.problems[:2])}); HEAD is not signed."
        )
    entries = [_entry_at(store, k) for k in store.list(records_prefix(model))]
    try:
        data, etag = store.get_with_etag(head_key(model))
        stored = json.loads(data)
    except NotFoundError:
        stored, etag = None, None
    except ValueError:
        stored = None
    target = max((e["seq"] for e in entries if _record_signed(key, model, e)), default=0)
    named = stored.get("seq") if isinstance(stored, dict) else None
    if isinstance(named, int) and 0 < named <= len(entries) and entries[named - 1]["hash"] == stored.get("hash"):
        target = max(target, named)
    past = [e["seq"] for e in entries if e["seq"] > target]
    if past:
        raise EvidenceIntegrityError(
            f"Record(s) {past} of {model!r} lie past HEAD (seq {target}) and carry no MAC under the evidence key: "
            "they were not written by Fairgate holding the key. HEAD is not signed over them; check them "
            f"(fairgate verify-log --model {model}) and remove them first."
        )
    head: Head = {"seq": target, "hash": entries[target - 1]["hash"] if target else GENESIS}
    cut = _anchored(store, model, head)
    if cut:
        raise EvidenceIntegrityError(f"{cut}; HEAD is not signed.")
    store.swap(head_key(model), canonical(_signed(model, head["seq"], head["hash"])), expected_etag=etag)
    _advance_anchor(model, head["seq"], head["hash"])
    return head
