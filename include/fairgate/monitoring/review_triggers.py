"""Review before harm: which scored decisions a person should look at before they take effect.

The policy's ``review_triggers`` name the rules; a decision that meets any of them is marked
*pending review* in the prediction log and put on the day's review queue:

- ``score_margin``: the score lies within this distance of the decision threshold;
- ``protected_margin``: a wider margin for members of an unprivileged group of any protected
  attribute (a borderline decision about them is reviewed sooner);
- ``outside_training``: a numeric input outside the range the production model was trained on,
  or a category it never saw in training.

At most ``daily_cap`` decisions are queued a day, the most borderline first (closest to the
threshold). What happens to the rest is the policy's ``above_cap``: ``decide`` lets the automatic
decision stand and marks it ``over_cap`` (counted in the audit), ``hold`` queues them too, marked
``over_cap``, so they wait for a reviewer.

Pure: frames in, the per-row status and reasons out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fairgate.groups import group_codes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.policy.schema import Policy

PENDING, OVER_CAP, NONE = "pending", "over_cap", "none"


def training_ranges(training: pd.DataFrame, policy: Policy) -> dict[str, Any]:
    """Each numeric input's [min, max] and each category input's set of values in the training rows."""
    out: dict[str, Any] = {}
    for col in policy.features:
        if col not in training.columns:
            continue
        if col in policy.numeric:
            values = training[col].astype(float)
            out[col] = [float(values.min()), float(values.max())]
        else:
            out[col] = sorted(map(str, training[col].dropna().unique()))
    return out


def reasons(
    records: pd.DataFrame, scores: np.ndarray, policy: Policy, *, ranges: dict[str, Any] | None
) -> list[list[str]]:
    """Why each record triggers review (an empty list: it does not)."""
    import numpy as np

    rules = policy.review_triggers
    distance = np.abs(np.asarray(scores, dtype=float) - policy.model.decision_threshold)
    out: list[list[str]] = [[] for _ in range(len(records))]
    if rules.score_margin is not None:
        for i in np.flatnonzero(distance <= rules.score_margin):
            out[i].append(f"score within {rules.score_margin:g} of the threshold")
    if rules.protected_margin is not None:
        codes = group_codes(records, policy)
        unprivileged = (codes.to_numpy() == 0).any(axis=1)
        wider = (
            unprivileged
            & (distance <= rules.protected_margin)
            & ~(distance <= (rules.score_margin if rules.score_margin is not None else -1))
        )
        for i in np.flatnonzero(wider):
            out[i].append(f"member of an unprivileged group, score within {rules.protected_margin:g} of the threshold")
    if rules.outside_training and ranges:
        for col, seen in ranges.items():
            if col not in records.columns:
                continue
            if col in policy.numeric:
                values = records[col].astype(float).to_numpy()
                outside = (values < seen[0]) | (values > seen[1])
                what = f"{col} outside the training range [{seen[0]:g}, {seen[1]:g}]"
            else:
                outside = ~records[col].astype(str).isin(set(seen)).to_numpy()
                what = f"{col} has a category not seen in training"
            for i in np.flatnonzero(outside):
                out[i].append(what)
    return out


def queue(scores: np.ndarray, triggered: list[list[str]], policy: Policy) -> list[str]:
    """Each record's review status: ``pending`` (queued), ``over_cap`` (above the daily cap) or ``none``."""
    import numpy as np

    rules = policy.review_triggers
    distance = np.abs(np.asarray(scores, dtype=float) - policy.model.decision_threshold)
    flagged = [i for i, r in enumerate(triggered) if r]
    flagged.sort(key=lambda i: (distance[i], i))  # the most borderline first
    status = [NONE] * len(triggered)
    for rank, i in enumerate(flagged):
        status[i] = PENDING if rank < rules.daily_cap else OVER_CAP
    return status
