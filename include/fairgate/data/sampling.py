"""Stratified row samples for the figures that are statistics of many rows, and how to say so.

Above ``sampling.max_rows`` the proxy check, permutation importance and exponentiated
gradient's fit use a sample of the rows instead of all of them: each would otherwise cost
seconds per hundred thousand rows for a figure whose sampling error is already far below what
it is judged on. The sample is stratified (every stratum keeps its share, and at least one
row), drawn with the policy's seed, and every figure measured on it says so in its
``measured_on``. Fairness metrics, the gate's counts and the audit never sample.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def stratified(strata: np.ndarray, limit: int, *, seed: int) -> np.ndarray | None:
    """Sorted positions of about ``limit`` rows, each stratum in proportion; ``None`` when all rows fit.

    Each stratum gets ``round(limit * share)`` rows, at least one, at most all of its own. The
    same ``strata``, ``limit`` and ``seed`` always give the same rows.
    """
    import numpy as np

    n = len(strata)
    if limit <= 0 or n <= limit:
        return None
    rng = np.random.default_rng(seed)
    _values, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    take = np.minimum(counts, np.maximum(1, np.rint(limit * counts / n).astype(int)))
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    chosen = [rng.choice(order[s : s + c], k, replace=False) for s, c, k in zip(starts, counts, take, strict=True)]
    return np.sort(np.concatenate(chosen))


def described(rows: int, of: int, what: str) -> str:
    """``what`` with its row count, and the whole it was sampled from when it is one."""
    if rows >= of:
        return f"{what} ({of} rows)"
    return f"{what} (a stratified sample of {rows} of {of} rows)"
