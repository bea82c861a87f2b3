"""The typed evidence record reads every record a release has written, and writes it back unchanged."""

from __future__ import annotations

import json

import pytest

from fairgate.errors import IntegrityError
from fairgate.governance import lineage
from fairgate.governance.evidence import canonical
from fairgate.governance.records import LifecycleRecord
from fairgate_dev.local import REPO

# A run's record as the release before the typed record wrote it (UCI Adult, the bundled policy,
# the gate rejected the candidate; only the machine's paths replaced).
OLD = REPO / "tests" / "fixtures" / "lifecycle_record_0_1.json"


def test_a_record_written_before_the_typed_record_round_trips_byte_for_byte():
    raw = json.loads(OLD.read_text())
    rec = LifecycleRecord.from_json(raw)
    assert canonical(rec.to_json()) == canonical(raw)  # what the chain hashes: unchanged
    assert rec.decision == raw["decision"] == "rejected"
    assert rec.model is not None and rec.model.sha256 == raw["model"]["sha256"]
    assert rec.gate is not None and rec.gate.outcome == raw["gate"]["outcome"]
    assert rec.report is not None and rec.report.sha256 == raw["report"]["sha256"]
    assert rec.data is not None and rec.data.rows == raw["data"]["rows"]


def test_keys_a_later_release_adds_are_kept_and_keys_it_drops_are_optional():
    raw = json.loads(OLD.read_text())
    raw["gate"]["added_later"] = {"x": 1}
    raw["new_section"] = [1, 2]
    del raw["calibration"], raw["model_card"]
    rec = LifecycleRecord.from_json(raw)
    assert rec.to_json() == raw
    assert rec.calibration is None and rec.model_card is None


def test_the_consumers_read_the_old_record():
    raw = json.loads(OLD.read_text())
    rec = LifecycleRecord.from_json(raw)
    inputs, outputs = lineage.datasets(rec)
    assert inputs == [("file", raw["data"]["uri"].removeprefix("file://"))]
    assert ("file", raw["report"]["uri"].removeprefix("file://")) in outputs
    facet = lineage.fairness_facet(rec, seq=3, entry_hash="ab" * 32)
    assert facet["balancedAccuracy"] == raw["performance"]["balanced_accuracy"]
    assert facet["modelVersion"] == raw["model"]["sha256"]  # a rejected model has no registry version


def test_a_record_of_the_wrong_shape_is_an_integrity_error_naming_the_field():
    raw = json.loads(OLD.read_text())
    raw["data"] = {"rows": "many"}
    with pytest.raises(IntegrityError, match=r"LifecycleRecord: data.rows"):
        LifecycleRecord.from_json(raw)
