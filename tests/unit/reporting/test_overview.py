"""The Fairness view's index: what it serves equals reading the whole store, and a request after new
records reads only those records."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from fairgate.governance import evidence, incidents, registry
from fairgate.monitoring import prediction_log
from fairgate.policy.loader import load_policy
from fairgate.reporting import overview
from fairgate.reporting.report import overview_html
from fairgate.storage.base import sha256_bytes
from fairgate.storage.local import LocalStore

DAY = date(2026, 3, 1)


class Counting(LocalStore):
    """A local store that counts what is read and listed."""

    def __init__(self, root):
        super().__init__(root)
        self.gets: list[str] = []
        self.lists: list[str] = []

    def get(self, key):
        self.gets.append(key)
        return super().get(key)

    def list(self, prefix):
        self.lists.append(prefix)
        return super().list(prefix)


def _run(store, model, i, *, deploy):
    rec = {
        "kind": "lifecycle",
        "dag_id": f"fairgate_lifecycle__{model}",
        "run_id": f"r{i}",
        "decision": "deployed" if deploy else "rejected",
        "recorded_at": f"2026-03-{i + 1:02d}T00:00:00+00:00",
        "gate": {"outcome": "pass" if deploy else "fail", "reasons": [] if deploy else [f"reason {i}"]},
        "policy": {"sha256": "ab" * 32},
        "model": {"sha256": sha256_bytes(f"{model}-{i}".encode()), "uri": f"file:///srv/{model}/{i}/model.skops"},
    }
    if deploy:
        m = registry.register(
            store,
            model,
            f"{model}-{i}".encode(),
            {
                "approved": True,
                "registered_at": rec["recorded_at"],
                "gate_outcome": "pass",
                "performance": {"balanced_accuracy": 0.5 + i / 100},
                "run_id": f"r{i}",
                "dag_id": rec["dag_id"],
            },
        )
        registry.promote(store, model, m["version"], action="deploy", run_id=f"r{i}", actor="t", reason="")
    evidence.append(store, model, rec)


def _audit(store, model, day, status="healthy"):
    prediction_log.save_audit(
        store,
        model,
        {
            "kind": "audit",
            "run_id": f"a{day}",
            "date": day.isoformat(),
            "status": status,
            "reasons": [],
            "policy_sha256": "p",
            "code_version": "t",
            "rows": 10,
            "labeled_rows": 5,
            "fairness": {"g": {"metrics": {"disparate_impact": {"value": 1.0}}}},
        },
        report_html="<html></html>",
    )


def _from_scratch(store, model, today):
    """What the page shows, read from the whole store without the index (the pre-index reading)."""
    lifecycle = [e for e in evidence.entries(store, model) if e["record"]["kind"] == "lifecycle"][::-1][:20]
    return {
        "decisions": [
            {"seq": e["seq"], "run_id": e["record"]["run_id"], "gate": e["record"]["gate"]["outcome"]}
            for e in lifecycle
        ],
        "audits": [(a["date"], a["status"]) for a in prediction_log.audit_history(store, model, until=today)],
        "versions": [m["version"] for m in reversed(registry.list_versions(store, model))],
        "production": registry.production_version(store, model),
    }


def _shown(data, model):
    m = next(m for m in data["models"] if m["name"] == model)
    return {
        "decisions": [{"seq": d["seq"], "run_id": d["run_id"], "gate": d["gate"]} for d in m["decisions"]],
        "audits": [(a["date"], a["status"]) for a in m["audits"]],
        "versions": [v["version"] for v in m["versions"]],
        "production": m["production"]["version"],
    }


@pytest.fixture
def filled(tmp_path):
    store = Counting(tmp_path / "store")
    for model in ("credit", "hiring"):
        for i in range(25):
            _run(store, model, i, deploy=i % 5 == 0)
            _audit(store, model, DAY + timedelta(days=i))
    return store


def test_the_index_serves_what_reading_the_whole_store_gives(filled):
    today = DAY + timedelta(days=40)
    data = overview.overview(filled, today=today)
    assert [m["name"] for m in data["models"]] == ["credit", "hiring"]
    for model in ("credit", "hiring"):
        assert _shown(data, model) == _from_scratch(filled, model, today)
        assert len(_shown(data, model)["versions"]) == 5  # only the deploying runs registered a version


def test_a_request_after_new_records_reads_only_those(filled):
    today = DAY + timedelta(days=40)
    overview.overview(filled, today=today)
    _run(filled, "credit", 25, deploy=True)
    _audit(filled, "credit", DAY + timedelta(days=3), status="degraded")  # a re-run of a date replaces it
    filled.gets.clear()
    filled.lists.clear()
    data = overview.overview(filled, today=today)
    assert not any(
        p.startswith(("evidence/credit/records", "audits/", "registry/credit/versions")) for p in filled.lists
    )
    credit_records = [k for k in filled.gets if k.startswith("evidence/credit/records/")]
    assert credit_records == ["evidence/credit/records/0000000051.json", "evidence/credit/records/0000000052.json"]
    shown = _shown(data, "credit")
    assert shown == _from_scratch(filled, "credit", today)
    assert dict(shown["audits"])[(DAY + timedelta(days=3)).isoformat()] == "degraded"
    assert shown["decisions"][0]["run_id"] == "r25" and len(shown["versions"]) == 6
    # An unchanged store: nothing but the index, HEAD and pointer of each model.
    filled.gets.clear()
    overview.overview(filled, today=today)
    assert len(filled.gets) == 6


def test_a_corrupt_index_or_one_ahead_of_the_log_is_rebuilt(filled, tmp_path):
    today = DAY + timedelta(days=40)
    filled.put(overview.index_key("credit"), b"{not json")
    assert _shown(overview.overview(filled, today=today), "credit") == _from_scratch(filled, "credit", today)
    index = json.loads(filled.get(overview.index_key("credit")))
    filled.put(overview.index_key("credit"), json.dumps({**index, "seq": 10_000}).encode())
    assert _shown(overview.overview(filled, today=today), "credit") == _from_scratch(filled, "credit", today)
    assert json.loads(filled.get(overview.index_key("credit")))["seq"] == 50


def test_a_store_that_refuses_the_index_write_still_serves_the_page(filled, caplog):
    from fairgate.errors import StoreError

    today = DAY + timedelta(days=40)

    class ReadOnly(Counting):
        def swap(self, key, data, *, expected_etag):
            raise StoreError(f"AccessDenied on {key}")

    read_only = ReadOnly(filled.root)
    assert _shown(overview.overview(read_only, today=today), "credit") == _from_scratch(filled, "credit", today)
    assert not read_only.exists(overview.index_key("credit"))
    assert "was not written" in caplog.text


def test_open_incidents_are_shown_until_closed(filled):
    """The view lists a model's open incidents, as the incidents module reads them from the log; a closed
    one leaves the list, an overdue one says so (on the HTML page too)."""
    today = DAY + timedelta(days=40)
    overview.overview(filled, today=today)  # an index built before the incidents were opened
    policy = load_policy().model_copy(update={"model_name": "credit"})
    old = datetime(2026, 1, 1, tzinfo=UTC)
    first = incidents.open_incident(
        filled, policy, source="audit_degraded", link="audit 2026-03-05", seen=["DI 0.6"], now=old
    )
    second = incidents.open_incident(filled, policy, source="reported", link="case 1", seen=["a complaint"])
    incidents.sweep(filled, "credit")
    shown = next(m for m in overview.overview(filled, today=today)["models"] if m["name"] == "credit")["incidents"]
    expected = [i for i in incidents.incidents(filled, "credit") if i["status"] == "open"]
    assert [(i["incident_id"], i["overdue"]) for i in shown] == [(i["incident_id"], i["overdue"]) for i in expected]
    assert [i["overdue"] for i in shown] == [True, False]
    page = overview_html(overview.overview(filled, today=today), user="viewer")
    assert first["incident_id"] in page and "(overdue)" in page
    incidents.close(filled, "credit", first["incident_id"], rationale="retrained", by="ana")
    shown = next(m for m in overview.overview(filled, today=today)["models"] if m["name"] == "credit")["incidents"]
    assert [i["incident_id"] for i in shown] == [second["incident_id"]]
