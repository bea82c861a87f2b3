"""Performance before the outcomes arrive: each group's TPR, FPR and accuracy estimated from the scores.

Confidence-based performance estimation: if a model's scores are calibrated (of the records
scored 0.7, 70 % turn out favourable), a decision's expected contribution to the confusion counts
is its score: a favourable decision adds ``s`` to TP and ``1 − s`` to FP, an unfavourable one
``s`` to FN and ``1 − s`` to TN. Summed over a group these are the group's expected counts, and
the usual rates follow. The estimate is only as good as the calibration, so it comes with each
group's calibration error (expected calibration error over 10 equal-width score bins) measured
where outcomes are known, and is marked unreliable above ``MAX_CALIBRATION_ERROR``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.groups import Comparison
    from fairgate.metrics import Counts

MAX_CALIBRATION_ERROR = 0.05
BINS = 10
RATES = ("true_positive_rate", "false_positive_rate", "accuracy")


def expected_counts(scores: np.ndarray, decisions: np.ndarray) -> Counts:
    """The confusion counts calibrated ``scores`` lead one to expect for ``decisions``."""
    import numpy as np

    from fairgate.metrics import Counts

    s = np.asarray(scores, dtype=float)
    d = np.asarray(decisions) == 1
    return Counts(tp=float(s[d].sum()), fp=float((1 - s[d]).sum()), fn=float(s[~d].sum()), tn=float((1 - s[~d]).sum()))


def rates(c: Counts) -> dict[str, float | None]:
    return {"true_positive_rate": c.tp / c.positives if c.positives else None,
            "false_positive_rate": c.fp / c.negatives if c.negatives else None,
            "accuracy": (c.tp + c.tn) / c.n if c.n else None}


def _difference(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def calibration_error(scores: np.ndarray, outcomes: np.ndarray) -> float | None:
    """Expected calibration error: the row-weighted mean |mean score − favourable share| over score bins."""
    import numpy as np

    s = np.asarray(scores, dtype=float)
    if len(s) == 0:
        return None
    y = np.asarray(outcomes, dtype=float)
    bins = np.minimum((s * BINS).astype(int), BINS - 1)
    n = np.bincount(bins, minlength=BINS)
    gap = np.abs(np.bincount(bins, weights=s, minlength=BINS) - np.bincount(bins, weights=y, minlength=BINS))
    return float(gap.sum() / n.sum())


def calibration_by_group(codes: pd.DataFrame, scores: np.ndarray, outcomes: np.ndarray,
                         comps: list[Comparison]) -> dict[str, dict[str, Any]]:
    """Per comparison and side: the calibration error of ``scores`` against ``outcomes`` (the lifecycle
    measures it on the test split) and whether a label-free estimate may be trusted there."""
    from fairgate.groups import cell_mask

    out: dict[str, dict[str, Any]] = {}
    for comp in comps:
        out[comp.key] = {}
        for side, cell in (("unprivileged", comp.unprivileged), ("privileged", comp.privileged)):
            mask = cell_mask(codes, cell)
            ece = calibration_error(scores[mask], outcomes[mask])
            out[comp.key][side] = {"rows": int(mask.sum()), "calibration_error": ece,
                                   "reliable": ece is not None and ece <= MAX_CALIBRATION_ERROR}
    return out


def per_group(codes: pd.DataFrame, scores: np.ndarray, decisions: np.ndarray, comps: list[Comparison], *,
              outcomes: np.ndarray | None = None,
              deployed: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Per comparison and side: the estimated rates and, where ``outcomes`` are given (NaN = not yet
    arrived), the realised rates of the rows that have them, the estimate's error on those same
    rows, and the calibration error that says whether to trust the estimate. ``deployed`` is the
    model's :func:`calibration_by_group` on its test split: a side calibrated poorly there is
    marked unreliable before any outcome arrives."""
    import numpy as np

    from fairgate.groups import cell_mask
    from fairgate.metrics import Counts

    known = np.zeros(len(scores), dtype=bool) if outcomes is None else ~np.isnan(np.asarray(outcomes, dtype=float))
    out: dict[str, dict[str, Any]] = {}
    for comp in comps:
        sides: dict[str, Any] = {}
        for side, cell in (("unprivileged", comp.unprivileged), ("privileged", comp.privileged)):
            mask = cell_mask(codes, cell)
            pending = mask & ~known
            entry: dict[str, Any] = {"rows": int(mask.sum()), "rows_without_outcome": int(pending.sum()),
                                     "estimated": rates(expected_counts(scores[mask], decisions[mask]))}
            at_test = ((deployed or {}).get(comp.key) or {}).get(side)
            if at_test is not None:
                entry["test_calibration_error"] = at_test["calibration_error"]
                entry["reliable"] = bool(at_test["reliable"])
            done = mask & known
            if done.any():
                assert outcomes is not None
                y = np.asarray(outcomes)[done].astype(int)
                d = np.asarray(decisions)[done] == 1
                real = rates(Counts(tp=float((d & (y == 1)).sum()), fp=float((d & (y == 0)).sum()),
                                    fn=float((~d & (y == 1)).sum()), tn=float((~d & (y == 0)).sum())))
                guess = rates(expected_counts(scores[done], decisions[done]))
                ece = calibration_error(scores[done], y)
                entry.update({"realised": real, "calibration_error": ece,
                              "reliable": entry.get("reliable", True) and ece is not None
                              and ece <= MAX_CALIBRATION_ERROR,
                              "error": {k: _difference(guess[k], real[k]) for k in RATES}})
            sides[side] = entry
        out[comp.key] = sides
    return out
