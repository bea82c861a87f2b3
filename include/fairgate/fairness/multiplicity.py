"""Many comparisons at once: a p-value for "this metric has left its bound", and Holm's and
Benjamini–Hochberg's adjustments over all of a night's tests.

The nightly audit tests every comparison × metric. Alerting whenever an estimate lies outside
its bound alarms about half the nights for a metric that sits on its bound, and more the more
comparisons a policy names. Here each test's null hypothesis is that the metric lies within its
bound; the least favourable point of that null is the nearest edge, so the one-sided p-value is

    p = 1 − Φ(d / se)

with ``d`` how far the estimate lies beyond the nearest edge (negative inside) and ``se`` the
standard error read off the metric's own confidence interval (its half-width over z; for a
ratio, on the log scale, where the ratio's interval is close to symmetric). The intervals are
Wilson / Newcombe / Katz intervals, close to but not exactly symmetric, so ``se`` is an
approximation, and so is ``p``. Holm's step-down adjustment controls the family-wise error rate
(the chance of any false alarm on a night); Benjamini–Hochberg's the false discovery rate.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from fairgate.fairness.metrics import _z

if TYPE_CHECKING:
    from fairgate.policy.schema import Threshold

Correction = Literal["none", "holm", "bh"]


def exceedance_p(t: Threshold, value: float, low: float, high: float, confidence: float) -> float | None:
    """The one-sided p-value that ``t``'s metric has left its bound, from its estimate and interval;
    None when it cannot be computed (a ratio at or below 0, an interval of no width around an edge)."""
    lo_b, hi_b = t.band
    z = _z(confidence)
    if t.kind == "ratio_band":
        if min(value, low, high, lo_b, hi_b) <= 0:
            return None
        est, se, edges = math.log(value), (math.log(high) - math.log(low)) / (2 * z), (math.log(lo_b), math.log(hi_b))
    else:
        est, se, edges = value, (high - low) / (2 * z), (lo_b, hi_b)
    beyond = max(edges[0] - est, est - edges[1])  # > 0: outside the bound
    if se <= 0:
        return 0.0 if beyond > 0 else 1.0
    return 0.5 * math.erfc(beyond / se / math.sqrt(2))


def adjusted(p: list[float], rule: Correction) -> list[float]:
    """Each p-value adjusted for the family ``p`` (same order): Holm's step-down, or Benjamini–Hochberg's
    step-up; ``none`` leaves them as they are."""
    m = len(p)
    if rule == "none" or m == 0:
        return list(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    if rule == "holm":
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p[i]))
            out[i] = running
        return out
    running = 1.0
    for rank in range(m - 1, -1, -1):  # Benjamini–Hochberg, from the largest p down
        i = order[rank]
        running = min(running, m * p[i] / (rank + 1))
        out[i] = min(1.0, running)
    return out
