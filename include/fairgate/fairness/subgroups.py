"""Subgroup discovery: which subgroups, across intersections nobody declared, are treated worst.

The policy's comparisons are the groups a team names. :func:`discover` searches the subgroups
defined by up to ``subgroups.max_attributes`` attributes, at least one of them protected: the
protected attributes' values, their intersections, and each crossed with the policy's
categorical inputs and numeric inputs cut into quartiles. For each subgroup of at least
``subgroups.min_size`` rows (and a rest of as many), it compares the subgroup with the rest of the
rows on the selection rate, and where outcomes are known on the true and false positive rates and
the error rate: the gap (subgroup − rest), its Newcombe interval, and a two-sided two-proportion
z-test. The false discovery rate over every test is controlled by Benjamini–Hochberg at
``subgroups.fdr``; a subgroup is *discovered* when its adjusted p-value is at most that. The
discovered subgroups of protected attributes alone are kept whole (``protected_only``): those are
what the fairness gate judges against the policy's bands (:func:`fairgate.fairness.gate.subgroup_findings`). One
counting pass per attribute pair (``numpy.bincount`` of the pair's joint codes), so the cost is
linear in rows.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.fairness.metrics import newcombe_interval
from fairgate.fairness.multiplicity import adjusted

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.policy.schema import Policy

MAX_LEVELS = 20  # a categorical input with more values than this is left out of the search
TOP = 10  # subgroups reported


class SubgroupFinding(TypedDict):
    subgroup: dict[str, str]  # attribute → value (a quartile is written "[low, high)")
    metric: str  # selection_rate | true_positive_rate | false_positive_rate | error_rate
    rows: int  # the subgroup's rows in the metric's population
    rate: float
    rest_rate: float
    gap: float  # subgroup − rest
    ci_low: float | None
    ci_high: float | None
    p: float
    p_adjusted: float
    discovered: bool


class _Test(TypedDict):
    """One subgroup × metric as counted, before the findings are written."""

    combo: tuple[str, ...]
    cell: int
    sizes: list[int]
    metric: str
    n: int
    k: float
    n_rest: int
    k_rest: float
    p: float
    p_adjusted: float
    gap: float


class Discovery(TypedDict):
    measured_on: str
    attributes: list[str]
    tests: int
    discovered: int
    fdr: float
    top: list[SubgroupFinding]
    # every discovered subgroup of protected attributes alone, what the gate judges (``subgroups.gate``)
    protected_only: list[SubgroupFinding]


def _as_text_codes(s: pd.Series) -> tuple[Any, list[str]]:
    """A column's values as codes of their text, the texts sorted (a missing value reads ``nan``), from
    its distinct values alone: a dictionary-encoded column (a Parquet read) by its categories, any other
    by one hash pass; never one string made per row."""
    import numpy as np
    import pandas as pd

    if isinstance(s.dtype, pd.CategoricalDtype):
        raw, distinct = s.cat.codes.to_numpy(), list(s.cat.categories)
    else:
        raw, uniques = pd.factorize(s, use_na_sentinel=True)
        distinct = list(uniques)
    slot = np.where(raw < 0, 0, raw + 1)  # slot 0: a missing value
    used = np.bincount(slot, minlength=len(distinct) + 1) > 0
    texts = ["nan", *(str(v) for v in distinct)]
    labels = sorted({t for t, u in zip(texts, used, strict=True) if u})
    position = {t: i for i, t in enumerate(labels)}
    lookup = np.array([position.get(t, -1) for t in texts], dtype=np.int64)
    return lookup[slot], labels


def _attributes(df: pd.DataFrame, policy: Policy) -> dict[str, tuple[Any, list[str]]]:
    """Each searched attribute as integer codes per row and the label of each code."""
    import numpy as np
    import pandas as pd

    out: dict[str, tuple[Any, list[str]]] = {}
    columns = [*policy.protected_columns, *policy.categorical, *policy.numeric]
    for col in dict.fromkeys(columns):
        if col not in df.columns:
            continue
        s = df[col]
        if col in policy.numeric and pd.api.types.is_numeric_dtype(s):
            x = s.to_numpy(dtype=float)
            edges = np.unique(np.nanquantile(x, [0.25, 0.5, 0.75])) if np.isfinite(x).any() else np.array([])
            codes = np.searchsorted(edges, x, side="right")
            bounds = [-math.inf, *edges.tolist(), math.inf]
            labels = [f"[{bounds[i]:g}, {bounds[i + 1]:g})" for i in range(len(bounds) - 1)]
        else:
            codes, labels = _as_text_codes(s)
            if len(labels) > MAX_LEVELS or len(labels) < 2:
                continue
        out[col] = (np.asarray(codes, dtype=np.int64), labels)
    return out


def _z_p(k1: Any, n1: Any, k2: Any, n2: Any) -> Any:
    """Two-sided p-values of the pooled two-proportion z-test (1 where the pooled rate is 0 or 1)."""
    import numpy as np

    pooled = (k1 + k2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (k1 / n1 - k2 / n2) / se, 0.0)
    return np.array([math.erfc(abs(v) / math.sqrt(2)) for v in z])


def _counts(table: Any, metric: str) -> tuple[Any, Any]:
    """Per cell, a metric's rows and hits from the (cell, outcome unknown / 0 / 1, decision) table."""
    if metric == "selection_rate":  # every row; hit: a favourable decision
        return table.sum(axis=(1, 2)), table[:, :, 1].sum(axis=1)
    if metric == "true_positive_rate":  # outcome 1; hit: favourable decision
        return table[:, 2, :].sum(axis=1), table[:, 2, 1]
    if metric == "false_positive_rate":  # outcome 0; hit: favourable decision
        return table[:, 1, :].sum(axis=1), table[:, 1, 1]
    # error_rate: a known outcome; hit: the decision differs from it
    return table[:, 1:, :].sum(axis=(1, 2)), table[:, 1, 1] + table[:, 2, 0]


