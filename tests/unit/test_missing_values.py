"""Missing feature values are a policy decision (``dataset.missing``), and infinity is never a value.

Checked by hand on a small frame: with ``refuse`` the stage stops naming the column, the count and
the share; with ``impute`` the fitted model holds the training median and most frequent category,
and a record with a gap is scored exactly as the same record with those values filled in.
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.conftest import edited
from tests.unit.test_explain import _tiny_frame, _tiny_policy

from fairgate.errors import InputError
from fairgate.models import training


def _with_gaps():
    df = _tiny_frame()
    df.loc[[3, 50, 70], "income_k"] = np.nan
    df.loc[[5, 9], "job_type"] = None
    return df


def test_refuse_names_the_column_the_count_and_the_share():
    with pytest.raises(InputError, match=r"Column 'income_k' has 3 missing value\(s\) \(0\.15% of the rows\)"):
        training.fit(_with_gaps(), _tiny_policy())


def test_infinity_is_refused_under_either_setting():
    df = _tiny_frame()
    df.loc[11, "tenure"] = np.inf
    for missing in ("refuse", "impute"):
        with pytest.raises(InputError, match=r"Column 'tenure' holds 1 infinite value\(s\)"):
            training.fit(df, edited(_tiny_policy(), {"dataset.missing": missing}))


def test_impute_learns_the_training_median_and_mode_and_scores_a_gap_as_those_values():
    df = _with_gaps()
    policy = edited(_tiny_policy(), {"dataset.missing": "impute"})
    model = training.fit(df, policy)
    median = float(np.nanmedian(df["income_k"]))  # by hand, from the training rows
    mode = df["job_type"].dropna().mode()[0]
    record = df.iloc[[3, 5]].copy()  # one numeric gap, one categorical gap
    filled = record.assign(income_k=record["income_k"].fillna(median), job_type=record["job_type"].fillna(mode))
    gap_scores, _ = training.predict(model, record, policy)
    filled_scores, _ = training.predict(model, filled, policy)
    assert gap_scores == pytest.approx(filled_scores, abs=1e-12)
    # and the stored model loads back through the trusted types
    again = training.load_model_bytes(
        (data := training.dump_model(model)), expected_sha256=__import__("hashlib").sha256(data).hexdigest()
    )
    assert training.predict(again, record, policy)[0] == pytest.approx(gap_scores)
