"""Time Fairgate's counts-based group metrics against AIF360 and fairlearn on the same predictions.

    .venv/bin/python benchmarks/group_metrics.py [--rows 100000 1000000] [--groups 2 8]

For each size, every non-reference group is compared with group 0 (SPD, DI, EOD, AOD). Each
library gets the same arrays; AIF360's time includes building its datasets, as a user would
have to. The results are checked equal before any time is reported. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import pandas as pd


def make(rows: int, groups: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, rows)
    y = (rng.random(rows) < 0.2 + 0.05 * (g % 3)).astype(np.int8)
    yhat = np.where(rng.random(rows) < 0.85, y, 1 - y).astype(np.int8)
    return g, y, yhat


def fairgate(g, y, yhat, groups):
    from fairgate.fairness.metrics import confusion_counts, counts_from_row, disparities

    table = confusion_counts(y, yhat, g, groups)
    ref = counts_from_row(table[0])
    return {k: {m: e.value for m, e in disparities(counts_from_row(table[k]), ref).items()} for k in range(1, groups)}


def aif360(g, y, yhat, groups):
    from fairgate.fairness.aif360_adapter import _quiet_imports, binary_label_dataset

    with _quiet_imports():
        from aif360.metrics import ClassificationMetric

    codes = pd.DataFrame({"g": g})
    truth = binary_label_dataset(codes, y)
    pred = truth.copy(deepcopy=True)
    pred.labels[:, 0] = yhat
    out = {}
    for k in range(1, groups):
        m = ClassificationMetric(truth, pred, unprivileged_groups=[{"g": k}], privileged_groups=[{"g": 0}])
        out[k] = {
            "statistical_parity_difference": m.statistical_parity_difference(),
            "disparate_impact": m.disparate_impact(),
            "equal_opportunity_difference": m.equal_opportunity_difference(),
            "average_odds_difference": m.average_odds_difference(),
        }
    return out


def fairlearn(g, y, yhat, groups):
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

    bg = MetricFrame(
        metrics={"sel": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y,
        y_pred=yhat,
        sensitive_features=g,
    ).by_group
    r = bg.loc[0]
    return {
        k: {
            "statistical_parity_difference": bg.loc[k, "sel"] - r["sel"],
            "disparate_impact": bg.loc[k, "sel"] / r["sel"],
            "equal_opportunity_difference": bg.loc[k, "tpr"] - r["tpr"],
            "average_odds_difference": 0.5 * ((bg.loc[k, "fpr"] - r["fpr"]) + (bg.loc[k, "tpr"] - r["tpr"])),
        }
        for k in range(1, groups)
    }


def timed(fn, *args, repeat: int = 3):
    """Best wall time of ``repeat`` untraced calls."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t)
    return best, out


def peak_mb(fn, *args) -> float:
    """Peak memory one call allocates on top of what exists (tracemalloc sees numpy's buffers too)."""
    import tracemalloc

    tracemalloc.start()
    fn(*args)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def max_diff(a, b):
    return max(
        abs(a[k][m] - b[k][m])
        for k in a
        for m in (
            "statistical_parity_difference",
            "disparate_impact",
            "equal_opportunity_difference",
            "average_odds_difference",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--groups", type=int, nargs="+", default=[2, 8])
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(
        f"{'rows':>10} {'groups':>6} {'fairgate_s':>11} {'aif360_s':>9} {'fairlearn_s':>11} "
        f"{'vs_aif360':>9} {'fairgate_MB':>11} {'aif360_MB':>9} {'max_abs_diff':>12}"
    )
    last = {}
    for fn in (fairgate, aif360, fairlearn):  # imports are not part of the timings
        fn(*make(1000, 2), 2)
    for rows in args.rows:
        for groups in args.groups:
            data = make(rows, groups)
            t_fg, ours = timed(fairgate, *data, groups)
            t_aif, ref = timed(aif360, *data, groups, repeat=1)
            t_fl, ref2 = timed(fairlearn, *data, groups, repeat=1)
            mem_fg, mem_aif = peak_mb(fairgate, *data, groups), peak_mb(aif360, *data, groups)
            diff = max(max_diff(ours, ref), max_diff(ours, ref2))
            assert diff < 1e-9, f"results differ by {diff}"
            print(
                f"{rows:>10} {groups:>6} {t_fg:>11.4f} {t_aif:>9.3f} {t_fl:>11.3f} {t_aif / t_fg:>8.0f}x "
                f"{mem_fg:>11.1f} {mem_aif:>9.1f} {diff:>12.2e}",
                flush=True,
            )
            last = {
                "rows": rows,
                "groups": groups,
                "fairgate_s": round(t_fg, 5),
                "aif360_s": round(t_aif, 4),
                "fairlearn_s": round(t_fl, 4),
                "speedup": round(t_aif / t_fg, 1),
                "peak_mb": round(mem_fg, 1),
                "aif360_peak_mb": round(mem_aif, 1),
                "max_abs_diff": diff,
            }
    print(json.dumps(last))


if __name__ == "__main__":
    main()
