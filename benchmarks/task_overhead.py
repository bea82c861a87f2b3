"""The fixed cost of a lifecycle task: each task's duration against the work its stage did.

    .venv/bin/python benchmarks/task_overhead.py            # dag.test() (one process, tasks in turn)
    .venv/bin/python benchmarks/task_overhead.py --celery   # also CeleryExecutor (PostgreSQL + Redis)

Runs ``fairgate_lifecycle`` on 3,000 synthetic credit rows (small, so the stages' own work is a
fraction of a second and what remains is overhead) to a deployment. Every stage publishes
``compute_s``, the seconds its domain call took inside the task; the overhead of a task is its
duration (task instance start to end, from the metadata DB) minus that. Under ``dag.test()``
every task runs in this process, so imports are paid once; under Celery each task is a new
process on a worker. Last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from fairgate_dev.local import REPO

LOOSE = {"disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20.0}}


def _policy(folder: Path) -> Path:
    from fairgate.cli.main import main
    from fairgate_dev.synthetic import credit_applications

    credit_applications(3000, seed=5).to_csv(folder / "credit.csv", index=False)
    path = folder / "policy.yaml"
    assert (
        main(
            [
                "policy",
                "init",
                "--source",
                str(folder / "credit.csv"),
                "--label",
                "approved",
                "--favorable",
                "1",
                "--protected",
                "gender=male",
                "--model-name",
                "credit",
                "--out",
                str(path),
            ]
        )
        == 0
    )
    raw = yaml.safe_load(path.read_text())
    raw["fairness"]["thresholds"] = LOOSE
    raw["bias"]["thresholds"] = LOOSE  # no mitigation search: one task per stage
    path.write_text(yaml.safe_dump(raw))
    return path


def _table(rows: list[tuple[str, float, Any]]) -> list[dict[str, Any]]:
    """Per task: its duration, its stage's compute_s (None for tasks without a stage) and the difference."""
    out = []
    for task_id, duration, xcom in rows:
        compute = None
        if xcom is not None:
            value = xcom if isinstance(xcom, dict) else json.loads(xcom)
            compute = value.get("compute_s") if isinstance(value, dict) else None
        out.append(
            {
                "task": task_id,
                "duration_s": round(duration, 2),
                "compute_s": compute,
                "overhead_s": round(duration - (compute or 0.0), 2),
            }
        )
    return out


def _print(title: str, table: list[dict[str, Any]]) -> None:
    print(f"\n{title}\n{'task':>22} {'duration':>9} {'stage work':>11} {'overhead':>9}")
    for r in table:
        work = "—" if r["compute_s"] is None else f"{r['compute_s']:.2f} s"
        print(f"{r['task']:>22} {r['duration_s']:>7.2f} s {work:>11} {r['overhead_s']:>7.2f} s")
    stages = [r for r in table if r["compute_s"] is not None]
    print(f"{'median stage overhead':>22} {sorted(r['overhead_s'] for r in stages)[len(stages) // 2]:.2f} s")


def dag_test(folder: Path) -> list[dict[str, Any]]:
    import os

    from fairgate_dev.local import configure, init_db, load_dag

    configure(folder / "home", folder / "artifacts")
    os.environ["FAIRGATE_POLICY"] = str(folder / "policy.yaml")
    os.environ["FAIRGATE_MLFLOW"] = "off"
    init_db()
    from airflow.models import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    run = load_dag("fairgate_lifecycle").test()
    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=run.dag_id, run_id=run.run_id).all()
        rows = []
        for ti in sorted(tis, key=lambda t: t.start_date or t.end_date):
            if ti.state != "success" or ti.start_date is None or ti.end_date is None:
                continue  # a skipped route
            xcom = (
                session.query(XComModel.value)
                .filter_by(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, key="return_value")
                .scalar()
            )
            rows.append((ti.task_id, (ti.end_date - ti.start_date).total_seconds(), xcom))
    return _table(rows)


def celery(folder: Path) -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPO))
    from tests.integration.stack import AirflowStack, require_postgres

    require_postgres()
    stack = AirflowStack(
        folder / "celery",
        {
            "FAIRGATE_POLICY": str(folder / "policy.yaml"),
            "FAIRGATE_ARTIFACT_ROOT": str(folder / "celery-artifacts"),
            "FAIRGATE_MLFLOW": "off",
        },
        executor="CeleryExecutor",
    )
    try:
        stack.start()
        stack.start_worker()
        stack.wait_for_dags("fairgate_lifecycle")
        stack.cli("dags", "trigger", "fairgate_lifecycle")
        runs = stack.wait_for_runs("fairgate_lifecycle", 1, timeout=900, run_type="manual")
        assert runs[0][1] == "success", stack.diagnostics()
        rows = stack.sql(
            "SELECT ti.task_id, EXTRACT(EPOCH FROM ti.end_date - ti.start_date), x.value FROM task_instance ti "
            "JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id LEFT JOIN xcom x ON "
            "x.dag_id = ti.dag_id AND x.run_id = ti.run_id AND x.task_id = ti.task_id AND x.key = 'return_value' "
            "WHERE ti.dag_id = 'fairgate_lifecycle' AND dr.run_type = 'manual' AND ti.start_date IS NOT NULL "
            "AND ti.end_date IS NOT NULL AND ti.state = 'success' ORDER BY ti.start_date"
        )
    finally:
        stack.stop()
    return _table([(task, float(seconds), value) for task, seconds, value in rows])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--celery", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fairgate-overhead-bench-"))
    _policy(folder)
    out = {"dag_test": dag_test(folder)}
    _print("dag.test()", out["dag_test"])
    if args.celery:
        out["celery"] = celery(folder)
        _print("CeleryExecutor, one worker (concurrency 2)", out["celery"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
