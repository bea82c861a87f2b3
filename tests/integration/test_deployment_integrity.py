"""Nothing is served that the evidence did not approve, on the local store and on S3 over HTTP (moto).

Each case is what someone who can write to the bucket (but not to Airflow) can do, or what a task
killed at one step of a deployment leaves behind. Production is read through
``approval.production``, which scoring, the MLflow alias, bundles and ``fairgate status`` use.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fairgate.errors import EvidenceIntegrityError, IntegrityError, NotApproved, PromotionConflict
from fairgate.governance import approval, evidence, registry
from fairgate.storage.base import sha256_bytes
from fairgate.storage.local import LocalStore

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
M = "m"


@pytest.fixture(params=["local", "s3"])
def any_store(request, tmp_path):
    if request.param == "local":
        store = LocalStore(tmp_path / "artifacts")
        store.spec = str(tmp_path / "artifacts")
        return store
    store = request.getfixturevalue("s3_store")
    store.spec = f"{store.root_uri}@{request.getfixturevalue('s3_endpoint')}"
    return store


def _version(store, content: bytes, *, approved: bool = True) -> str:
    manifest = {"approved": approved, "gate_outcome": "pass" if approved else "fail", "registered_at": "t"}
    return registry.register(store, M, content, manifest)["version"]


def _deploy(store, content: bytes, run_id: str, replaces: str | None = None) -> str:
    v = _version(store, content)
    approval.deploy_recorded(
        store, M, v, run_id=run_id, dag_id="lc", gate_outcome="pass", replaces=replaces, approver="gate"
    )
    return v


def _raw_pointer(store, **changes):
    pointer = json.loads(store.get(registry.pointer_key(M)))
    store.put(registry.pointer_key(M), json.dumps({**pointer, **changes}).encode())


def test_a_recorded_deployment_is_served(any_store):
    a = _deploy(any_store, b"model-a", "r1")
    found = approval.production(any_store, M)
    assert found is not None and (found.version, found.run_id, found.how) == (a, "r1", "deployed (gate pass)")


def test_a_pointer_moved_to_a_version_whose_gate_failed_is_refused_naming_it(any_store):
    _deploy(any_store, b"model-a", "r1")
    failed = _version(any_store, b"model-failed", approved=False)
    _raw_pointer(any_store, version=failed)
    with pytest.raises(NotApproved, match=f"version {failed[:12]} \\(run 'r1'\\)") as e:
        approval.production(any_store, M)
    assert e.value.retry is False


def test_a_pointer_naming_another_models_version_is_refused(any_store):
    _deploy(any_store, b"model-a", "r1")
    other = registry.register(any_store, "other", b"model-o", {"approved": True, "registered_at": "t"})["version"]
    approval.deploy_recorded(
        any_store, "other", other, run_id="r1", dag_id="lc", gate_outcome="pass", replaces=None, approver="gate"
    )
    _raw_pointer(any_store, version=other)
    with pytest.raises(NotApproved, match=other[:12]):
        approval.production(any_store, M)
    _raw_pointer(any_store, model="other")
    with pytest.raises(EvidenceIntegrityError, match="names model 'other', not 'm'"):
        approval.production(any_store, M)


def test_a_pointer_outside_the_registry_or_of_garbage_is_refused_at_once_naming_the_key(any_store):
    _deploy(any_store, b"model-a", "r1")
    _raw_pointer(any_store, version="../../evidence/m/HEAD")
    with pytest.raises(EvidenceIntegrityError, match="production.json names version '../../evidence/m/HEAD'") as e:
        approval.production(any_store, M)
    assert e.value.retry is False
    any_store.put(registry.pointer_key(M), b"\x00 not json")
    with pytest.raises(EvidenceIntegrityError, match="production.json is not valid JSON"):
        approval.production(any_store, M)


def test_a_manifest_changed_after_approval_is_refused(any_store):
    a = _deploy(any_store, b"model-a", "r1")
    key = registry.manifest_key(M, a)
    manifest = json.loads(any_store.get(key))
    any_store.put(key, json.dumps({**manifest, "approver": "mallory"}).encode())
    with pytest.raises(NotApproved, match=f"manifest.json of 'm' version {a[:12]} .* is not the one"):
        approval.production(any_store, M)


def test_model_bytes_swapped_with_a_manifest_that_vouches_for_them_are_refused(any_store, adult):
    from fairgate.models.training import dump_model, fit
    from fairgate.policy.loader import load_policy

    policy = load_policy()
    model = fit(adult.head(1500), policy)
    v = _version(any_store, dump_model(model))
    approval.deploy_recorded(
        any_store, M, v, run_id="r1", dag_id="lc", gate_outcome="pass", replaces=None, approver="g"
    )
    model[-1].coef_ = -model[-1].coef_  # the decision of every row flips
    forged = dump_model(model)
    prefix = registry.version_prefix(M, v)
    manifest = json.loads(any_store.get(f"{prefix}/manifest.json"))
    any_store.put(f"{prefix}/model.skops", forged)
    any_store.put(f"{prefix}/manifest.json", json.dumps({**manifest, "model_sha256": sha256_bytes(forged)}).encode())
    with pytest.raises(IntegrityError, match=v[:12]):
        approval.production(any_store, M)
    with pytest.raises(IntegrityError, match=v[:12]):
        registry.load_model(any_store, M, v)


def test_a_record_forged_past_head_is_a_finding_and_is_not_read(any_store):
    _deploy(any_store, b"model-a", "r1")
    head = evidence.head(any_store, M)
    forged = {"kind": "lifecycle", "run_id": "forged", "decision": "deployed", "model_name": M}
    seq = head["seq"] + 1
    entry = {
        "seq": seq,
        "prev_hash": head["hash"],
        "record": forged,
        "hash": evidence.entry_hash(seq, head["hash"], forged),
    }
    any_store.put_new(f"evidence/{M}/records/{seq:010d}.json", evidence.canonical(entry))
    checked = evidence.verify(any_store, M)
    assert not checked.ok and f"record(s) {seq} past HEAD" in checked.problems[0]
    assert evidence.find(any_store, M, kind="lifecycle") is None  # status does not show it
    assert approval.production(any_store, M).run_id == "r1"  # and nothing is approved by it


def test_a_garbage_record_is_an_integrity_error_naming_its_key(any_store):
    _deploy(any_store, b"model-a", "r1")
    key = f"evidence/{M}/records/{1:010d}.json"
    any_store.put(key, b"[1, 2")
    with pytest.raises(EvidenceIntegrityError, match="0000000001.json is not valid JSON"):
        evidence.find(any_store, M, "r1")
    assert not evidence.verify(any_store, M).ok


def test_a_lost_head_is_rebuilt_from_the_records(any_store):
    for i in range(25):  # more than append's attempts: a rebuild, not a walk forward
        evidence.append(any_store, M, {"kind": "audit", "run_id": f"a{i}"})
    any_store.delete(evidence.head_key(M))
    entry = evidence.append(any_store, M, {"kind": "audit", "run_id": "after"})
    assert entry["seq"] == 26 and evidence.verify(any_store, M).ok


def test_rollback_only_to_a_version_a_recorded_run_deployed(any_store, tmp_path, monkeypatch):
    from tests.support.policies import default_policy_dict

    from fairgate.errors import RegistryError
    from fairgate.policy.loader import parse_policy
    from fairgate.stages import lifecycle

    policy = parse_policy({**default_policy_dict(), "model_name": M})
    a = _deploy(any_store, b"model-a", "r1")
    evidence.append(
        any_store,
        M,
        {
            "kind": "lifecycle",
            "run_id": "r1",
            "gate": {"outcome": "pass"},
            "model": {"sha256": a},
            "deployment": {"version": a, "promoted": True},
        },
    )
    lost = _version(any_store, b"model-lost-the-race")  # its record written, its swap lost (lockstep)
    with pytest.raises(PromotionConflict):
        approval.deploy_recorded(
            any_store,
            M,
            lost,
            run_id="rx",
            dag_id="lc",
            gate_outcome="pass",
            replaces=None,
            approver="g",
            expected=(None, None),
        )
    b = _deploy(any_store, b"model-b", "r2", replaces=a)
    with pytest.raises(RegistryError, match=f"{lost[:12]} of 'm' was never approved"):
        lifecycle.rollback(any_store, policy, to_version=lost, actor="ops", reason="", run_id="rb0")
    assert approval.production(any_store, M).version == b
    done = lifecycle.rollback(any_store, policy, to_version=a, actor="ops", reason="bad release", run_id="rb1")
    found = approval.production(any_store, M)
    assert (done.to_version, found.version, found.how, found.run_id) == (a, a, "rollback", "rb1")


@pytest.mark.parametrize("step", ["record-written", "head-moved", "pointer-moved"])
def test_a_deployment_killed_at_each_step_is_finished_by_its_retry(any_store, step):
    a = _deploy(any_store, b"model-a", "r1")
    b = _version(any_store, b"model-b")
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.killed", any_store.spec, step, "deploy", b, a],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr
    before = registry.read_pointer(any_store, M)[0]["version"]
    assert before == (b if step == "pointer-moved" else a)  # the pointer moved only after the record
    if step == "record-written":
        assert approval.production(any_store, M).version == a  # a record past HEAD is not evidence yet
    elif step == "head-moved":  # the newest promotion record is not the pointer's: refused until the retry
        with pytest.raises(NotApproved, match="cut off before it moved the pointer is finished by its retry"):
            approval.production(any_store, M)
    intent = approval.deploy_recorded(
        any_store, M, b, run_id="r2", dag_id="lc", gate_outcome="pass", replaces=a, approver="gate"
    )
    assert intent["record"]["replaces"] == a
    entries = evidence.entries(any_store, M)
    assert [e["record"]["run_id"] for e in entries if e["record"]["kind"] == "deployment"] == ["r1", "r2"]
    assert evidence.verify(any_store, M).ok
    pointer = registry.read_pointer(any_store, M)[0]
    assert pointer["version"] == b and [h["version"] for h in pointer["history"]] == [a]  # no self-entry
    assert approval.production(any_store, M).version == b


@pytest.mark.parametrize("step", ["record-written", "head-moved"])
def test_a_record_append_killed_at_each_step_is_not_appended_twice(any_store, step):
    evidence.append(any_store, M, {"kind": "audit", "run_id": "a0"})
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.killed", any_store.spec, step, "append", "-", "-"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -9, done.stderr
    if step == "record-written":
        assert "past HEAD" in evidence.verify(any_store, M).problems[0]
    again = evidence.append(any_store, M, {"kind": "lifecycle", "run_id": "r2"}, key="lc/r2/lifecycle/deployed")
    assert again["seq"] == 2
    assert [e["record"]["run_id"] for e in evidence.entries(any_store, M)] == ["a0", "r2"]
    assert evidence.verify(any_store, M).ok


def test_status_says_when_production_is_not_backed_by_the_evidence(tmp_path, capsys):
    from fairgate.cli.main import main

    root = tmp_path / "artifacts"
    store, model = LocalStore(root), "adult_income"  # the bundled policy's model
    v = registry.register(store, model, b"model-a", {"approved": True, "registered_at": "t"})["version"]
    approval.deploy_recorded(
        store, model, v, run_id="r1", dag_id="lc", gate_outcome="pass", replaces=None, approver="g"
    )
    assert main(["--artifact-root", str(root), "status"]) == 0
    assert "approved: deployed (gate pass)" in capsys.readouterr().out

    failed = registry.register(store, model, b"model-f", {"approved": False, "registered_at": "t"})["version"]
    pointer = json.loads(store.get(registry.pointer_key(model)))
    store.put(registry.pointer_key(model), json.dumps({**pointer, "version": failed}).encode())
    assert main(["--artifact-root", str(root), "status"]) == 2
    assert f"NOT USED: Production of 'adult_income' names version {failed[:12]}" in capsys.readouterr().out

    store.put(registry.pointer_key(model), b"{garbage")
    assert main(["--artifact-root", str(root), "status"]) == 1
    err = capsys.readouterr().err
    assert "production.json is not valid JSON" in err and "Traceback" not in err


def _rewritten_chain(store, records: list[dict]) -> None:
    """What a writer to the store without the evidence key can do: replace the whole chain and HEAD,
    every link and hash recomputed, so that the records verify."""
    for key in store.list(evidence.records_prefix(M)):
        store.delete(key)
    prev = evidence.GENESIS
    for seq, record in enumerate(records, start=1):
        entry = {"seq": seq, "prev_hash": prev, "record": record, "hash": evidence.entry_hash(seq, prev, record)}
        store.put(f"{evidence.records_prefix(M)}{seq:010d}.json", evidence.canonical(entry))
        prev = entry["hash"]
    store.put(evidence.head_key(M), evidence.canonical({"seq": len(records), "hash": prev}))


def test_a_rewritten_chain_is_served_without_an_evidence_key_and_refused_with_one(any_store, monkeypatch):
    a = _deploy(any_store, b"model-a", "r1")
    failed = _version(any_store, b"model-failed", approved=False)
    _raw_pointer(any_store, version=failed, run_id="r9")
    forged = [  # consistent in every field the approval rule reads: the files bound, the pointer held
        {"kind": "deployment", "run_id": "r9", "dag_id": "lc", "version": failed, "model_name": M}
        | {"gate_outcome": "pass", "review": None, "replaces": a, "approver": "gate"}
        | {"files": approval.bind(any_store, M, failed), "pointer": registry.read_pointer(any_store, M)[0]}
    ]
    _rewritten_chain(any_store, forged)
    assert approval.production(any_store, M).version == failed  # the store's word is all there is to go on

    # the same rewrite when the real HEAD was signed with a key the forger does not hold
    monkeypatch.setenv("FAIRGATE_EVIDENCE_KEY", "held-in-an-airflow-connection")
    _raw_pointer(any_store, version=a, run_id="r1")
    _rewritten_chain(any_store, [])
    any_store.delete(evidence.head_key(M))
    a_again = _deploy(any_store, b"model-a", "r1")
    assert a_again == a and "mac" in json.loads(any_store.get(evidence.head_key(M)))
    assert approval.production(any_store, M).version == a
    _raw_pointer(any_store, version=failed, run_id="r9")
    _rewritten_chain(any_store, forged)
    with pytest.raises(EvidenceIntegrityError, match="is not signed, and an evidence key is set"):
        approval.production(any_store, M)
    with pytest.raises(EvidenceIntegrityError, match="is not signed"):  # nor does an append vouch for it
        evidence.append(any_store, M, {"kind": "audit", "run_id": "a1"})
    monkeypatch.setenv("FAIRGATE_EVIDENCE_KEY", "another-key")
    _rewritten_chain(any_store, forged)
    head = json.loads(any_store.get(evidence.head_key(M)))
    head["mac"] = evidence.head_mac(b"another-key", M, head["seq"], head["hash"])
    any_store.put(evidence.head_key(M), evidence.canonical(head))
    monkeypatch.setenv("FAIRGATE_EVIDENCE_KEY", "held-in-an-airflow-connection")
    assert any("does not check under the evidence key" in p for p in evidence.verify(any_store, M).problems)


def test_with_a_key_a_lost_head_is_refused_until_someone_signs_it(any_store, monkeypatch, tmp_path, capsys):
    from fairgate.cli.main import main

    monkeypatch.setenv("FAIRGATE_EVIDENCE_KEY", "k")
    a = _deploy(any_store, b"model-a", "r1")
    past = _version(any_store, b"model-b")
    forged = {"kind": "deployment", "run_id": "r9", "version": past, "gate_outcome": "pass", "model_name": M}
    head = evidence.head(any_store, M)
    entry = {
        "seq": 2,
        "prev_hash": head["hash"],
        "record": forged,
        "hash": evidence.entry_hash(2, head["hash"], forged),
    }
    any_store.put_new(f"{evidence.records_prefix(M)}{2:010d}.json", evidence.canonical(entry))
    with pytest.raises(EvidenceIntegrityError, match="Record 2 of 'm' .* is not signed with the evidence key"):
        evidence.append(any_store, M, {"kind": "audit", "run_id": "a1"}, key="au/a1/audit")
    seqs = [(e["seq"], e["record"]["kind"]) for e in evidence.entries(any_store, M)]
    assert seqs == [(1, "deployment")], "a record the key did not sign is never adopted into the chain"
    any_store.delete(f"{evidence.records_prefix(M)}{2:010d}.json")

    any_store.delete(evidence.head_key(M))
    with pytest.raises(EvidenceIntegrityError, match="HEAD.json is missing and an evidence key is set"):
        approval.production(any_store, M)
    root, _, endpoint = any_store.spec.partition("@")
    if endpoint:  # the CLI reaches S3 the standard way, here the moto server
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    args = ["--artifact-root", root, "--policy", _policy_file(tmp_path), "verify-log"]
    assert main(args) == 2
    assert "is missing and an evidence key is set" in capsys.readouterr().out
    assert main([*args, "--sign-head"]) == 0
    assert "Signed HEAD of m: #1" in capsys.readouterr().err
    assert approval.production(any_store, M).version == a
    assert evidence.append(any_store, M, {"kind": "audit", "run_id": "a1"}, key="au/a1/audit")["seq"] == 2


def _policy_file(tmp_path) -> str:
    import yaml
    from tests.support.policies import default_policy_dict

    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({**default_policy_dict(), "model_name": M}))
    return str(path)


def test_a_retried_audit_finds_its_own_record_and_a_rerun_of_the_day_adds_one(any_store):
    from fairgate.monitoring.prediction_log import save_audit

    result = {"kind": "audit", "run_id": "nightly-1", "date": "2026-05-01", "status": "ok", "reasons": []}
    result |= {"policy_sha256": "p", "code_version": "c"}
    first = save_audit(any_store, M, result, report_html="<p>day</p>")
    again = save_audit(any_store, M, result, report_html="<p>day</p>")  # the task's retry
    rerun = save_audit(any_store, M, {**result, "run_id": "backfill-1"}, report_html="<p>day</p>")
    assert first["seq"] == again["seq"] == 1 and rerun["seq"] == 2
    assert [e["record"]["run_id"] for e in evidence.entries(any_store, M)] == ["nightly-1", "backfill-1"]


def test_with_a_key_production_reads_back_from_the_signed_head_only_as_far_as_it_needs(any_store, monkeypatch):
    """The records that approve production are checked by their hash links from the signed HEAD; a
    rollback to a version deployed 130 records earlier is found by reading further back."""
    from tests.support.policies import default_policy_dict

    from fairgate.policy.loader import parse_policy
    from fairgate.stages import lifecycle

    monkeypatch.setenv("FAIRGATE_EVIDENCE_KEY", "k")
    a = _deploy(any_store, b"model-a", "r1")
    for i in range(128):
        evidence.append(any_store, M, {"kind": "audit", "run_id": f"a{i}"})
    b = _deploy(any_store, b"model-b", "r2", replaces=a)
    assert approval.production(any_store, M).version == b
    policy = parse_policy({**default_policy_dict(), "model_name": M})
    lifecycle.rollback(any_store, policy, to_version=a, actor="ops", reason="drift", run_id="rb")
    found = approval.production(any_store, M)
    assert (found.version, found.how, found.run_id) == (a, "rollback", "rb")

    # an edited record among those read back is refused; the signed HEAD's hash no longer leads to it
    key = f"{evidence.records_prefix(M)}{130:010d}.json"  # b's deployment record (1, 128 audits, then b)
    entry = json.loads(any_store.get(key))
    entry["record"]["gate_outcome"] = "review"
    any_store.put(key, evidence.canonical(entry))
    with pytest.raises(EvidenceIntegrityError, match="does not match the chain its signed HEAD names"):
        approval.production(any_store, M)
