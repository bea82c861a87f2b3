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

from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

from fairgate.fairness.metrics import Counts, Sides, cell_ids, cells_covered
from fairgate.groups import cell_mask

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.fairness.metrics import Counts
    from fairgate.groups import Comparison

MAX_CALIBRATION_ERROR = 0.05
BINS = 10
RATES = ("true_positive_rate", "false_positive_rate", "accuracy")


class SideCalibration(TypedDict):
    """One side's calibration on the test split: what the deployment manifest keeps for the audit."""

    rows: int
    calibration_error: float | None
    reliable: bool


class SideEstimate(TypedDict):
    """One side's estimated rates in an audit window and, once outcomes arrived, how far off they were."""

    rows: int
    rows_without_outcome: int
    estimated: dict[str, float | None]
    test_calibration_error: NotRequired[float | None]
    reliable: NotRequired[bool]
    realised: NotRequired[dict[str, float | None]]
    calibration_error: NotRequired[float]
    error: NotRequired[dict[str, float | None]]


Calibration = dict[str, Sides[SideCalibration]]  # per comparison key


def expected_counts(scores: np.ndarray, decisions: np.ndarray) -> Counts:
    """The confusion counts calibrated ``scores`` lead one to expect for ``decisions``."""
    import numpy as np

    s = np.asarray(scores, dtype=float)
    d = np.asarray(decisions) == 1
    return Counts(tp=float(s[d].sum()), fp=float((1 - s[d]).sum()), fn=float(s[~d].sum()), tn=float((1 - s[~d]).sum()))


def rates(c: Counts) -> dict[str, float | None]:
    return {
        "true_positive_rate": c.tp / c.positives if c.positives else None,
        "false_positive_rate": c.fp / c.negatives if c.negatives else None,
        "accuracy": (c.tp + c.tn) / c.n if c.n else None,
    }


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


def calibration_by_group(
    codes: pd.DataFrame, scores: np.ndarray, outcomes: np.ndarray, comps: list[Comparison]
) -> Calibration:
    """Per comparison and side: the calibration error of ``scores`` against ``outcomes`` (the lifecycle
    measures it on the test split) and whether a label-free estimate may be trusted there."""

    def side(cell: tuple[tuple[str, int], ...]) -> SideCalibration:
        mask = cell_mask(codes, cell)
        ece = calibration_error(scores[mask], outcomes[mask])
        return {
            "rows": int(mask.sum()),
            "calibration_error": ece,
            "reliable": ece is not None and ece <= MAX_CALIBRATION_ERROR,
        }

    return {comp.key: {"unprivileged": side(comp.unprivileged), "privileged": side(comp.privileged)} for comp in comps}


def per_group(
    codes: pd.DataFrame,
    scores: np.ndarray,
    decisions: np.ndarray,
    comps: list[Comparison],
    *,
    outcomes: np.ndarray | None = None,
    deployed: Calibration | None = None,
    weights: np.ndarray | None = None,
    score_bins: np.ndarray | None = None,
) -> dict[str, Sides[SideEstimate]]:
    """Per comparison and side: the estimated rates and, where ``outcomes`` are given (NaN = not yet
    arrived), the realised rates of the rows that have them, the estimate's error on those same
    rows, and the calibration error that says whether to trust the estimate. ``deployed`` is the
    model's :func:`calibration_by_group` on its test split: a side calibrated poorly there is
    marked unreliable before any outcome arrives.

    One pass over the rows: sums per joint group cell (and per score bin), then each side as the
    sum of the cells it covers, as :func:`fairgate.fairness.metrics.measure` does with its counts. Rows may
    be aggregates (the SQL audit's): ``weights`` rows each, ``scores`` their mean score, and
    ``score_bins`` the score bin they were grouped by; only sums are taken, so the result is the
    same as from the rows themselves.
    """
    import numpy as np

    columns = list(codes.columns)
    cells = 2 ** len(columns)
    cell = cell_ids(codes)
    s = np.asarray(scores, dtype=float)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=float)
    d = (np.asarray(decisions) == 1).astype(float)
    y_raw = np.full(len(s), np.nan) if outcomes is None else np.asarray(outcomes, dtype=float)
    known = ~np.isnan(y_raw)
    y = np.where(known, y_raw, 0.0)
    # Per (cell, outcome arrived, decision, outcome): row counts and score sums, in two bincounts.
    slot = ((cell * 2 + known) * 2 + d.astype(np.int64)) * 2 + y.astype(np.int64)
    n = np.bincount(slot, weights=w, minlength=cells * 8).reshape(cells, 2, 2, 2)
    score = np.bincount(slot, weights=s * w, minlength=cells * 8).reshape(cells, 2, 2, 2)
    n_d, s_d = n.sum(axis=3), score.sum(axis=3)  # (cell, arrived, decision)
    sums = np.stack(
        [
            s_d[..., 1],
            n_d[..., 1] - s_d[..., 1],
            s_d[..., 0],
            n_d[..., 0] - s_d[..., 0],
            n_d.sum(axis=2),
            n[..., 1, 1],
            n[..., 1, 0],
            n[..., 0, 1],
            n[..., 0, 0],
        ],
        axis=2,
    )
    bins = cell * BINS + (
        np.minimum((s * BINS).astype(int), BINS - 1) if score_bins is None else np.asarray(score_bins, dtype=np.int64)
    )
    by_bin = np.stack(
        [np.bincount(bins[known], weights=v[known], minlength=cells * BINS) for v in (w, s * w, y * w)], axis=1
    ).reshape(cells, BINS, 3)

    def counts(v: np.ndarray) -> Counts:
        return Counts(tp=float(v[0]), fp=float(v[1]), fn=float(v[2]), tn=float(v[3]))

    def side(key: str, name: Literal["unprivileged", "privileged"], spec: tuple[tuple[str, int], ...]) -> SideEstimate:
        covered = cells_covered(spec, columns)
        every, done = sums[covered].sum(axis=(0, 1)), sums[covered, 1].sum(axis=0)
        entry: SideEstimate = {
            "rows": round(every[4]),
            "rows_without_outcome": round(every[4] - done[4]),
            "estimated": rates(counts(every[:4])),
        }
        at_test = (deployed or {}).get(key)
        if at_test is not None:
            entry["test_calibration_error"] = at_test[name]["calibration_error"]
            entry["reliable"] = bool(at_test[name]["reliable"])
        if done[4] > 0:
            real, guess = rates(counts(done[5:9])), rates(counts(done[:4]))
            b = by_bin[covered].sum(axis=0)
            ece = float(np.abs(b[:, 1] - b[:, 2]).sum() / b[:, 0].sum())
            entry["realised"] = real
            entry["calibration_error"] = ece
            entry["reliable"] = entry.get("reliable", True) and ece <= MAX_CALIBRATION_ERROR
            entry["error"] = {k: _difference(guess[k], real[k]) for k in RATES}
        return entry

    return {
        comp.key: {
            "unprivileged": side(comp.key, "unprivileged", comp.unprivileged),
            "privileged": side(comp.key, "privileged", comp.privileged),
        }
        for comp in comps
    }
