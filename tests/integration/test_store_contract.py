"""The artifact-store contract, run against both backends: local files and S3 over HTTP (moto)."""

from __future__ import annotations

import json
import threading

import pytest

from fairgate.errors import ConflictError
from fairgate.governance import evidence, registry
from fairgate.storage.local import LocalStore

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "s3"])
def any_store(request, tmp_path):
    if request.param == "local":
        return LocalStore(tmp_path / "artifacts")
    return request.getfixturevalue("s3_store")


def test_put_new_is_create_once(any_store):
    any_store.put_new("v/1", b"same")
    any_store.put_new("v/1", b"same")  # identical: success
    with pytest.raises(ConflictError):
        any_store.put_new("v/1", b"different")
    assert any_store.get("v/1") == b"same"


def test_swap_is_compare_and_swap(any_store):
    any_store.swap("ptr", b"one", expected_etag=None)
    _, etag = any_store.get_with_etag("ptr")
    with pytest.raises(ConflictError):
        any_store.swap("ptr", b"two", expected_etag=None)
    any_store.swap("ptr", b"two", expected_etag=etag)
    with pytest.raises(ConflictError):
        any_store.swap("ptr", b"three", expected_etag=etag)  # stale etag
    assert any_store.get("ptr") == b"two"


def test_list_is_a_string_prefix(any_store):
    for key in ("audits/date=2026-03-01/a.json", "audits/date=2026-03-02/a.json", "audits/date=2026-04-01/a.json"):
        any_store.put(key, b"x")
    assert any_store.list("audits/date=2026-03") == ["audits/date=2026-03-01/a.json", "audits/date=2026-03-02/a.json"]
    assert len(any_store.list("audits/")) == 3 and any_store.list("nothing/") == []


def test_folders_are_the_names_one_level_down(any_store):
    for key in (
        "registry/a/versions/v1/manifest.json",
        "registry/b/pointer.json",
        "registry/top.json",
        "evidence/a/records/0000000001.json",
    ):
        any_store.put(key, b"x")
    assert any_store.folders("registry/") == ["a", "b"]  # a key directly below is not a folder
    assert any_store.folders("registry") == ["a", "b"]
    assert any_store.folders("registry/a/versions/") == ["v1"]
    assert any_store.folders("") == ["evidence", "registry"]
    assert any_store.folders("nothing/") == []


def test_racing_promotions_exactly_one_wins(any_store):
    a = registry.register(any_store, "m", b"model-a", {"approved": True, "registered_at": "1"})["version"]
    b = registry.register(any_store, "m", b"model-b", {"approved": True, "registered_at": "2"})["version"]
    seen = registry.read_pointer(any_store, "m")  # both runs read "nothing deployed"
    results = {}

    def go(version):
        try:
            registry.promote(
                any_store, "m", version, action="deploy", run_id=version, actor="t", reason="", expected=seen
            )
            results[version] = "won"
        except registry.PromotionConflict as exc:
            results[version] = str(exc)

    threads = [threading.Thread(target=go, args=(v,)) for v in (a, b)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    winners = [v for v, r in results.items() if r == "won"]
    assert len(winners) == 1
    assert "lost the race" in results[({a, b} - set(winners)).pop()]
    assert registry.production_version(any_store, "m") == winners[0]


def test_evidence_chain_detects_an_edited_record(any_store):
    for i in range(3):
        evidence.append(any_store, "m", {"run_id": f"r{i}", "kind": "lifecycle"})
    assert evidence.verify(any_store, "m").ok
    key = "evidence/m/records/0000000002.json"
    entry = json.loads(any_store.get(key))
    entry["record"]["run_id"] = "forged"
    any_store.put(key, json.dumps(entry).encode())
    assert not evidence.verify(any_store, "m").ok


def test_concurrent_appends_form_one_chain(any_store):
    threads = [threading.Thread(target=evidence.append, args=(any_store, "m", {"run_id": f"r{i}"})) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    v = evidence.verify(any_store, "m")
    assert v.ok and v.records == 8
