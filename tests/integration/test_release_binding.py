"""Every file a deployed version serves from is bound by its promotion record: an edit of any of them, or of
any field of the production pointer, is refused by scoring, serving, ``fairgate status`` and the bundle, by
name, without retry; with and without an evidence key; on the local store and on S3 over HTTP (moto).

Synthetic credit data (not Adult), one real lifecycle run in this process. Each mutation is what someone
who can write to the bucket (but holds no evidence key) can do to a deployed release.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest
from tests.support.policies import synthetic_credit_policy

from fairgate.cli.main import main
from fairgate.errors import IntegrityError
from fairgate.governance import approval, bundle, evidence, registry
from fairgate.integrations import following, model_server
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore
from fairgate_dev.synthetic import credit_applications

pytestmark = [pytest.mark.integration, pytest.mark.lifecycle]
M = "credit"
KEY = "release-binding-test-key"


@pytest.fixture(scope="module", params=["unsigned", "signed"])
def deployed(request, tmp_path_factory):
    """One deployed version of the synthetic credit model, in a local store (with or without an evidence key)."""
    mp = pytest.MonkeyPatch()
    if request.param == "signed":
        mp.setenv("FAIRGATE_EVIDENCE_KEY", KEY)
    else:
        mp.delenv("FAIRGATE_EVIDENCE_KEY", raising=False)
    folder = tmp_path_factory.mktemp(f"bound-{request.param}")
    path, _ = synthetic_credit_policy(folder, 3000, seed=5)
    store = LocalStore(folder / "store")
    policy = load_policy(path)
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="v1")).decision == "deployed"
    approved = approval.production(store, M)
    assert approved is not None
    yield {"folder": folder, "policy": policy, "path": path, "store": store, "approved": approved}
    mp.undo()


def _copy(deployed, tmp_path, monkeypatch) -> LocalStore:
    shutil.copytree(deployed["folder"] / "store", tmp_path / "store", ignore=shutil.ignore_patterns(".*.lock"))
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(tmp_path / "store"))
    return LocalStore(tmp_path / "store")


def _flip_byte(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def _edit_json(data: bytes, **changes) -> bytes:
    return json.dumps({**json.loads(data), **changes}, indent=2, sort_keys=True).encode()


def _manifest_edits(version: str) -> dict[str, dict]:
    """What an editor of the manifest would change: every field a person or the server reads."""
    return {
        "gate_outcome": {"gate_outcome": "fail"},
        "approver": {"approver": "mallory"},
        "reference": {"reference": {"income": 1.0}},
        "selection": {"selection": {"rule": "top_k", "cutoff": 0.01}},
        "data_sha256": {"data_sha256": "0" * 64},
        "calibration": {"calibration": None},
        "performance": {"performance": {"balanced_accuracy": 0.99}},
    }


def _files_of(store, approved) -> dict[str, str]:
    """Every file the deployed version serves from, by role: what its promotion record binds."""
    return {role: bound["key"] for role, bound in approved.files.items()}


def _refused_everywhere(store, deployed, tmp_path, what: str) -> None:
    """Scoring, serving (start and follow), status and the bundle each refuse, naming ``what``, no retry."""
    policy = deployed["policy"]
    with pytest.raises(IntegrityError, match=what) as refused:
        approval.production(store, M)
    assert refused.value.retry is False
    with pytest.raises(IntegrityError, match=what):
        monitoring.score_day(store, policy, date(2026, 7, 1), credit_applications(50, seed=9))
    with pytest.raises(IntegrityError, match=what):
        model_server.check_approved(M, deployed["approved"].version)
    with pytest.raises(IntegrityError, match=what):
        following.load_approved(store, M, tmp_path / "served")
    with pytest.raises(IntegrityError, match=what):
        bundle.resolve_version(store, M, "production")

    import contextlib
    import io
    import re

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["--artifact-root", str(store.root), "--policy", str(deployed["path"]), "status", "--json"])
    assert code == 2 and re.search(what, printed.getvalue()), printed.getvalue()


def test_the_deployed_version_binds_every_file_it_serves_from(deployed):
    store, approved = deployed["store"], deployed["approved"]
    version = approved.version
    prefix = registry.version_prefix(M, version)
    assert _files_of(store, approved) == {
        "model.skops": f"{prefix}/model.skops",
        "manifest.json": f"{prefix}/manifest.json",
        "model_card.md": f"{prefix}/model_card.md",
        "policy.yaml": "runs/nb/v1/policy.yaml",
        "training snapshot": "runs/nb/v1/snapshot.parquet",
        "training split": "runs/nb/v1/split.parquet",
    }
    for bound in approved.files.values():  # each sha256 recomputed here from the stored bytes
        assert bound["sha256"] == __import__("hashlib").sha256(store.get(bound["key"])).hexdigest()
    # and the record is the newest promotion record of the chain, holding the pointer as written
    record = evidence.entry(store, M, approved.seq)["record"]
    assert record["kind"] == "deployment" and record["version"] == version
    assert record["pointer"] == json.loads(store.get(registry.pointer_key(M)))


@pytest.mark.parametrize(
    "role", ["model.skops", "manifest.json", "model_card.md", "policy.yaml", "training snapshot", "training split"]
)
def test_a_changed_byte_of_any_served_file_is_refused_everywhere(deployed, tmp_path, monkeypatch, role):
    store = _copy(deployed, tmp_path, monkeypatch)
    key = deployed["approved"].files[role]["key"]
    store.put(key, _flip_byte(store.get(key)))
    _refused_everywhere(store, deployed, tmp_path, role)


@pytest.mark.parametrize("role", ["model_card.md", "policy.yaml", "training snapshot", "training split"])
def test_a_deleted_served_file_is_refused_everywhere(deployed, tmp_path, monkeypatch, role):
    store = _copy(deployed, tmp_path, monkeypatch)
    (store.root / deployed["approved"].files[role]["key"]).unlink()
    _refused_everywhere(store, deployed, tmp_path, role)


@pytest.mark.parametrize("field", list(_manifest_edits("x")))
def test_an_edited_manifest_field_is_refused_everywhere(deployed, tmp_path, monkeypatch, field):
    store = _copy(deployed, tmp_path, monkeypatch)
    key = registry.manifest_key(M, deployed["approved"].version)
    store.put(key, _edit_json(store.get(key), **_manifest_edits(deployed["approved"].version)[field]))
    _refused_everywhere(store, deployed, tmp_path, "manifest.json")


POINTER_EDITS = {
    "since": "2020-01-01T00:00:00+00:00",
    "action": "rollback",
    "run_id": "v0",
    "actor": "mallory",
    "reason": "approved by the board",
    "history": [{"version": "0" * 64, "since": "2020", "action": "deploy", "run_id": "v0"}],
}


@pytest.mark.parametrize("field", list(POINTER_EDITS))
def test_an_edited_pointer_field_is_refused_everywhere(deployed, tmp_path, monkeypatch, field):
    store = _copy(deployed, tmp_path, monkeypatch)
    key = registry.pointer_key(M)
    store.put(key, _edit_json(store.get(key), **{field: POINTER_EDITS[field]}))
    _refused_everywhere(store, deployed, tmp_path, "(?i)production pointer")


def test_a_pointer_moved_back_to_an_older_approved_version_needs_a_rollback_record(deployed, tmp_path, monkeypatch):
    """Production put back on the first version by copying its old pointer: no record of a rollback, refused."""
    store = _copy(deployed, tmp_path, monkeypatch)
    first = store.get(registry.pointer_key(M))
    data = deployed["folder"] / "credit.csv"
    frame = __import__("pandas").read_csv(data)
    frame.sample(frac=0.9, random_state=1).to_csv(tmp_path / "credit.csv", index=False)
    raw = deployed["path"].read_text().replace(str(data), str(tmp_path / "credit.csv"))
    (tmp_path / "credit.yaml").write_text(raw)
    policy = load_policy(tmp_path / "credit.yaml")
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="v2")).decision == "deployed"
    assert approval.production(store, M).run_id == "v2"
    store.put(registry.pointer_key(M), first)  # the first deployment's pointer, byte for byte
    _refused_everywhere(store, deployed, tmp_path, "(?i)production pointer")
    # a recorded rollback to it is served, and names the person
    done = lifecycle.rollback(
        store, policy, to_version=deployed["approved"].version, actor="ops", reason="drift", run_id="rb1"
    )
    assert done.to_version == deployed["approved"].version
    back = approval.production(store, M)
    assert back is not None and (back.version, back.how) == (deployed["approved"].version, "rollback")


def test_a_deployment_record_forged_on_s3_with_a_manifest_that_vouches_is_refused(deployed, s3_store):
    """The same binding on S3 over HTTP: every object copied up, then one manifest field edited."""
    store = deployed["store"]
    for path in Path(store.root).rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            s3_store.put(str(path.relative_to(store.root)), path.read_bytes())
    assert approval.production(s3_store, M).version == deployed["approved"].version
    key = registry.manifest_key(M, deployed["approved"].version)
    s3_store.put(key, _edit_json(s3_store.get(key), gate_outcome="fail"))
    with pytest.raises(IntegrityError, match="manifest.json") as refused:
        approval.production(s3_store, M)
    assert refused.value.retry is False


def test_a_deployment_recorded_by_an_earlier_release_is_refused_and_promoted_again_by_a_person(tmp_path):
    """A store written before releases bound their files: production is not used (no check skipped for
    the missing fields), and a rollback "to" the same version binds its files under the current rule."""
    store = LocalStore(tmp_path / "store")
    v = registry.register(store, M, b"model-old", {"approved": True, "gate_outcome": "pass", "registered_at": "t"})[
        "version"
    ]
    legacy = {"kind": "deployment", "run_id": "r0", "dag_id": "lc", "version": v, "gate_outcome": "pass"}
    legacy |= {"manifest_sha256": registry.manifest_sha256(store, M, v), "replaces": None, "approver": "gate"}
    evidence.append(store, M, legacy)
    evidence.append(
        store,
        M,
        {
            "kind": "lifecycle",
            "run_id": "r0",
            "gate": {"outcome": "pass"},
            "model": {"sha256": v},
            "deployment": {"version": v, "promoted": True},
        },
    )
    registry.promote(store, M, v, action="deploy", run_id="r0", actor="gate", reason="")
    with pytest.raises(IntegrityError, match="written by an earlier release of Fairgate"):
        approval.production(store, M)
    policy = type("P", (), {"model_name": M})()
    lifecycle.rollback(store, policy, to_version=v, actor="ops", reason="promote under the current rule", run_id="rb")
    found = approval.production(store, M)
    assert (found.version, found.how, sorted(found.files)) == (v, "rollback", ["manifest.json", "model.skops"])
