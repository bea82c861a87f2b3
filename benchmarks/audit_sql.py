"""The audit's fairness figures pushed down to PostgreSQL: one GROUP BY over a week of predictions.

    .venv/bin/python benchmarks/audit_sql.py [ROWS ...]      default: 1000000 10000000

For each size: a fresh table of predictions (Adult test records resampled; 7 days, the bundled
policy's sex and race) and one of outcomes for the first 4 days, loaded with COPY into the local
PostgreSQL (database ``test``), analysed, then the audit's query timed (best of 3). Beside it,
what a user would otherwise run: ``pandas.read_sql`` of the window, a merge with the outcomes and
the counts in pandas (1e6 rows only). Prints rows moved, seconds and the peak of Python's allocations
(tracemalloc) in each.
"""

from __future__ import annotations

import io
import sys
import time
import tracemalloc
import uuid
from datetime import date, timedelta

import numpy as np
import pandas as pd

PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def _copy(engine, name: str, frame: pd.DataFrame, ddl: str) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(f'CREATE TABLE "{name}" ({ddl})')
        buf = io.StringIO()
        frame.to_csv(buf, index=False, header=False)
        buf.seek(0)
        cur.copy_expert(f'COPY "{name}" FROM STDIN WITH (FORMAT csv)', buf)
        cur.execute(f'ANALYZE "{name}"')
        raw.commit()
    finally:
        raw.close()


def main(argv: list[str]) -> int:
    import sqlalchemy

    from fairgate.data.adult import read_adult
    from fairgate.monitoring import sql_audit
    from fairgate.policy.loader import load_policy

    sizes = [int(a) for a in argv] or [1_000_000, 10_000_000]
    policy = load_policy()
    engine = sqlalchemy.create_engine(PG)
    pool = read_adult("test")
    end = date(2026, 3, 7)
    rng = np.random.default_rng(0)
    print(
        f"{'rows':>11} {'load s':>7} {'query s':>8} {'rows moved':>10} {'query MB':>9} {'pandas s':>9} "
        f"{'pandas MB':>10}"
    )
    for n in sizes:
        per_day = n // 7
        days = np.repeat([end - timedelta(days=6 - i) for i in range(7)], per_day)
        idx = rng.integers(0, len(pool), len(days))
        preds = pd.DataFrame(
            {
                "row_id": np.char.add("r", np.arange(len(days)).astype(str)),
                "model_version": "v1",
                "scored_on": days,
                "decision": (rng.random(len(days)) > 0.7).astype("int8"),
                "sex": pool["sex"].to_numpy()[idx],
                "race": pool["race"].to_numpy()[idx],
            }
        )
        labeled = preds["scored_on"] <= end - timedelta(days=3)
        outs = pd.DataFrame(
            {
                "row_id": preds.loc[labeled, "row_id"],
                "outcome": (pool["income"].to_numpy()[idx][labeled.to_numpy()] == ">50K").astype("int8"),
            }
        )
        outs = outs.sample(frac=1.0, random_state=1)
        p_name, o_name = f"bench_predictions_{uuid.uuid4().hex[:6]}", f"bench_outcomes_{uuid.uuid4().hex[:6]}"
        t = time.perf_counter()
        _copy(
            engine,
            p_name,
            preds,
            "row_id text, model_version text, scored_on date, decision smallint, sex text, race text",
        )
        _copy(engine, o_name, outs, "row_id text, outcome smallint")
        load_s = time.perf_counter() - t
        try:
            times = []
            for _ in range(3):
                tracemalloc.start()
                t = time.perf_counter()
                counts = sql_audit.window_counts(engine, policy, p_name, o_name, day=end, version="v1")
                fairness = sql_audit.fairness_from_counts(counts, policy)
                times.append(time.perf_counter() - t)
                query_mb = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
            assert counts["n"].sum() == len(preds) and fairness
            pandas_s, pandas_mb = float("nan"), float("nan")
            if n <= 1_000_000:
                tracemalloc.start()
                t = time.perf_counter()
                window = pd.read_sql(f'SELECT * FROM "{p_name}"', engine)
                labels = pd.read_sql(f'SELECT * FROM "{o_name}"', engine)
                merged = window.merge(labels, on="row_id", how="left", validate="one_to_one")
                merged.groupby(["sex", "race", "decision", "outcome"], dropna=False).size()
                pandas_s = time.perf_counter() - t
                pandas_mb = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
            print(
                f"{n:>11,} {load_s:>7.1f} {min(times):>8.2f} {len(counts):>10} {query_mb:>9.1f} "
                f"{pandas_s:>9.2f} {pandas_mb:>10.0f}"
            )
        finally:
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text(f'DROP TABLE "{p_name}"'))
                conn.execute(sqlalchemy.text(f'DROP TABLE "{o_name}"'))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
