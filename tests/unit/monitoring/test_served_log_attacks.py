"""One served request, or one file written into the served log, cannot blind monitoring.

Each case is an attack that worked before: a request whose row key or protected value is not a
decision's was answered and logged, and then every ingest and audit of its day failed; a forged part
with real decision ids replaced the real decisions; a garbage loss count was added up. Now the request
is refused (400, naming the field) and a file that fails a check is quarantined (moved aside, named in
the audit record and the compaction record) while the rest of the window is read. Synthetic credit
data, a real lifecycle run in this process, with and without an evidence key.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime

import pytest
from tests.support.policies import synthetic_credit_policy

from fairgate.errors import RequestError
from fairgate.governance import evidence, registry
from fairgate.integrations import serving
from fairgate.monitoring import served_log
from fairgate.monitoring.served_log import StoreSink
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore
from fairgate_dev.synthetic import credit_applications

pytestmark = pytest.mark.lifecycle
DAY = date(2026, 7, 3)
NOON = datetime(2026, 7, 3, 12, tzinfo=UTC)
PARTS = f"predictions/model=credit/date={DAY}/online/"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attacks")
    path, _ = synthetic_credit_policy(folder, 3000, seed=5)
    store = LocalStore(folder / "store")
    policy = load_policy(path)
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="v1")).decision == "deployed"
    return {"folder": folder, "policy": policy}


@pytest.fixture
def live(deployed, tmp_path):
    """A copy of the deployed store, and the production version loaded as the server loads it."""
    shutil.copytree(deployed["folder"] / "store", tmp_path / "store")
    store = LocalStore(tmp_path / "store")
    version = registry.production_version(store, "credit")
    folder = serving.write_bundle(store, deployed["policy"], version, tmp_path / "bundle")
    served = serving.load({p.name: str(p) for p in folder.iterdir()}, version=version)
    return store, deployed["policy"], served


def _requests(n: int = 3, seed: int = 70):
    feed = credit_applications(n, seed=seed).drop(columns=["approved"])
    feed["application_id"] = [f"web{seed}-{i}" for i in range(n)]
    return feed


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("application_id", {"a": 1}, "row key"),
        ("application_id", None, "row key"),
        ("application_id", ["x"], "row key"),
        ("application_id", True, "row key"),
        ("application_id", "x" * 5_000_000, "at most 256 characters"),
        ("gender", None, "Protected column 'gender' has no value"),
        ("gender", "robot", "not among its allowed values"),
        ("gender", {"a": 1}, "Protected column 'gender' must be a text or a number"),
    ],
)
def test_a_request_whose_key_or_protected_value_is_not_a_decisions_is_refused_by_name(live, column, value, said):
    store, _, served = live
    records = _requests()
    records[column] = records[column].astype(object)
    records.at[1, column] = value
    with pytest.raises(RequestError, match=said) as refused:
        serving.decide(served, records, now=NOON)
    assert column in str(refused.value)
    assert store.list(PARTS) == []  # nothing logged


def _log(store, served, seed: int, n: int = 3):
    decided = serving.decide(served, _requests(n, seed), now=NOON)
    StoreSink(store, "credit").write(decided.log, decided.day)
    return decided


def _forge(store, name: str, columns: dict) -> str:
    """A part written straight into the store: valid JSON, real-looking decisions, a name of its own."""
    data = json.dumps(columns, default=str).encode()
    key = f"{PARTS}{name}"
    store.put(key, data)
    return key


@pytest.mark.parametrize("signed", [False, True])
def test_a_forged_part_with_real_decision_ids_never_replaces_the_real_decisions(live, monkeypatch, signed):
    store, policy, served = live
    if signed:
        monkeypatch.setenv("FAIRGATE_EVIDENCE_KEY", "held-by-the-server-and-airflow")
    real = _log(store, served, seed=71)
    [real_key] = store.list(PARTS)
    flipped = real.log.assign(decision=1 - real.log["decision"])
    columns = {str(c): flipped[c].tolist() for c in flipped.columns}
    data = json.dumps(columns, default=served_log._json_default).encode()
    sha = __import__("hashlib").sha256(data).hexdigest()
    forged = _forge(store, f"20260101T000000000000Z-{sha}.json", json.loads(data))  # earlier stamp: read first
    result = monitoring.audit_day(store, policy, DAY, run_id="a")
    moved = {q["key"]: q["why"] for q in result["quarantined"]}
    if signed:  # the forger holds no key: the forged part alone is set aside, the real decisions are audited
        assert set(moved) == {forged} and "not signed with the evidence key" in moved[forged]
        assert result["channels"] == {"online": 3}
        assert result["rows"] == 3
    else:  # which is real cannot be told without a key: both set aside, both named, neither counted
        assert set(moved) == {forged, real_key}
        assert all("says something else of one of its decision ids" in why for why in moved.values())
        assert result["rows"] == 0
    for q in result["quarantined"]:
        assert store.exists(q["moved_to"]) and store.exists(f"{q['moved_to']}.why.json")


def test_parts_that_would_have_failed_the_window_are_quarantined_and_the_rest_is_audited(live):
    store, policy, served = live
    _log(store, served, seed=72)
    good = _log(store, served, seed=73).log
    bad = {
        "dict-key": good.assign(application_id=[{"a": 1}] * 3),
        "null-group": good.assign(gender=[None] * 3),
        "other-group": good.assign(gender=["robot"] * 3),
        "unknown-version": good.assign(model_version=["f" * 64] * 3),
        "other-day": good.assign(scored_at=[datetime(2026, 7, 4, tzinfo=UTC)] * 3),
        "score": good.assign(score=[7.0] * 3),
    }
    for i, frame in enumerate(bad.values()):
        columns = {str(c): frame[c].tolist() for c in frame.columns}
        columns["decision_id"] = [f"{i:02d}{j:030d}" for j in range(3)]
        data = json.dumps(columns, default=served_log._json_default).encode()
        sha = __import__("hashlib").sha256(data).hexdigest()
        _forge(store, f"20260703T13000{i}000000Z-{sha}.json", json.loads(data))
    _forge(store, "not-a-part.json", {"decision_id": ["x"]})
    store.put(f"{PARTS}20260703T140000000000Z-{'0' * 64}.json", b"\x00 not json")
    result = monitoring.audit_day(store, policy, DAY, run_id="a")
    assert result["rows"] == 6 and result["channels"] == {"online": 6}
    whys = sorted(q["why"] for q in result["quarantined"])
    assert len(whys) == 8
    for said in (
        "row key 'application_id' holds a value",
        "protected column 'gender' holds a missing",
        "outside protected_attributes[].allowed",
        "the registry of 'credit' does not hold",
        "not all times of 2026-07-03",
        "scores are not numbers in [0, 1]",
        "not a content-addressed file",
        "bytes do not match the sha256",
    ):
        assert any(said in why for why in whys), (said, whys)
    # the ingest goes on too: the two real parts compacted, a record binding them by hash
    done = monitoring.ingest(store, policy, run_id="i1")
    [compacted] = done["compacted"]
    assert compacted["decisions"] == 6 and compacted["parts"] == 2
    record = evidence.find(store, "credit", "i1", kind="compaction")["record"]
    assert record["file"]["sha256"] == __import__("hashlib").sha256(store.get(record["file"]["key"])).hexdigest()
    assert len(record["parts"]) == 2
    assert monitoring.audit_day(store, policy, DAY, run_id="b")["rows"] == 6


def test_a_changed_compacted_file_is_quarantined(live):
    store, policy, served = live
    _log(store, served, seed=74)
    monitoring.ingest(store, policy, run_id="i1")
    [key] = [k for k in store.list(f"predictions/model=credit/date={DAY}/") if "/online-" in k]
    store.put(key, store.get(key) + b" ")
    result = monitoring.audit_day(store, policy, DAY, run_id="a")
    assert [q["key"] for q in result["quarantined"]] == [key] and result["rows"] == 0


@pytest.mark.parametrize(
    "content", [{"count": -5, "cause": "x"}, {"count": "many"}, {"count": 10**12, "cause": "x"}, "garbage"]
)
def test_a_garbage_loss_count_is_quarantined_not_added(live, content):
    store, policy, served = live
    _log(store, served, seed=75)
    served_log.record_loss(store, "credit", DAY, 2, "store down")
    data = json.dumps(content).encode()
    sha = __import__("hashlib").sha256(data).hexdigest()
    store.put(f"predictions/model=credit/date={DAY}/online-lost/20260703T150000000000Z-{sha}.json", data)
    result = monitoring.audit_day(store, policy, DAY, run_id="a")
    assert result["unlogged_decisions"] == 2
    [moved] = result["quarantined"]
    assert "online-lost" in moved["key"]


def test_an_answer_with_fewer_than_three_reasons_is_strict_json(live):
    """Before: pandas 3 kept a missing reason as NaN, written "reason_3": NaN, which browsers, Go and
    Jackson refuse. The reference record itself moves no input: it has no reason at all."""
    _, _, served = live
    records = _requests(2, seed=76)
    for col, value in served.reference.items():
        if col in records.columns:
            records.loc[0, col] = value  # the first record is the reference; the second has its reasons
    answer = serving.decide(served, records, now=NOON).answer
    text = json.dumps(answer.to_dict(orient="records"), allow_nan=False)  # raises on NaN or infinity
    plain, other = json.loads(text)
    assert plain["reason_1"] is None and plain["reason_3"] is None and isinstance(other["reason_1"], str)


def test_a_handful_of_decisions_is_not_judged_for_drift(live):
    """Before: one served decision whose categories differed from the training mix read as PSI 6 (drift),
    and the audit of the install page's walkthrough said `degraded` and opened an incident."""
    store, policy, served = live
    _log(store, served, seed=77)
    result = monitoring.audit_day(store, policy, DAY, run_id="a")
    assert result["rows"] == 3 and result["drift"] == {}
    assert not any("drifted" in r for r in result["reasons"]) and result["status"] != "degraded"
    assert any(
        "drift not judged: the window holds 3 decision(s) (< audit.min_drift_rows 100)" in r
        for r in result["insufficient"]
    )
