"""A chain cut back, or extended by a store writer, is an integrity error: HEADs and records are signed
under different labels, and each HEAD is also kept outside the store (the anchor, a SQL table: SQLite
here, the PostgreSQL server of the machine in the last test).

Each case is what a writer to the store can do: before, a HEAD rewritten to any earlier record (with
that record's MAC) verified, and ``verify-log --sign-head`` signed a forged record lying past HEAD.
"""

from __future__ import annotations

import json

import pytest

from fairgate.errors import EvidenceIntegrityError
from fairgate.governance import evidence
from fairgate.storage import anchor
from fairgate.storage.local import LocalStore

pytestmark = pytest.mark.integration
M = "m"


@pytest.fixture(params=["local", "s3"])
def any_store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "artifacts")
    return request.getfixturevalue("s3_store")


@pytest.fixture
def anchored(tmp_path):
    """An outside anchor in a SQLite file outside the store, for the test's length."""
    outside = anchor.SqlAnchor(f"sqlite:///{tmp_path / 'anchor.db'}")
    anchor.use_anchor(lambda: outside)
    yield outside
    anchor.use_anchor(anchor._from_env)


def _chain(store, n: int) -> list[dict]:
    return [evidence.append(store, M, {"kind": "audit", "run_id": f"a{i}"}) for i in range(n)]


def _cut_back(store, to: int, head: bytes | None = None) -> None:
    """Remove every record after ``to`` and put HEAD back on it (``head``: an old HEAD file's bytes)."""
    for key in store.list(evidence.records_prefix(M)):
        if int(key.rsplit("/", 1)[-1].removesuffix(".json")) > to:
            store.delete(key)
    if head is not None:
        store.put(evidence.head_key(M), head)
        return
    entry = evidence.entry(store, M, to)
    store.put(evidence.head_key(M), evidence.canonical({"seq": to, "hash": entry["hash"], "mac": entry.get("mac")}))


def test_a_head_made_from_a_records_mac_does_not_check(any_store, monkeypatch):
    """Before: every record carried the very MAC its HEAD would, so HEAD could be set to any earlier record."""
    monkeypatch.setenv("FAIRGATE_EVIDENCE_KEY", "k")
    _chain(any_store, 4)
    _cut_back(any_store, 2)
    problems = evidence.verify(any_store, M).problems
    assert any("does not check under the evidence key as a HEAD's" in p for p in problems), problems
    with pytest.raises(EvidenceIntegrityError, match="does not check under the evidence key as a HEAD's"):
        evidence.append(any_store, M, {"kind": "audit", "run_id": "after"})


def test_an_old_head_put_back_is_caught_by_the_outside_anchor_with_and_without_a_key(any_store, anchored, monkeypatch):
    for key in ("k", None):
        if key:
            monkeypatch.setenv("FAIRGATE_EVIDENCE_KEY", key)
        else:
            monkeypatch.delenv("FAIRGATE_EVIDENCE_KEY", raising=False)
        model = f"{M}-{key or 'nokey'}"
        evidence.append(any_store, model, {"kind": "audit", "run_id": "a0"})
        old_head = any_store.get(evidence.head_key(model))  # a HEAD saved by the store writer
        for i in range(1, 4):
            evidence.append(any_store, model, {"kind": "audit", "run_id": f"a{i}"})
        assert anchored.read(model)[0] == 4
        for k in any_store.list(evidence.records_prefix(model)):
            if not k.endswith("0000000001.json"):
                any_store.delete(k)
        any_store.put(evidence.head_key(model), old_head)  # a valid MAC (with a key): only the anchor can tell
        checked = evidence.verify(any_store, model)
        assert not checked.ok and any("the chain was cut back" in p for p in checked.problems), checked.problems
        with pytest.raises(EvidenceIntegrityError, match="cut back"):
            evidence.append(any_store, model, {"kind": "audit", "run_id": "after"})


def test_a_rewritten_record_at_the_anchor_is_caught(any_store, anchored):
    _chain(any_store, 3)
    rewritten = {"kind": "audit", "run_id": "forged"}
    prev = evidence.entry(any_store, M, 2)["hash"]
    entry = {"seq": 3, "prev_hash": prev, "record": rewritten, "hash": evidence.entry_hash(3, prev, rewritten)}
    any_store.put(f"{evidence.records_prefix(M)}{3:010d}.json", evidence.canonical(entry))
    any_store.put(evidence.head_key(M), evidence.canonical({"seq": 3, "hash": entry["hash"]}))
    assert evidence.verify(any_store, M).records == 3
    assert any("the chain was rewritten" in p for p in evidence.verify(any_store, M).problems)


def test_sign_head_refuses_a_record_forged_past_head_and_lists_it(any_store, monkeypatch):
    monkeypatch.setenv("FAIRGATE_EVIDENCE_KEY", "k")
    _chain(any_store, 2)
    head = evidence.head(any_store, M)
    forged = {"kind": "deployment", "run_id": "r9", "version": "f" * 64, "gate_outcome": "pass", "model_name": M}
    entry = {
        "seq": 3,
        "prev_hash": head["hash"],
        "record": forged,
        "hash": evidence.entry_hash(3, head["hash"], forged),
    }
    any_store.put_new(f"{evidence.records_prefix(M)}{3:010d}.json", evidence.canonical(entry))
    with pytest.raises(EvidenceIntegrityError, match=r"Record\(s\) \[3\] of 'm' lie past HEAD \(seq 2\)"):
        evidence.sign_head(any_store, M)
    assert json.loads(any_store.get(evidence.head_key(M)))["seq"] == 2  # HEAD not moved over it
    # a lost HEAD is signed back only as far as the records Fairgate signed
    any_store.delete(evidence.head_key(M))
    with pytest.raises(EvidenceIntegrityError, match=r"\[3\]"):
        evidence.sign_head(any_store, M)
    any_store.delete(f"{evidence.records_prefix(M)}{3:010d}.json")
    assert evidence.sign_head(any_store, M)["seq"] == 2 and evidence.verify(any_store, M).ok


def test_sign_head_adopts_a_key_on_an_unsigned_chain_up_to_its_head(any_store, monkeypatch):
    monkeypatch.delenv("FAIRGATE_EVIDENCE_KEY", raising=False)
    _chain(any_store, 3)
    monkeypatch.setenv("FAIRGATE_EVIDENCE_KEY", "k")
    assert not evidence.verify(any_store, M).ok  # unsigned HEAD under a key
    assert evidence.sign_head(any_store, M)["seq"] == 3
    assert evidence.verify(any_store, M).ok
    evidence.append(any_store, M, {"kind": "audit", "run_id": "a3"})
    assert evidence.verify(any_store, M).ok


def test_the_anchor_on_postgresql_moves_forward_only():
    import uuid

    from tests.support.stack import PG, require_postgres

    require_postgres()
    outside = anchor.SqlAnchor(f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/test")
    model = f"pg-{uuid.uuid4().hex[:8]}"
    outside.advance(model, 3, "c" * 64)
    outside.advance(model, 2, "b" * 64)  # behind: nothing changes
    assert outside.read(model) == (3, "c" * 64)
    with pytest.raises(EvidenceIntegrityError, match="holds another hash for record 3"):
        outside.advance(model, 3, "d" * 64)
    outside.advance(model, 4, "e" * 64)
    assert outside.read(model) == (4, "e" * 64)
    assert "hide" not in outside.where and PG["host"] in outside.where