def discover(
    df: pd.DataFrame,
    decisions: np.ndarray,
    policy: Policy,
    *,
    labels: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    measured_on: str = "",
) -> Discovery:
    """The subgroups of ``df`` (with its ``decisions``, and ``labels`` where known: NaN for none) whose
    rates differ most from the rest's, under false-discovery control.

    ``weights``: how many decisions each row stands for, when the rows are counts (the SQL audit's
    ``GROUP BY``); the figures are those of the rows they count.
    """
    import numpy as np

    rules = policy.subgroups
    attrs = _attributes(df, policy)
    pred = np.asarray(decisions, dtype=np.int64)
    # Each row's class: outcome unknown / 0 / 1, times the decision 0 / 1. One grouped count of
    # (subgroup cell, class) per attribute combination gives every metric's counts for every cell at once.
    if labels is None:
        outcome = np.zeros(len(df), dtype=np.int64)
        metrics = ["selection_rate"]
    else:
        y = np.asarray(labels, dtype=float)
        outcome = np.where(np.isnan(y), 0, np.nan_to_num(y).astype(np.int64) + 1)
        metrics = ["selection_rate", "true_positive_rate", "false_positive_rate", "error_rate"]
    row_class = outcome * 2 + pred
    w = None if weights is None else np.asarray(weights, dtype=float)
    rows: list[_Test] = []
    protected = set(policy.protected_columns)
    subsets = [  # each subgroup names at least one protected attribute
        c for k in range(1, rules.max_attributes + 1) for c in itertools.combinations(attrs, k) if protected & set(c)
    ]
    for combo in subsets:
        joint = np.zeros(len(df), dtype=np.int64)
        sizes = []
        for col in combo:
            codes, names = attrs[col]
            joint = joint * len(names) + codes
            sizes.append(len(names))
        cells = math.prod(sizes)
        table = np.bincount(joint * 6 + row_class, weights=w, minlength=cells * 6).astype(float).reshape(cells, 3, 2)
        for metric in metrics:
            n, k = _counts(table, metric)
            n_all, k_all = float(n.sum()), float(k.sum())
            n_rest, k_rest = n_all - n, k_all - k
            ok = (n >= rules.min_size) & (n_rest >= rules.min_size)
            if not ok.any():
                continue
            cell_ids = np.flatnonzero(ok)
            p = _z_p(k[ok], n[ok], k_rest[ok], n_rest[ok])
            for cell, p_value in zip(cell_ids, p, strict=True):
                rows.append(
                    {
                        "combo": combo,
                        "cell": int(cell),
                        "sizes": sizes,
                        "metric": metric,
                        "n": int(n[cell]),
                        "k": float(k[cell]),
                        "n_rest": int(n_rest[cell]),
                        "k_rest": float(k_rest[cell]),
                        "p": float(p_value),
                        "p_adjusted": 1.0,  # set below, over every test
                        "gap": float(k[cell] / n[cell] - k_rest[cell] / n_rest[cell]),
                    }
                )
    for r, a in zip(rows, adjusted([r["p"] for r in rows], "bh"), strict=True):
        r["p_adjusted"] = a
    ranked = sorted(rows, key=lambda r: (r["p_adjusted"], -abs(r["gap"])))
    level = policy.fairness.confidence_level

    def finding(r: _Test) -> SubgroupFinding:
        subgroup, rest = {}, r["cell"]
        for col, size in reversed(list(zip(r["combo"], r["sizes"], strict=True))):
            subgroup[col] = attrs[col][1][rest % size]
            rest //= size
        low, high = newcombe_interval(int(r["k"]), r["n"], int(r["k_rest"]), r["n_rest"], level)
        return {
            "subgroup": dict(reversed(list(subgroup.items()))),
            "metric": r["metric"],
            "rows": r["n"],
            "rate": r["k"] / r["n"],
            "rest_rate": r["k_rest"] / r["n_rest"],
            "gap": r["gap"],
            "ci_low": low,
            "ci_high": high,
            "p": r["p"],
            "p_adjusted": r["p_adjusted"],
            "discovered": r["p_adjusted"] <= rules.fdr,
        }

    return {
        "measured_on": measured_on or f"{len(df)} rows",
        "attributes": list(attrs),
        "tests": len(rows),
        "discovered": sum(r["p_adjusted"] <= rules.fdr for r in rows),
        "fdr": rules.fdr,
        "top": [finding(r) for r in ranked[:TOP]],
        "protected_only": [
            finding(r) for r in ranked if r["p_adjusted"] <= rules.fdr and protected.issuperset(r["combo"])
        ],
    }


def describe(found: SubgroupFinding) -> str:
    """One finding in words: ``gender=female & age=[18, 25): selection_rate 0.21 vs 0.45 for the rest``."""
    who = " & ".join(f"{c}={v}" for c, v in found["subgroup"].items())
    return (
        f"{who}: {found['metric']} {found['rate']:.3f} vs {found['rest_rate']:.3f} for the rest "
        f"(gap {found['gap']:+.3f}, {found['rows']} rows, BH-adjusted p {found['p_adjusted']:.3g})"
    )
