"""Artifact store rules, registry promotion and the evidence hash chain, on the local backend."""

from __future__ import annotations

import json
import pickle

import pytest

from fairgate.errors import NotFoundError, StoreConfigError
from fairgate.governance import evidence, registry
from fairgate.storage.base import sha256_bytes
from fairgate.storage.local import LocalStore


def test_put_is_atomic_and_hashed(store):
    w = store.put("a/b.bin", b"hello")
    assert w.sha256 == sha256_bytes(b"hello") and store.get("a/b.bin") == b"hello"
    assert not [p for p in (store.root / "a").iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(StoreConfigError):  # refused as bad input: no retry would change it
        store.put("../escape", b"x")
    with pytest.raises(NotFoundError):
        store.get("missing")


def _register(store, content: bytes, approved=True):
    return registry.register(
        store, "m", content, {"approved": approved, "gate_outcome": "pass", "registered_at": content.decode()}
    )


def test_register_is_content_addressed_and_idempotent(store):
    a = _register(store, b"model-a")
    again = _register(store, b"model-a")
    assert a["version"] == again["version"] == sha256_bytes(b"model-a")
    assert [m["version"] for m in registry.list_versions(store, "m")] == [a["version"]]


def test_unapproved_version_cannot_be_promoted(store):
    v = _register(store, b"model-x", approved=False)["version"]
    with pytest.raises(registry.RegistryError, match="never approved"):
        registry.promote(store, "m", v, action="deploy", run_id="r", actor="t", reason="")
    assert registry.production_version(store, "m") is None


def test_pointer_keeps_history(store):
    a, b = _register(store, b"model-a")["version"], _register(store, b"model-b")["version"]
    registry.promote(store, "m", a, action="deploy", run_id="r1", actor="t", reason="")
    p = registry.promote(store, "m", b, action="deploy", run_id="r2", actor="t", reason="")
    assert p["version"] == b and [h["version"] for h in p["history"]] == [a]


def test_evidence_chain_verifies_and_detects_tampering(store):
    for i in range(4):
        evidence.append(store, "m", {"run_id": f"r{i}", "decision": "rejected", "kind": "lifecycle"})
    assert evidence.verify(store, "m").ok
    assert evidence.find(store, "m", "r2")["record"]["run_id"] == "r2"
    assert evidence.find(store, "m", "latest")["record"]["run_id"] == "r3"

    key = "evidence/m/records/0000000002.json"
    original = store.get(key)
    entry = json.loads(original)
    entry["record"]["decision"] = "deployed"
    store.put(key, json.dumps(entry).encode())
    v = evidence.verify(store, "m")
    assert not v.ok and any("0000000002.json content does not match its hash" in p for p in v.problems)

    store.put(key, original)
    assert evidence.verify(store, "m").ok
    store.delete("evidence/m/records/0000000003.json")
    assert not evidence.verify(store, "m").ok


def test_evidence_reorder_detected(store):
    for i in range(3):
        evidence.append(store, "m", {"run_id": f"r{i}"})
    one, two = store.get("evidence/m/records/0000000001.json"), store.get("evidence/m/records/0000000002.json")
    store.put("evidence/m/records/0000000001.json", two)
    store.put("evidence/m/records/0000000002.json", one)
    assert not evidence.verify(store, "m").ok


def test_model_loading_refuses_tampered_and_foreign_files(adult):
    from fairgate.errors import ModelIntegrityError
    from fairgate.models.training import dump_model, fit, load_model_bytes
    from fairgate.policy.loader import load_policy

    policy = load_policy()
    data = dump_model(fit(adult.head(2000), policy))
    model = load_model_bytes(data, expected_sha256=sha256_bytes(data))
    assert model.predict_proba(adult.head(5)[list(policy.features)]).shape == (5, 2)
    with pytest.raises(ModelIntegrityError, match="does not match the recorded"):
        load_model_bytes(data + b"x", expected_sha256=sha256_bytes(data))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    foreign = pickle.dumps(Evil())
    with pytest.raises(ModelIntegrityError, match="not a readable skops file"):
        load_model_bytes(foreign, expected_sha256=sha256_bytes(foreign))


def test_local_store_lists_without_temp_or_lock_files(tmp_path):
    s = LocalStore(tmp_path)
    s.put_new("x/a", b"1")
    s.swap("x/b", b"2", expected_etag=None)
    assert s.list("x") == ["x/a", "x/b"]


def test_model_with_untrusted_type_is_refused():
    import skops.io as sio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from fairgate.errors import ModelIntegrityError
    from fairgate.models.training import load_model_bytes

    data = sio.dumps(make_pipeline(FunctionTransformer(json.loads)))
    with pytest.raises(ModelIntegrityError, match="outside the trusted list"):
        load_model_bytes(data, expected_sha256=sha256_bytes(data))
