"""Time one whole nightly audit over a large prediction log read from Parquet.

    .venv/bin/python benchmarks/audit_window.py [--rows 10000000]

Builds a 7-day prediction log of ``--rows`` rows (Adult test records resampled, random
decisions) with outcomes for the first 4 days in a temporary local store, registers a
production model whose training snapshot is the Adult training file, then times
``fairgate.stages.monitoring.audit_day``: read, join, metrics with intervals, drift. Last line is JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from datetime import date, timedelta

import numpy as np
import pandas as pd

from fairgate.data.adult import read_adult
from fairgate.data.sources import to_parquet_bytes
from fairgate.governance import approval, registry
from fairgate.models import training
from fairgate.monitoring import prediction_log
from fairgate.policy.loader import load_policy, policy_path
from fairgate.stages import monitoring
from fairgate.storage.local import LocalStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument(
        "--shuffled-labels",
        action="store_true",
        help="write each day's outcomes in another row order (as a late label feed may)",
    )
    args = parser.parse_args()
    policy = load_policy()
    store = LocalStore(tempfile.mkdtemp(prefix="fairgate-audit-bench-"))

    train = read_adult("data")
    snap = store.put_new("runs/bench/snapshot.parquet", to_parquet_bytes(train))
    # A release is promoted whole: its policy file and split beside its snapshot (fairgate.governance.approval).
    store.put_new("runs/bench/policy.yaml", policy_path().read_bytes())
    store.put_new("runs/bench/split.parquet", to_parquet_bytes(pd.DataFrame({"split": ["train"] * len(train)})))
    # A real model (the audit measures recourse under it); the logged decisions below are random.
    model = training.dump_model(training.fit(train, policy))
    v = registry.register(
        store,
        policy.model_name,
        model,
        {"approved": True, "registered_at": "0", "data_key": snap.key, "data_sha256": snap.sha256},
    )["version"]
    approval.deploy_recorded(
        store,
        policy.model_name,
        v,
        run_id="bench",
        dag_id="bench",
        gate_outcome="pass",
        replaces=None,
        approver="bench",
    )

    pool = read_adult("test")
    rng = np.random.default_rng(0)
    end, per_day = date(2026, 3, 7), args.rows // 7
    cols = [policy.dataset.row_key, *policy.protected_columns, *policy.features]
    t = time.perf_counter()
    for i in range(7):
        day = end - timedelta(days=6 - i)
        idx = rng.integers(0, len(pool), per_day)
        log = pool.iloc[idx][cols].reset_index(drop=True)
        log[policy.dataset.row_key] = np.char.add(f"{day}/", np.arange(per_day).astype(str))
        log.insert(1, "model_version", v)
        log["score"] = rng.random(per_day)
        log["decision"] = (log["score"] > 0.7).astype("int8")
        store.put(prediction_log.partition_key("predictions", policy.model_name, day), to_parquet_bytes(log))
        if i < 4:
            y = (pool["income"].to_numpy()[idx] == ">50K").astype("int8")
            buf = io.BytesIO()
            outcomes = pd.DataFrame(
                {policy.dataset.row_key: log[policy.dataset.row_key], prediction_log.LABEL_COLUMN: y}
            )
            if args.shuffled_labels:
                outcomes = outcomes.sample(frac=1.0, random_state=i).reset_index(drop=True)
            outcomes.to_parquet(buf)
            store.put(prediction_log.partition_key("labels", policy.model_name, day), buf.getvalue())
    print(f"built a {per_day * 7:,}-row log in {time.perf_counter() - t:.1f} s", flush=True)

    t = time.perf_counter()
    result = monitoring.audit_day(store, policy, end, run_id="bench")
    elapsed = time.perf_counter() - t
    print(
        f"audit of {result['rows']:,} predictions ({result['labeled_rows']:,} labeled), "
        f"{len(result['fairness'])} comparisons, {len(result['drift'])} drift measures: {elapsed:.1f} s "
        f"-> {result['status']}"
    )
    print(json.dumps({"rows": result["rows"], "audit_s": round(elapsed, 2)}))


if __name__ == "__main__":
    main()
