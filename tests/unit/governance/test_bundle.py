"""Release bundles, datasheets and the Annex IV map, on a store made by real lifecycle runs.

The store holds synthetic credit data Fairgate has never seen (its policy written by ``fairgate
policy init``): version 1 deployed, version 2 deployed, a rollback to version 1, and two days
scored and audited with version 1. Expectations are computed here from the store's files and
the data, not read from the bundle code; every tampering test changes one thing and checks that
verification names it.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import zipfile
from datetime import date, timedelta

import pandas as pd
import pytest
import yaml
from tests.support.policies import synthetic_credit_policy

from fairgate.cli.main import main
from fairgate.governance import annex_iv, bundle, evidence, incidents, registry
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore
from fairgate_dev.local import REPO

pytestmark = pytest.mark.lifecycle  # every test reads a lifecycle's records (module fixtures)

DAY0 = date(2026, 5, 1)


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    from fairgate_dev.synthetic import write_feed

    tmp = tmp_path_factory.mktemp("released")
    write_feed(str(tmp / "feed"), DAY0.isoformat(), 2, 400, seed=6)
    path, data = synthetic_credit_policy(
        tmp,
        4000,
        seed=5,
        audit={"incoming": str(tmp / "feed"), "window_days": 2, "label_lag_days": 0},
        datasheet={"motivation": "Synthetic applications <b>for</b> tests.", "consent": "None needed: synthetic."},
    )
    raw = yaml.safe_load(path.read_text())
    store = LocalStore(tmp / "store")
    policy = load_policy(path)
    first = lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="v1"))
    raw["model"]["params"] = {"C": 0.05, "max_iter": 500}
    path.write_text(yaml.safe_dump(raw))
    second = lifecycle.run_in_process(store, load_policy(path), RunInfo(dag_id="nb", run_id="v2"))
    assert (first.decision, second.decision) == ("deployed", "deployed")
    v1, v2 = (evidence.find(store, "credit", r)["record"]["model"]["version"] for r in ("v1", "v2"))
    assert v1 != v2
    policy = load_policy(path)
    lifecycle.rollback(store, policy, to_version=v1, actor="test", reason="audit", run_id="rb")
    for i in range(2):
        monitoring.score(store, policy, DAY0 + timedelta(days=i))
    monitoring.audit(store, policy, DAY0 + timedelta(days=1), run_id="audit-1")
    return {"tmp": tmp, "store": store, "v1": v1, "v2": v2, "data": data, "policy": policy}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buffer.getvalue()


def _reindex(members: dict[str, bytes], **changes) -> dict[str, bytes]:
    """The members with ``bundle.json`` recomputed for them (what a careful forger would do)."""
    index = json.loads(members["bundle.json"])
    index["members"] = [
        {"path": p, "sha256": _sha(d), "size": len(d), "role": "x"}
        for p, d in sorted(members.items())
        if p != "bundle.json"
    ]
    index.update(changes)
    return {**members, "bundle.json": json.dumps(index).encode()}


@pytest.fixture(scope="module")
def v1_bundle(released):
    return bundle.build(released["store"], "credit", released["v1"])


def test_the_bundle_holds_the_release_and_every_record_about_it(released, v1_bundle):
    store, v1 = released["store"], released["v1"]
    members = _members(v1_bundle)
    entries = evidence.entries(store, "credit")
    kinds = [(e["seq"], e["record"]["kind"]) for e in entries]
    assert kinds == [
        (1, "deployment"),
        (2, "lifecycle"),
        (3, "deployment"),
        (4, "lifecycle"),
        (5, "rollback"),
        (6, "audit"),
    ]
    index = json.loads(members["bundle.json"])
    # v1's deployment and run (1, 2), the rollback back to it (5) and the audit that judged it (6);
    # run 2's records (3, 4) are links only
    assert index["release_records"] == [1, 2, 5, 6]
    assert sorted(p for p in members if p.startswith("evidence/chain/")) == [
        f"evidence/chain/{i:010d}.json" for i in range(1, 7)
    ]
    for i in range(1, 7):  # the records exactly as stored
        assert members[f"evidence/chain/{i:010d}.json"] == store.get(f"evidence/credit/records/{i:010d}.json")
    assert json.loads(members["evidence/HEAD.json"]) == {"seq": 6, "hash": entries[-1]["hash"]}
    assert _sha(members["model.skops"]) == v1
    assert members["audits/0000000006.json"] == store.get("audits/model=credit/date=2026-05-02/audit.json")
    assert entries[5]["record"]["judged_version"] == v1
    assert members["manifest.json"] == store.get(f"registry/credit/versions/{v1}/manifest.json")
    run = evidence.find(store, "credit", "v1")["record"]
    assert _sha(members["report.html"]) == run["report"]["sha256"]
    for name in ("report.html", "model_card.md", "datasheet.md", "quality.html", "policy.yaml"):
        assert members[name] == store.get(f"runs/nb/v1/{name}"), name
    assert _sha(members["policy.yaml"]) == run["policy"]["sha256"]
    assert bundle.verify(v1_bundle).ok


def test_verify_passes_offline_and_names_the_head(released, v1_bundle, tmp_path, monkeypatch, capsys):
    (tmp_path / "b.zip").write_bytes(v1_bundle)
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(tmp_path / "no-store-here"))
    monkeypatch.setenv("FAIRGATE_POLICY", str(tmp_path / "no-policy.yaml"))
    head = evidence.head(released["store"], "credit")
    assert main(["verify-bundle", str(tmp_path / "b.zip"), "--expect-head", head["hash"]]) == 0
    assert head["hash"] in capsys.readouterr().out
    assert not (tmp_path / "no-store-here").exists()
    assert main(["verify-bundle", str(tmp_path / "b.zip"), "--expect-head", "0" * 64]) == 2
    assert "is not the expected" in capsys.readouterr().out


def _first_problem(data: bytes) -> str:
    check = bundle.verify(data)
    assert not check.ok
    return check.problems[0]


def test_an_edited_artifact_fails_by_the_index_then_by_the_evidence(v1_bundle):
    members = _members(v1_bundle)
    members["report.html"] = members["report.html"].replace(b"</body>", b"<p>all fine</p></body>")
    assert _first_problem(_zip(members)).startswith("report.html: sha256")
    # the forger recomputes the index: the evidence record still names the original report
    problem = _first_problem(_zip(_reindex(members)))
    assert problem.startswith("report.html:") and "evidence record #2 names" in problem


def test_an_edited_record_breaks_its_hash_and_a_recomputed_hash_breaks_the_next_link(v1_bundle):
    members = _members(v1_bundle)
    key = "evidence/chain/0000000002.json"  # v1's lifecycle record
    entry = json.loads(members[key])
    entry["record"]["gate"]["outcome"] = "pass"
    entry["record"]["review"] = {"choice": "Approve", "rationale": "looked fine"}
    members[key] = evidence.canonical(entry)
    assert "does not match its hash (edited)" in _first_problem(_zip(_reindex(members)))
    entry["hash"] = evidence.entry_hash(2, entry["prev_hash"], entry["record"])
    members[key] = evidence.canonical(entry)
    problems = bundle.verify(_zip(_reindex(members))).problems
    assert any("0000000003.json: links to" in p for p in problems), problems


def test_a_removed_member_or_record_fails(v1_bundle):
    members = _members(v1_bundle)
    assert "missing from the bundle (removed)" in _first_problem(
        _zip({k: v for k, v in members.items() if k != "datasheet.md"})
    )
    without = {k: v for k, v in members.items() if k != "evidence/chain/0000000005.json"}
    problems = bundle.verify(_zip(_reindex(without))).problems
    assert any("a record between was removed" in p for p in problems)
    assert any("release record #5 is not in the chain" in p for p in problems)


def test_reordered_records_fail(v1_bundle):
    members = _members(v1_bundle)
    a, b = "evidence/chain/0000000002.json", "evidence/chain/0000000003.json"
    members[a], members[b] = members[b], members[a]
    assert "records re-ordered" in _first_problem(_zip(_reindex(members)))


def test_an_added_member_or_a_replaced_model_fails(released, v1_bundle):
    members = _members(v1_bundle)
    assert "not listed in bundle.json" in _first_problem(_zip({**members, "extra.txt": b"trust me"}))
    other = released["store"].get(f"registry/credit/versions/{released['v2']}/model.skops")
    problem = _first_problem(_zip(_reindex({**members, "model.skops": other})))
    assert problem.startswith("model.skops") and "manifest" in problem


def test_a_manifest_or_annex_map_edited_with_the_index_recomputed_fails(released, v1_bundle):
    """Members no record names by hash are bound another way: the manifest by the sha256 its
    deployment record names, the Annex IV map by being re-derived from the manifest and records."""
    members = _members(v1_bundle)
    deployment = evidence.entry(released["store"], "credit", 1)["record"]
    assert deployment["kind"] == "deployment"
    assert deployment["manifest_sha256"] == _sha(members["manifest.json"])
    manifest = json.loads(members["manifest.json"])
    manifest["registered_at"] = "2020-01-01T00:00:00+00:00"  # any change, with model_sha256 left as it was
    edited = {**members, "manifest.json": json.dumps(manifest, indent=2).encode()}
    problems = bundle.verify(_zip(_reindex(edited))).problems
    assert any("manifest.json: sha256" in p and "deployment record names" in p for p in problems), problems

    mapping = json.loads(members["annex_iv.json"])
    mapping["items"][0]["coverage"] = "covered" if mapping["items"][0]["coverage"] != "covered" else "partial"
    edited = {**members, "annex_iv.json": json.dumps(mapping, indent=2, sort_keys=True).encode()}
    problems = bundle.verify(_zip(_reindex(edited))).problems
    assert problems == ["annex_iv.json: not the map the manifest and the release records give (edited)"]


def test_a_malformed_index_is_a_finding_not_a_crash(v1_bundle):
    members = _members(v1_bundle)
    index = json.loads(members["bundle.json"])
    index["deploying_record"] = "one"
    assert "malformed" in _first_problem(_zip({**members, "bundle.json": json.dumps(index).encode()}))


def test_not_a_bundle_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "x.zip").write_bytes(b"PK not really")
    assert main(["verify-bundle", str(tmp_path / "x.zip")]) == 1
    assert "not a readable zip" in capsys.readouterr().err
    assert main(["verify-bundle", str(tmp_path / "absent.zip")]) == 1


def test_bundle_cli_resolves_versions_and_refuses_unknown_ones(released, tmp_path, capsys):
    args = ["--artifact-root", str(released["store"].root), "--policy", released["policy"].path]
    out = tmp_path / "v2.zip"
    assert main([*args, "bundle", released["v2"][:10], "--out", str(out), "--no-model"]) == 0
    members = _members(out.read_bytes())
    assert "model.skops" not in members and json.loads(members["bundle.json"])["release_records"] == [3, 4, 5]
    assert bundle.verify(out.read_bytes()).ok
    assert main([*args, "bundle", "production", "--out", str(tmp_path / "p.zip")]) == 0
    assert json.loads(_members((tmp_path / "p.zip").read_bytes())["bundle.json"])["version"] == released["v1"]
    assert main([*args, "bundle", "abcdef123", "--out", str(tmp_path / "none.zip")]) == 1
    assert "no registered version 'abcdef123'" in capsys.readouterr().err
    assert not (tmp_path / "none.zip").exists()


def test_no_bundle_from_a_broken_log(released, tmp_path):
    import shutil

    shutil.copytree(released["store"].root, tmp_path / "store")
    store = LocalStore(tmp_path / "store")
    key = "evidence/credit/records/0000000002.json"
    store.put(key, store.get(key).replace(b'"decision":"deployed"', b'"decision":"rejected"'))
    with pytest.raises(bundle.BundleError, match="does not verify"):
        bundle.build(store, "credit", released["v1"])


def test_the_datasheet_counts_groups_and_lists_what_the_team_left_out(released, v1_bundle):
    data, store = released["data"], released["store"]
    sheet = json.loads(store.get("runs/nb/v1/datasheet.json"))
    split = pd.read_parquet(io.BytesIO(store.get("runs/nb/v1/split.parquet")))["split"].to_numpy()
    by_hand = (
        data.assign(split=split)
        .groupby("gender")
        .agg(rows=("approved", "size"), rate=("approved", "mean"), test=("split", lambda s: int((s == "test").sum())))
    )
    rows = {r["group"]: r for r in sheet["representation"]}
    for gender, side in (("male", "privileged"), ("female", "unprivileged")):
        got = rows[f"gender={side}"]
        assert got["rows"] == by_hand.loc[gender, "rows"]
        assert got["favourable_rate"] == pytest.approx(by_hand.loc[gender, "rate"], abs=1e-12)
        assert got["splits"]["test"] == by_hand.loc[gender, "test"]
    assert sheet["columns"]["income"]["median"] == pytest.approx(data["income"].median())
    assert sheet["team"]["consent"] == "None needed: synthetic."
    assert "motivation" not in sheet["missing"] and {"creators", "maintainer"} <= set(sheet["missing"])
    md = _members(v1_bundle)["datasheet.md"].decode()
    assert "policy key `datasheet.creators`" in md
    assert "<b>" not in md  # the team's text is literal, not markup
    assert f"| gender=unprivileged | {by_hand.loc['female', 'rows']} |" in md


def test_the_annex_iv_map_is_filled_from_the_release(released, v1_bundle):
    mapping = json.loads(_members(v1_bundle)["annex_iv.json"])
    run = evidence.find(released["store"], "credit", "v1")["record"]
    items = {i["ref"]: i for i in mapping["items"]}
    data_item = {e["source"]: e["value"] for e in items["Annex IV 2(d)"]["evidence"]}
    assert data_item["record.data.sha256"] == run["data"]["sha256"]
    assert data_item["member.datasheet.md"] == "datasheet.md (in this bundle)"
    counts = {e["source"]: e["value"] for e in items["Annex IV 6"]["evidence"]}
    assert counts["count.rollback"] == "1" and counts["count.lifecycle"] == "1"
    assert {e["source"]: e["value"] for e in items["Annex IV 9"]["evidence"]}["count.audit"] == "1"
    assert {i["coverage"] for i in mapping["items"]} == {"covered", "partial", "not_covered"}
    assert all(i["gap"] for i in mapping["items"] if i["coverage"] != "covered")
    risk = {e["source"] for e in items["Annex IV 5"]["evidence"]}
    assert {"manifest.impact_assessment", "manifest.owners", "member.model_card.md"} <= risk
    card = _members(v1_bundle)["model_card.md"].decode()  # this policy answers none of the questions
    assert "## Impact assessment and owners" in card
    assert "- Who could be adversely affected: unanswered" in card and "- Owner: complaints: unanswered" in card


def test_docs_annex_iv_is_the_generated_map():
    regenerate = "python -c 'from fairgate import annex_iv; print(annex_iv.reference(), end=\"\")' > docs/annex_iv.md"
    assert (REPO / "docs" / "annex_iv.md").read_text() == annex_iv.reference(), regenerate


def test_a_store_changed_after_the_run_gives_no_bundle(released, tmp_path):
    import shutil

    shutil.copytree(released["store"].root, tmp_path / "moved")  # a moved store: records name the old root
    store = LocalStore(tmp_path / "moved")
    assert bundle.verify(bundle.build(store, "credit", released["v1"])).ok
    store.put("runs/nb/v1/report.html", b"<p>replaced</p>")
    with pytest.raises(bundle.BundleError, match="report.html .* no longer matches"):
        bundle.build(store, "credit", released["v1"])
    store.put(f"registry/credit/versions/{released['v1']}/model.skops", b"not the model")
    with pytest.raises(bundle.BundleError, match="model file .* was replaced"):
        bundle.build(store, "credit", released["v1"], include_model=True)


def test_a_version_unknown_to_the_registry_is_refused(released):
    with pytest.raises(bundle.BundleError, match="no registered version"):
        bundle.build(released["store"], "credit", "f" * 64)
    assert registry.production_version(released["store"], "credit") == released["v1"]


@pytest.mark.parametrize(
    "break_it,named",
    [
        (lambda df: df.drop(columns=["gender"]), "gender"),
        (lambda df: df.assign(gender=None), "gender"),
        (lambda df: df.drop(columns=["approved"]), "approved"),
        (lambda df: df.head(0), None),
    ],
)
def test_data_that_fails_quality_still_gets_a_datasheet(released, break_it, named):
    from fairgate.data import datasheet

    sheet = datasheet.datasheet(break_it(released["data"]), released["policy"], snapshot={}, quality={})
    md = datasheet.markdown(sheet)
    assert sheet["representation"] == [] and "## Composition" in md
    if named:
        assert named in sheet["representation_note"] and sheet["representation_note"] in md.replace("\\", "")


def test_the_bundle_carries_the_versions_incidents_and_the_monitoring_plan(released, tmp_path):
    """On a copy of the released store: an incident about v1 (and one about v2) opened and acted on; v1's
    bundle carries v1's incident as its records stand, and the plan of the policy that approved v1."""
    shutil.copytree(released["store"].root, tmp_path / "store")
    store = LocalStore(tmp_path / "store")
    policy = released["policy"]
    mine = incidents.open_incident(
        store, policy, source="reported", link="case 7", seen=["a complaint"], version=released["v1"]
    )
    incidents.act(store, "credit", mine["incident_id"], action="note", note="looked at the case", by="ana")
    incidents.open_incident(store, policy, source="reported", link="case 8", seen=["other"], version=released["v2"])
    members = _members(bundle.build(store, "credit", released["v1"]))
    [carried] = json.loads(members["incidents.json"])
    assert carried["incident_id"] == mine["incident_id"] and carried["actions"][0]["note"] == "looked at the case"
    plan = members["post_market_plan.md"].decode()
    assert plan.startswith("# Post-market monitoring plan: credit") and "A degraded audit opens an incident." in plan
    assert bundle.verify(bundle.build(store, "credit", released["v1"])).ok
