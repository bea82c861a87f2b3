"""Group fairness metrics computed from per-group confusion counts.

All metrics come from four counts per group (TP, FP, FN, TN), produced in one vectorised pass
(:func:`confusion_counts`). Counts from separate partitions add up exactly, and confidence
intervals are closed-form functions of the counts, so nothing is recomputed row by row.

Definitions, for an unprivileged group ``u`` and a privileged group ``p``:

- selection rate ``P(ŷ=1)``; base rate ``P(y=1)``; TPR ``TP/(TP+FN)``; FPR ``FP/(FP+TN)``
- statistical parity difference  ``SPD = P(ŷ=1|u) − P(ŷ=1|p)``
- disparate impact               ``DI  = P(ŷ=1|u) / P(ŷ=1|p)``
- equal opportunity difference   ``EOD = TPR_u − TPR_p``
- average odds difference        ``AOD = ½[(FPR_u − FPR_p) + (TPR_u − TPR_p)]``
- false positive / negative rate differences ``FPR_u − FPR_p``, ``FNR_u − FNR_p``

On training data (no predictions) pass ``y_pred = y_true``: SPD and DI become differences of
base rates. Intervals: Wilson for rates, Newcombe's hybrid score interval for differences,
the Katz log interval for DI, and MOVER (Zou & Donner) for the AOD sum.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Generic, TypedDict, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.groups import Comparison


class Interval(TypedDict):
    """A figure with its confidence interval, JSON-safe (None where it is not defined)."""

    value: float | None
    ci_low: float | None
    ci_high: float | None


T = TypeVar("T")


class Sides(TypedDict, Generic[T]):
    """One figure per side of a comparison."""

    unprivileged: T
    privileged: T


def both_sides(s: Sides[T]) -> tuple[tuple[str, T], tuple[str, T]]:
    """``(side, figure)`` for the unprivileged then the privileged side."""
    return ("unprivileged", s["unprivileged"]), ("privileged", s["privileged"])


class GroupFigures(TypedDict):
    """What :func:`measure` gives for one comparison: counts, rates and disparities with intervals."""

    counts: Sides[dict[str, float | None]]
    rates: Sides[dict[str, Interval]]
    metrics: dict[str, Interval]


@dataclass(frozen=True)
class Counts:
    """Confusion counts of one group (floats, so weighted counts fit too)."""

    tp: float
    fp: float
    fn: float
    tn: float

    @property
    def n(self) -> float:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def selected(self) -> float:
        return self.tp + self.fp

    @property
    def positives(self) -> float:
        return self.tp + self.fn

    @property
    def negatives(self) -> float:
        return self.fp + self.tn

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    def as_dict(self) -> dict[str, float | None]:
        d = asdict(self)
        d.update(n=self.n, selected=self.selected, positives=self.positives)
        return {k: _clean(v) for k, v in d.items()}


def confusion_counts(
    y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray, n_groups: int, *, weights: np.ndarray | None = None
) -> np.ndarray:
    """Counts per group in one pass: an array ``(n_groups, 4)`` of ``[TN, FP, FN, TP]``.

    ``y_true`` and ``y_pred`` hold 0/1, ``group`` integer codes in ``[0, n_groups)``.
    """
    import numpy as np

    idx = group.astype(np.int64) * 4 + y_true.astype(np.int64) * 2 + y_pred.astype(np.int64)
    return np.bincount(idx, weights=weights, minlength=n_groups * 4).reshape(n_groups, 4)


def counts_from_row(row: np.ndarray) -> Counts:
    tn, fp, fn, tp = (float(v) for v in row)
    return Counts(tp=tp, fp=fp, fn=fn, tn=tn)


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def _clean(x: float) -> float | None:
    """JSON-safe float: NaN/inf become None (and are treated as missing evidence downstream)."""
    return float(x) if x is not None and math.isfinite(x) else None


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when ``n`` is 0."""
    if n <= 0:
        return math.nan, math.nan
    z = _z(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(x1: float, n1: float, x2: float, n2: float, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (method 10) for ``x1/n1 − x2/n2``."""
    if n1 <= 0 or n2 <= 0:
        return math.nan, math.nan
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson_interval(x1, n1, confidence)
    l2, u2 = wilson_interval(x2, n2, confidence)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def ratio_interval(x1: float, n1: float, x2: float, n2: float, confidence: float = 0.95) -> tuple[float, float]:
    """Katz log interval for the risk ratio ``(x1/n1) / (x2/n2)``; undefined with a zero count."""
    if min(x1, x2, n1, n2) <= 0:
        return math.nan, math.nan
    r = (x1 / n1) / (x2 / n2)
    se = math.sqrt(max(1 / x1 - 1 / n1 + 1 / x2 - 1 / n2, 0.0))
    z = _z(confidence)
    return r * math.exp(-z * se), r * math.exp(z * se)


def _mover_sum(t1: float, ci1: tuple[float, float], t2: float, ci2: tuple[float, float]) -> tuple[float, float]:
    """MOVER interval for ``t1 + t2`` from the intervals of each (independent) term."""
    s = t1 + t2
    return (
        s - math.sqrt((t1 - ci1[0]) ** 2 + (t2 - ci2[0]) ** 2),
        s + math.sqrt((ci1[1] - t1) ** 2 + (ci2[1] - t2) ** 2),
    )


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> Interval:
        return {"value": _clean(self.value), "ci_low": _clean(self.low), "ci_high": _clean(self.high)}

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.value, self.low, self.high))


def group_rates(c: Counts, confidence: float = 0.95) -> dict[str, Interval]:
    """Selection rate, base rate, TPR, FPR and accuracy of one group, each with its Wilson interval."""
    pairs = {
        "selection_rate": (c.selected, c.n),
        "base_rate": (c.positives, c.n),
        "true_positive_rate": (c.tp, c.positives),
        "false_positive_rate": (c.fp, c.negatives),
        "accuracy": (c.tp + c.tn, c.n),
    }
    return {
        name: Estimate(_ratio(x, n), *wilson_interval(x, n, confidence)).as_dict() for name, (x, n) in pairs.items()
    }


def disparities(u: Counts, p: Counts, confidence: float = 0.95) -> dict[str, Estimate]:
    """Every disparity between unprivileged ``u`` and privileged ``p``, with intervals."""
    sel_u, sel_p = _ratio(u.selected, u.n), _ratio(p.selected, p.n)
    tpr_u, tpr_p = _ratio(u.tp, u.positives), _ratio(p.tp, p.positives)
    fpr_u, fpr_p = _ratio(u.fp, u.negatives), _ratio(p.fp, p.negatives)
    fnr_u, fnr_p = _ratio(u.fn, u.positives), _ratio(p.fn, p.positives)

    eod_ci = newcombe_interval(u.tp, u.positives, p.tp, p.positives, confidence)
    fpr_ci = newcombe_interval(u.fp, u.negatives, p.fp, p.negatives, confidence)
    aod_low, aod_high = _mover_sum(fpr_u - fpr_p, fpr_ci, tpr_u - tpr_p, eod_ci)
    return {
        "disparate_impact": Estimate(
            _ratio(sel_u, sel_p) if sel_p else math.nan, *ratio_interval(u.selected, u.n, p.selected, p.n, confidence)
        ),
        "statistical_parity_difference": Estimate(
            sel_u - sel_p, *newcombe_interval(u.selected, u.n, p.selected, p.n, confidence)
        ),
        "equal_opportunity_difference": Estimate(tpr_u - tpr_p, *eod_ci),
        "average_odds_difference": Estimate(0.5 * ((fpr_u - fpr_p) + (tpr_u - tpr_p)), 0.5 * aod_low, 0.5 * aod_high),
        "false_positive_rate_difference": Estimate(fpr_u - fpr_p, *fpr_ci),
        "false_negative_rate_difference": Estimate(
            fnr_u - fnr_p, *newcombe_interval(u.fn, u.positives, p.fn, p.positives, confidence)
        ),
    }


def compare_groups(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    codes_u: np.ndarray,
    codes_p: np.ndarray,
    *,
    confidence: float = 0.95,
    weights: np.ndarray | None = None,
) -> GroupFigures:
    """Counts, rates and disparities for the rows in mask ``codes_u`` against mask ``codes_p``.

    Rows in neither mask are ignored (they belong to other intersection cells).
    """
    import numpy as np

    group = np.full(len(y_true), 2, dtype=np.int64)
    group[codes_p] = 1
    group[codes_u] = 0
    table = confusion_counts(y_true, y_pred, group, 3, weights=weights)
    u, p = counts_from_row(table[0]), counts_from_row(table[1])
    return {
        "counts": {"unprivileged": u.as_dict(), "privileged": p.as_dict()},
        "rates": {"unprivileged": group_rates(u, confidence), "privileged": group_rates(p, confidence)},
        "metrics": {k: v.as_dict() for k, v in disparities(u, p, confidence).items()},
    }


def cell_ids(df_codes: pd.DataFrame) -> np.ndarray:
    """Each row's joint group cell: bit ``i`` is its 0/1 code on the ``i``-th protected attribute."""
    import numpy as np

    cell = np.zeros(len(df_codes), dtype=np.int64)
    for bit, col in enumerate(df_codes.columns):
        cell |= df_codes[col].to_numpy().astype(np.int64) << bit
    return cell


def cells_covered(spec: tuple[tuple[str, int], ...], columns: list[str]) -> np.ndarray:
    """Which of the ``2^k`` cells a group (attribute codes it fixes) covers."""
    import numpy as np

    ids = np.arange(2 ** len(columns))
    covered = np.ones(len(ids), dtype=bool)
    for col, value in spec:
        covered &= ((ids >> columns.index(col)) & 1) == value
    return covered


def measure(
    df_codes: pd.DataFrame,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    comps: list[Comparison],
    *,
    confidence: float = 0.95,
    weights: np.ndarray | None = None,
) -> dict[str, GroupFigures]:
    """:func:`compare_groups` for every comparison, keyed by comparison key (JSON-safe).

    One counting pass: the confusion counts of each joint cell of the protected attributes (2^k
    cells), then each comparison's two sides as sums of the cells they cover.

    Parameters
    ----------
    df_codes
        One 0/1 column per protected attribute, 1 = privileged (:func:`fairgate.groups.group_codes`).
    y_true, y_pred
        The outcomes and the decisions, 1 = favourable.
    comps
        The comparisons to measure (:func:`fairgate.groups.comparisons`).
    confidence
        The level of every interval.
    weights
        Row weights (e.g. reweighing's), or None for counts.

    Returns
    -------
    dict
        Per comparison key: each side's confusion counts and rates, and every disparity metric
        with its value and interval (``value``, ``ci_low``, ``ci_high``).
    """
    columns = list(df_codes.columns)
    table = confusion_counts(y_true, y_pred, cell_ids(df_codes), 2 ** len(columns), weights=weights)

    def side(spec: tuple[tuple[str, int], ...]) -> Counts:
        return counts_from_row(table[cells_covered(spec, columns)].sum(axis=0))

    out: dict[str, GroupFigures] = {}
    for comp in comps:
        u, p = side(comp.unprivileged), side(comp.privileged)
        out[comp.key] = {
            "counts": {"unprivileged": u.as_dict(), "privileged": p.as_dict()},
            "rates": {"unprivileged": group_rates(u, confidence), "privileged": group_rates(p, confidence)},
            "metrics": {k: v.as_dict() for k, v in disparities(u, p, confidence).items()},
        }
    return out


# --- measures of the scores: ranking and calibration per group -------------------------------------

SCORE_METRICS = ("roc_auc_difference", "calibration_difference")


def rank_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic: (rank sum of positives - n1(n1+1)/2) / (n1 n0), ties averaged.

    Equal to ``sklearn.metrics.roc_auc_score`` for 0/1 labels of both classes, without its input
    checks, which cost more than the ranking when it is called hundreds of times.
    """
    from scipy.stats import rankdata

    positives = y == 1
    n1 = int(positives.sum())
    n0 = len(y) - n1
    return float((rankdata(scores)[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def sorted_rank_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """:func:`rank_auc` of rows already in ascending score order: each run of equal scores gets the average
    of its ranks without sorting again (the rank sums are sums of halves, exact in float64, so the result
    is :func:`rank_auc`'s to the last bit)."""
    import numpy as np

    n = len(scores)
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]]) if n else np.array([], dtype=np.int64)
    ends = np.r_[starts[1:], n]
    ranks = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    positives = y == 1
    n1 = int(positives.sum())
    n0 = n - n1
    return float((ranks[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_interval(auc: float, positives: int, negatives: int, *, confidence: float) -> list[float]:
    """Hanley & McNeil's (1982) normal interval for a ROC AUC from ``positives`` and ``negatives`` rows.

    SE² = [A(1-A) + (n₁-1)(Q₁-A²) + (n₀-1)(Q₂-A²)] / (n₁n₀), with Q₁ = A/(2-A) and Q₂ = 2A²/(1+A);
    the interval is A ± z·SE, clipped to [0, 1].
    """
    from scipy.stats import norm

    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    half = float(norm.ppf(0.5 + confidence / 2)) * max(var, 0.0) ** 0.5
    return [max(0.0, auc - half), min(1.0, auc + half)]


class ScoreSide(TypedDict):
    rows: int
    roc_auc: float | None  # None: one outcome class only
    roc_auc_interval: list[float] | None
    observed_rate: float | None  # share of favourable outcomes
    mean_score: float | None
    calibration_in_the_large: float | None  # observed_rate - mean_score


class ScoreFigures(TypedDict):
    sides: Sides[ScoreSide]
    metrics: dict[str, Interval]


def _score_side(
    y: np.ndarray, s: np.ndarray, confidence: float, in_order: tuple[np.ndarray, np.ndarray]
) -> tuple[ScoreSide, float, float]:
    """One side's AUC (with interval) and calibration in the large, and that one's standard error;
    ``in_order``: the side's outcomes and scores in ascending score order, for the AUC."""
    import numpy as np

    n, positives = len(y), int((y == 1).sum())
    auc = sorted_rank_auc(*in_order) if 0 < positives < n else None
    residual = y - s
    citl = float(residual.mean()) if n else None
    se = float(residual.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    side: ScoreSide = {
        "rows": n,
        "roc_auc": auc,
        "roc_auc_interval": auc_interval(auc, positives, n - positives, confidence=confidence)
        if auc is not None
        else None,
        "observed_rate": float(y.mean()) if n else None,
        "mean_score": float(np.mean(s)) if n else None,
        "calibration_in_the_large": citl,
    }
    return side, citl if citl is not None else math.nan, se


def score_disparities(
    df_codes: pd.DataFrame, y_true: np.ndarray, scores: np.ndarray, comps: list[Comparison], *, confidence: float
) -> dict[str, ScoreFigures]:
    """Per comparison: how well the scores rank and how well they are calibrated on each side, and two
    gateable disparities with intervals (the unprivileged side minus the privileged one):

    - ``roc_auc_difference`` = AUC_u − AUC_p; each AUC is the Mann–Whitney statistic with Hanley &
      McNeil's interval, the difference's interval is MOVER's from the two (independent sides).
    - ``calibration_difference`` = CITL_u − CITL_p, where a side's calibration in the large is its
      observed favourable rate minus its mean score (positive: the model underrates the side); the
      interval is Wald's, each side's standard error the residuals' standard deviation over √n.

    A side with one outcome class has no AUC; a side with fewer than two rows no calibration
    interval: those metrics are None, which the gate treats as insufficient evidence.
    """
    import numpy as np

    y = np.asarray(y_true, dtype=float)
    s = np.asarray(scores, dtype=float)
    z = _z(confidence)
    cell, columns = cell_ids(df_codes), list(df_codes.columns)
    order = np.argsort(s, kind="stable")  # one sort: every side's rows come out of it already in order
    y_in_order, s_in_order, cell_in_order = y[order], s[order], cell[order]
    out: dict[str, ScoreFigures] = {}
    for comp in comps:
        sides = []
        for side in (comp.unprivileged, comp.privileged):
            covered = cells_covered(side, columns)
            m, m_in_order = covered[cell], covered[cell_in_order]
            sides.append(_score_side(y[m], s[m], confidence, (y_in_order[m_in_order], s_in_order[m_in_order])))
        (u, citl_u, se_u), (p, citl_p, se_p) = sides
        metrics: dict[str, Interval] = {}
        if u["roc_auc"] is not None and p["roc_auc"] is not None and u["roc_auc_interval"] and p["roc_auc_interval"]:
            a_u, a_p = u["roc_auc"], p["roc_auc"]
            (lo_u, hi_u), (lo_p, hi_p) = u["roc_auc_interval"], p["roc_auc_interval"]
            low, high = _mover_sum(a_u, (lo_u, hi_u), -a_p, (-hi_p, -lo_p))
            metrics["roc_auc_difference"] = Estimate(a_u - a_p, low, high).as_dict()
        else:
            metrics["roc_auc_difference"] = {"value": None, "ci_low": None, "ci_high": None}
        diff, se = citl_u - citl_p, math.sqrt(se_u**2 + se_p**2)
        metrics["calibration_difference"] = (
            Estimate(diff, diff - z * se, diff + z * se).as_dict()
            if math.isfinite(se)
            else {"value": None, "ci_low": None, "ci_high": None}
        )
        out[comp.key] = {"sides": {"unprivileged": u, "privileged": p}, "metrics": metrics}
    return out
