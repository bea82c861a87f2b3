"""The mitigation search on Adult: six candidates, each method's fit time (Fairgate vs the library
called directly), its validation figures, and the search's wall time sequential vs mapped.

    .venv/bin/python benchmarks/mitigation_search.py            # methods only (about 3 minutes)
    .venv/bin/python benchmarks/mitigation_search.py --mapped   # also a scheduler-driven run (PostgreSQL)
    .venv/bin/python benchmarks/mitigation_search.py --mapped-only
    .venv/bin/python benchmarks/mitigation_search.py --two-slots-one-thread   # the last setting alone

``--mapped`` starts a real deployment (PostgreSQL metadata DB, scheduler, LocalExecutor): with
one worker slot (the candidates one after another), with two (side by side), and with two whose
task processes use one BLAS thread each,
triggers ``fairgate_lifecycle`` with the six candidates, and reads the task instances' start and
end times: the search's wall time runs from the first candidate's start to the last one's end.
Last line is JSON.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from fairgate.data.features import feature_frame
from fairgate_dev.local import REPO

CANDIDATES = [
    {"name": "reweighing", "method": "reweighing"},
    {"name": "dir", "method": "disparate_impact_remover", "params": {"repair_level": 1.0}},
    {
        "name": "eg_parity",
        "method": "exponentiated_gradient",
        "params": {"constraint": "demographic_parity", "eps": 0.02},
    },
    {"name": "eg_odds", "method": "exponentiated_gradient", "params": {"constraint": "equalized_odds", "eps": 0.02}},
    {"name": "thresholds", "method": "threshold_optimizer", "params": {"constraint": "demographic_parity"}},
]


def policy_dict() -> dict:
    raw = yaml.safe_load((REPO / "include/config/policy.yaml").read_text())
    raw["mitigation"] = {"candidates": CANDIDATES, "allow_group_aware_decisions": True}
    return raw


def direct_fit_seconds(spec, train, policy) -> float:
    """The same fit through the library's own API, for the adapter's overhead."""
    import numpy as np
    import pandas as pd

    from fairgate.groups import group_labels, labels
    from fairgate.models import training

    y, groups = labels(train, policy), group_labels(train, policy)
    X = feature_frame(train, policy)
    started = time.perf_counter()
    if spec.method == "none":
        training.build_pipeline(policy).fit(X, y)
    elif spec.method == "reweighing":
        from aif360.algorithms.preprocessing import Reweighing
        from aif360.datasets import BinaryLabelDataset

        codes = pd.Series(groups).astype("category").cat.codes.to_numpy(dtype=float)
        ds = BinaryLabelDataset(
            df=pd.DataFrame({"g": codes, "y": y.astype(float)}), label_names=["y"], protected_attribute_names=["g"]
        )
        cells = [{"g": float(c)} for c in np.unique(codes)]
        w = Reweighing(unprivileged_groups=cells[:-1], privileged_groups=cells[-1:]).fit_transform(ds).instance_weights
        training.build_pipeline(policy).fit(X, y, classifier__sample_weight=w)
    elif spec.method == "disparate_impact_remover":
        from fairgate.fairness.aif360_adapter import repair_inputs

        cols = [c for c in policy.numeric if c not in policy.protected_columns]
        training.build_pipeline(policy).fit(repair_inputs(X, groups, cols, 1.0), y)
    elif spec.method == "exponentiated_gradient":
        from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient

        pre = training.build_pipeline(policy).named_steps["features"].set_params(sparse_threshold=0.0)
        constraint = DemographicParity() if spec.params["constraint"] == "demographic_parity" else EqualizedOdds()
        ExponentiatedGradient(training.classifier_for(policy), constraints=constraint, eps=0.02).fit(
            pre.fit_transform(X), y, sensitive_features=groups
        )
    elif spec.method == "threshold_optimizer":
        from fairlearn.postprocessing import ThresholdOptimizer

        scorer = training.build_pipeline(policy).fit(X, y)
        ThresholdOptimizer(
            estimator=scorer,
            constraints="demographic_parity",
            objective="balanced_accuracy_score",
            prefit=True,
            predict_method="predict_proba",
        ).fit(X, y, sensitive_features=groups)
    return time.perf_counter() - started


def methods() -> list[dict]:
    from fairgate.data.sources import read_source
    from fairgate.mitigation import search as mitigation
    from fairgate.models import training
    from fairgate.models.evaluation import assess
    from fairgate.policy.loader import parse_policy

    policy = parse_policy(policy_dict())
    df = read_source(policy)
    split = training.assign_split(df, policy)
    train, val = df[split == "train"], df[split == "validation"].reset_index(drop=True)
    rows = []
    for spec in mitigation.plan(policy):
        started = time.perf_counter()
        model, _ = mitigation.fit(spec, train, policy)
        ours = time.perf_counter() - started
        direct = direct_fit_seconds(spec, train, policy)
        perf, fair, _ = assess(model, val, policy)
        lowest = min(r["metrics"]["disparate_impact"]["value"] for r in fair.values())
        eod = max(abs(r["metrics"]["equal_opportunity_difference"]["value"]) for r in fair.values())
        gap = mitigation.band_gap(fair, policy)
        rows.append(
            {
                "candidate": spec.id,
                "fit_s": round(ours, 2),
                "library_fit_s": round(direct, 2),
                "balanced_accuracy": round(perf["balanced_accuracy"], 4),
                "lowest_di": round(lowest, 3),
                "largest_abs_eod": round(eod, 3),
                "band_gap": round(gap, 3),
                "validation_rows": len(val),
            }
        )
        print(
            f"{spec.id:36s} fit {ours:6.2f} s (library directly {direct:6.2f} s)  balanced accuracy "
            f"{perf['balanced_accuracy']:.3f}  lowest DI {lowest:.3f}  largest |EOD| {eod:.3f}  gap {gap:.3f}"
        )
    return rows


def mapped(slots: int, threads: int | None = None) -> dict:
    sys.path.insert(0, str(REPO))
    from tests.integration.stack import AirflowStack, require_postgres

    require_postgres()
    root = Path(tempfile.mkdtemp(prefix="fairgate-bench-search-"))
    (root / "policy.yaml").write_text(yaml.safe_dump(policy_dict()))
    stack = AirflowStack(
        root,
        {
            "FAIRGATE_POLICY": str(root / "policy.yaml"),
            "FAIRGATE_ARTIFACT_ROOT": str(root / "artifacts"),
            "AIRFLOW__CORE__PARALLELISM": str(slots),
            # BLAS threads per task process (unset: numpy's default, one per core)
            **({"OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads)} if threads else {}),
        },
    )
    try:
        stack.start()
        stack.wait_for_dags("fairgate_lifecycle")
        stack.cli("dags", "trigger", "fairgate_lifecycle")
        runs = stack.wait_for_runs("fairgate_lifecycle", 1, timeout=1800, run_type="manual")
        assert runs[0][1] == "success", stack.diagnostics()
        # Only the triggered run: the scheduler also starts the latest weekly run of an unpaused DAG.
        rows = stack.sql(
            "SELECT ti.map_index, ti.start_date, ti.end_date FROM task_instance ti JOIN dag_run dr "
            "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id WHERE ti.dag_id = 'fairgate_lifecycle' "
            "AND ti.task_id = 'fit_candidate' AND dr.run_type = 'manual' ORDER BY ti.map_index"
        )
    finally:
        stack.stop()
    durations = [(end - start).total_seconds() for _, start, end in rows]
    wall = (max(r[2] for r in rows) - min(r[1] for r in rows)).total_seconds()
    out = {
        "slots": slots,
        "blas_threads": threads or "default",
        "candidates": len(rows),
        "task_time_s": round(sum(durations), 1),
        "search_wall_s": round(wall, 1),
        "per_task_s": [round(d, 1) for d in durations],
    }
    print(
        f"search of {len(rows)} candidates on LocalExecutor with {slots} slot(s), BLAS threads "
        f"{threads or 'default'}: {wall:.1f} s from the first "
        f"candidate's start to the last one's end; {sum(durations):.1f} s of task time"
    )
    return out


def main() -> None:
    if "--two-slots-one-thread" in sys.argv:
        print(json.dumps({"mapped": [mapped(2, threads=1)]}))
        return
    result = {"methods": methods()} if "--mapped-only" not in sys.argv else {}
    if "--mapped" in sys.argv or "--mapped-only" in sys.argv:
        result["mapped"] = [mapped(1), mapped(2), mapped(2, threads=1)]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
