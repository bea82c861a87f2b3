"""Stage results survive XCom's JSON round trip; a value from the wrong task is refused by field."""

import json

import pytest

from fairgate.contracts import Artifact, Bias, Mitigation, Quality, Snapshot, TrainedModel, optional
from fairgate.errors import InputError


def _artifact(name: str) -> Artifact:
    return Artifact(key=f"runs/r1/{name}", uri=f"file:///store/runs/r1/{name}", sha256="ab" * 32)


def _trained() -> TrainedModel:
    snapshot = Snapshot(
        data=_artifact("snapshot.parquet"),
        rows=120,
        columns=("age", "sex", "y"),
        source="mine.csv",
        duplicate_rows=3,
        period=("2026-01-01", "2026-01-02"),
    )
    quality = Quality(
        passed=True,
        rows=120,
        checks=9,
        failed=0,
        failures=(),
        failures_not_shown=0,
        result=_artifact("quality.json"),
        page=_artifact("quality.html"),
        snapshot=snapshot,
    )
    bias = Bias(
        detected=False,
        reasons=(),
        warnings=("w",),
        measured_on="train rows",
        result=_artifact("bias.json"),
        split=_artifact("split.parquet"),
        quality=quality,
    )
    return TrainedModel(
        model=_artifact("model.skops"),
        split=_artifact("split.parquet"),
        weighted=False,
        estimator="logistic_regression",
        rows={"train": 80, "test": 40},
        validation={"balanced_accuracy": 0.71, "roc_auc": None},
        result=_artifact("train.json"),
        bias=bias,
        mitigation=Mitigation.not_applied("no bias detected"),
    )


def test_a_nested_result_survives_a_json_round_trip():
    trained = _trained()
    wire = json.loads(json.dumps(trained.to_json()))  # what XCom stores
    back = TrainedModel.from_json(wire)
    assert back == trained
    assert back.bias.quality.snapshot.period == ("2026-01-01", "2026-01-02")
    assert back.mitigation.applied is False and back.mitigation.weights is None


def test_a_result_from_the_wrong_stage_is_refused_naming_the_field():
    wire = _trained().bias.to_json()  # a Bias where a TrainedModel is expected
    with pytest.raises(InputError, match=r"Expected a TrainedModel result.*\bmodel\b"):
        TrainedModel.from_json(wire)
    broken = _trained().to_json()
    broken["rows"] = "many"
    with pytest.raises(InputError, match=r"rows"):
        TrainedModel.from_json(broken)


def test_a_skipped_optional_stage_is_none_and_never_a_silent_default():
    assert optional(Mitigation, None) is None
    with pytest.raises(InputError):
        optional(Mitigation, {})  # present but empty is an error, not "not applied"
