"""Time every stage of one lifecycle run on a large training file, and its peak memory.

    .venv/bin/python benchmarks/lifecycle_scale.py [--rows 1000000] [--data adult|synthetic]

``adult``: the bundled Adult training file resampled with replacement to ``--rows`` rows (a
fresh row key each; the duplicate limit is lifted, since a resample repeats rows by design),
under the bundled policy. ``synthetic``: the synthetic credit generator at ``--rows`` rows,
under the policy ``fairgate policy init`` writes for it. The stages are the DAG's, called in its
order in this process (``fairgate.stages.lifecycle``), on a temporary local store; the file is
written as Parquet first and not timed. Peak RSS is this process's, so it bounds what any one
Airflow task (its own process) needs. Last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]


def _adult(rows: int, folder: Path) -> Path:
    import numpy as np

    from fairgate.data.adult import read_adult

    train = read_adult("data")
    big = train.iloc[np.random.default_rng(0).integers(0, len(train), rows)].reset_index(drop=True)
    big["row_id"] = np.arange(rows)
    big.to_parquet(folder / "adult.parquet", index=False)
    policy = yaml.safe_load((REPO / "include/config/policy.yaml").read_text())
    policy["dataset"].update(source=str(folder / "adult.parquet"), format="parquet")
    policy["quality"]["max_duplicate_fraction"] = 1.0
    path = folder / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def _synthetic(rows: int, folder: Path) -> Path:
    from fairgate.cli.main import main
    from fairgate_dev.synthetic import credit_applications

    credit_applications(rows, seed=1).to_parquet(folder / "credit.parquet", index=False)
    path = folder / "policy.yaml"
    assert (
        main(
            [
                "policy",
                "init",
                "--source",
                str(folder / "credit.parquet"),
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
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--data", choices=["adult", "synthetic"], default="adult")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fairgate-scale-bench-"))
    policy_path = (_adult if args.data == "adult" else _synthetic)(args.rows, folder)
    os.environ["FAIRGATE_POLICY"] = str(policy_path)

    from fairgate.mitigation.search import route_after_bias
    from fairgate.policy.loader import load_policy
    from fairgate.stages import lifecycle as lc
    from fairgate.storage.local import LocalStore

    policy = load_policy(policy_path)
    store = LocalStore(folder / "artifacts")
    run = lc.RunInfo(dag_id="fairgate_lifecycle", run_id="scale_bench")
    stages: dict[str, float] = {}

    def timed(name: str, fn: Any, *a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        out = fn(*a, **kw)
        stages[name] = round(stages.get(name, 0.0) + time.perf_counter() - t, 2)
        print(f"{name:>18}: {stages[name]:7.2f} s", flush=True)
        return out

    start = time.perf_counter()
    snapshot = timed("collect", lc.collect, store, policy, run)
    quality = timed("validate", lc.validate, store, policy, run, snapshot)
    assert quality.passed, quality
    bias = timed("check_bias", lc.check_bias, store, policy, run, quality)
    if route_after_bias(bias.detected, bias.reasons, policy)[0] == "search":
        plan = timed("search_plan", lc.search_plan, store, policy, run, bias)
        fitted = [
            timed("fit_candidates", lc.fit_candidate, store, policy, run, bias, item["candidate"]) for item in plan
        ]
        trained = timed("select_candidate", lc.select_candidate, store, policy, run, bias, fitted)
    else:
        trained = timed("train_model", lc.train, store, policy, run, bias)
    gate = timed("fairness_gate", lc.evaluate, store, policy, run, trained)
    decided = (
        timed("deploy", lc.deploy, store, policy, run, gate)
        if gate.outcome == "pass"
        else timed("reject", lc.reject, store, policy, gate)
    )
    recorded = timed("record_evidence", lc.record, store, policy, run, deployment=decided)
    wall = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{'total':>18}: {wall:7.2f} s, peak RSS {peak_gb:.2f} GB, decision {recorded.decision}")
    print(
        json.dumps(
            {
                "rows": args.rows,
                "data": args.data,
                "stages_s": stages,
                "wall_s": round(wall, 1),
                "peak_rss_gb": round(peak_gb, 2),
                "gate": gate.outcome,
            }
        )
    )


if __name__ == "__main__":
    main()
