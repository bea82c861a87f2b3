"""SIMULATED incoming data for the embedded demo, built from the Adult *test* file.

A real deployment points ``audit.incoming`` at its own data (a folder of ``date=YYYY-MM-DD``
partitions). The simulation exists so a user can watch the audit catch a real change; it never
touches the training file. Each day's batch is a deterministic function of the date, the
scenario and the seed, so re-running a day reproduces it exactly.

Scenarios (the "unprivileged" rows are those outside every privileged group of the policy's
first protected attribute — women, for Adult):

- ``stable``: a uniform random sample of the test file.
- ``group_mix_shift``: 70% of each batch comes from the unprivileged group (about a third in
  the training data), so the group mix drifts.
- ``label_shift``: outcomes change for the unprivileged group after the model was trained:
  30% of its unfavorable outcomes become favorable. Inputs look unchanged, but the model now
  misses many of that group's positives (equal opportunity degrades once labels arrive).
- ``proxy_drift``: half of the unprivileged rows report ``relationship = Husband`` and
  ``marital_status = Married-civ-spouse`` (a proxy feature shifts), which moves both the
  feature distribution and the model's selection rate for that group.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from fairgate.data.adult import read_adult
from fairgate.errors import DataError
from fairgate.groups import privileged_codes
from fairgate.policy.schema import SCENARIOS

if TYPE_CHECKING:
    import pandas as pd

    from fairgate.policy.schema import Policy

EPOCH = date(2026, 1, 1)


def day_batch(day: date, policy: Policy, *, scenario: str = "stable", rows: int = 600) -> pd.DataFrame:
    """The simulated records that arrive on ``day``, with their (later-arriving) outcomes."""
    import numpy as np

    if scenario not in SCENARIOS:
        raise DataError(f"Unknown scenario {scenario!r}; expected one of {list(SCENARIOS)}.")
    pool = read_adult("test")
    rng = np.random.default_rng([policy.model.seed, (day - EPOCH).days, SCENARIOS.index(scenario)])
    first = policy.protected_attributes[0]
    unpriv = privileged_codes(pool, first) == 0
    if scenario == "group_mix_shift":
        n_u = int(rows * 0.7)
        idx = np.concatenate(
            [
                rng.choice(np.flatnonzero(unpriv), n_u, replace=False),
                rng.choice(np.flatnonzero(~unpriv), rows - n_u, replace=False),
            ]
        )
    else:
        idx = rng.choice(len(pool), rows, replace=False)
    batch = pool.iloc[np.sort(idx)].reset_index(drop=True)
    u = privileged_codes(batch, first) == 0
    if scenario == "label_shift":
        flip = (
            u
            & (batch[policy.dataset.label] != policy.dataset.favorable_label).to_numpy()
            & (rng.random(len(batch)) < 0.3)
        )
        batch.loc[flip, policy.dataset.label] = policy.dataset.favorable_label
    elif scenario == "proxy_drift":
        move = u & (rng.random(len(batch)) < 0.5)
        batch.loc[move, "relationship"] = "Husband"
        batch.loc[move, "marital_status"] = "Married-civ-spouse"
    if policy.dataset.row_key:
        batch[policy.dataset.row_key] = [f"{day.isoformat()}/{k}" for k in batch[policy.dataset.row_key]]
    return batch
