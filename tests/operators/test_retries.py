"""What an operator does with each kind of error: bad input fails at once, a server that is down is retried.

The tracking operator runs against an MLflow address where nothing listens (a real closed port on
loopback, not a mock): the tries with retries left raise the transient error (so Airflow retries
them), and the last try records ``not_logged`` in the evidence log and lets the run conclude.
"""

from __future__ import annotations

import socket

import pytest
from airflow.sdk.exceptions import AirflowFailException
from tests.support.operators import FakeTI, run

from fairgate.errors import TrackingUnavailable
from fairgate.governance import evidence
from fairgate.policy.loader import load_policy
from fairgate_airflow.operators import SUMMARY, CollectDataOperator, TrackMlflowOperator


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # released on close: nothing listens there afterwards


def test_mlflow_down_is_retried_and_the_last_try_records_not_logged(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the client's own retries; Airflow's are tested
    monkeypatch.setenv("FAIRGATE_MLFLOW", "on")
    op = TrackMlflowOperator(task_id="track_mlflow", retries=2)
    ti = FakeTI()
    for try_number in (1, 2):  # retries left: the task fails with the transient error, and Airflow retries it
        ti.try_number = try_number
        with pytest.raises(TrackingUnavailable, match="did not take the write"):
            run(op, ti)
    assert evidence.recent(store, load_policy().model_name, "tracking", last=1) == []
    ti.try_number = 3  # the last try: recorded, and the task succeeds
    run(op, ti)
    assert ti.xcom[("track_mlflow", SUMMARY)]["logged"] is False
    last = evidence.recent(store, load_policy().model_name, "tracking", last=1)[0]["record"]
    assert last["status"] == "not_logged" and last["lifecycle_run_id"] == "run-1"
    assert "did not take the write" in last["error"]


def test_bad_input_fails_the_task_at_once(write_policy, store):
    write_policy({"dataset.source": "/nowhere/at/all.csv"})
    with pytest.raises(AirflowFailException, match="/nowhere/at/all.csv"):
        run(CollectDataOperator(task_id="collect_data"), FakeTI())


def test_a_changed_artifact_fails_the_task_at_once_naming_it():
    from fairgate.errors import ModelIntegrityError
    from fairgate_airflow.operators.base import guarded

    def tampered():
        raise ModelIntegrityError("model registry/m/versions/abc/model.skops: sha256 1 does not match the recorded 2")

    with pytest.raises(AirflowFailException, match="ModelIntegrityError: model registry/m/versions/abc/model.skops"):
        guarded(tampered)
