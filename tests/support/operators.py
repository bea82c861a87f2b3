"""Calling an operator's ``execute`` outside Airflow: a task instance that keeps XComs in a dict, and the
context a run gives."""

from __future__ import annotations

from types import SimpleNamespace


class FakeTI:
    def __init__(self):
        self.xcom: dict[tuple[str, str], object] = {}
        self.task_id = "current"

    def xcom_push(self, key, value):
        self.xcom[(self.task_id, key)] = value

    def xcom_pull(self, task_ids, key="return_value"):
        return self.xcom.get((task_ids, key))


def context(ti, params=None):
    return {
        "ti": ti,
        "dag_run": SimpleNamespace(dag_id="t", run_id="run-1", run_type="manual"),
        "params": params or {},
        "data_interval_start": None,
        "data_interval_end": None,
    }


def run(op, ti, method="execute", params=None):
    ti.task_id = op.task_id
    return getattr(op, method)(context(ti, params))
