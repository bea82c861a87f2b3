"""Subgroup discovery at scale: ``fairgate.fairness.subgroups.discover`` on 1e5 and 1e6 decisions with six
attributes (three protected), outcomes known for every row, against AIF360's MDSS bias scan
(``aif360.detectors.mdss_detector.bias_scan``) on the same decisions in the same run; subgroups of
up to three attributes (``subgroups.max_attributes: 3``). One subgroup
(women over 60 in the south) has its selection rate lowered by 0.15.

    python benchmarks/subgroups.py [ROWS ...]      # default: 100000 1000000

Prints, per size: Fairgate's time, peak traced memory, number of tests and the first finding; then
MDSS's time and the subgroup it scores highest. MDSS searches every attribute (not only subgroups
with a protected one) for the subset whose decisions fall furthest below the overall rate.
"""

from __future__ import annotations

import sys
import time
import tracemalloc

import numpy as np
import pandas as pd

RAW = {
    "model_name": "bench",
    "dataset": {
        "source": "/unused.csv",
        "label": "y",
        "favorable_label": 1,
        "features": {"categorical": ["region", "product"], "numeric": ["income"]},
    },
    "protected_attributes": [
        {"column": "gender", "privileged": ["male"], "allowed": ["female", "male"]},
        {"column": "race", "privileged": ["a"], "allowed": ["a", "b", "c", "d"]},
        {"column": "age_band", "privileged": ["30-60"], "allowed": ["<30", "30-60", ">60"]},
    ],
    "subgroups": {"max_attributes": 3},
}


def data(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "gender": rng.choice(["female", "male"], n),
            "race": rng.choice(["a", "b", "c", "d"], n),
            "age_band": rng.choice(["<30", "30-60", ">60"], n),
            "region": rng.choice(["north", "south", "east", "west", "centre"], n),
            "product": rng.choice(["card", "loan", "mortgage", "lease"], n),
            "income": rng.lognormal(10, 0.5, n),
        }
    )
    rate = np.full(n, 0.5)
    hit = (df["gender"] == "female") & (df["age_band"] == ">60") & (df["region"] == "south")
    rate[hit.to_numpy()] -= 0.15
    decisions = (rng.random(n) < rate).astype(int)
    y = (rng.random(n) < 0.5).astype(float)
    return df, decisions, y


def main(sizes: list[int]) -> int:
    from aif360.detectors.mdss_detector import bias_scan

    from fairgate.fairness.subgroups import describe, discover
    from fairgate.policy.loader import parse_policy

    policy = parse_policy(RAW)
    for n in sizes:
        df, decisions, y = data(n)
        tracemalloc.start()
        started = time.perf_counter()
        found = discover(df, decisions, policy, labels=y)
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        print(
            f"{n:>9,} rows: fairgate {took:.2f} s, peak {peak:,.0f} MB traced, {found['tests']} tests, "
            f"{found['discovered']} discovered; first: {describe(found['top'][0])}"
        )
        coded = df.drop(columns=["income"]).assign(income=pd.qcut(df["income"], 4, labels=False).astype(str))
        started = time.perf_counter()
        subset, score = bias_scan(
            data=coded,
            observations=pd.Series(decisions, dtype=float),
            expectations=pd.Series(np.full(n, decisions.mean())),
            overpredicted=True,
            scoring="Bernoulli",
            num_iters=3,
        )
        print(f"{'':>15} aif360 MDSS {time.perf_counter() - started:.2f} s (3 iterations): {subset}, score {score:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main([int(a) for a in sys.argv[1:]] or [100_000, 1_000_000]))
