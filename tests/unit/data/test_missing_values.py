"""Missing feature values are a policy decision (``dataset.missing``), and infinity is never a value.

Checked by hand on a small frame: with ``refuse`` the stage stops naming the column, the count and
the share; with ``impute`` the fitted model holds the training median and most frequent category,
and a record with a gap is scored exactly as the same record with those values filled in.
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.support.fixtures import tiny_frame, tiny_policy
from tests.support.policies import edited

from fairgate.errors import InputError
from fairgate.models import training


def _with_gaps():
    df = tiny_frame()
    df.loc[[3, 50, 70], "income_k"] = np.nan
    df.loc[[5, 9], "job_type"] = None
    return df


def test_refuse_names_the_column_the_count_and_the_share():
    with pytest.raises(InputError, match=r"Column 'income_k' has 3 missing value\(s\) \(0\.15% of the rows\)"):
        training.fit(_with_gaps(), tiny_policy())


def test_infinity_is_refused_under_either_setting():
    df = tiny_frame()
    df.loc[11, "tenure"] = np.inf
    for missing in ("refuse", "impute"):
        with pytest.raises(InputError, match=r"Column 'tenure' holds 1 infinite value\(s\)"):
            training.fit(df, edited(tiny_policy(), {"dataset.missing": missing}))


def test_impute_learns_the_training_median_and_mode_and_scores_a_gap_as_those_values():
    df = _with_gaps()
    policy = edited(tiny_policy(), {"dataset.missing": "impute"})
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


@pytest.mark.lifecycle
def test_a_missing_feature_value_under_refuse_stops_the_run_at_the_quality_gate_with_its_record(tmp_path, capsys):
    """Before: quality.max_null_fraction let a NaN feature through, check_bias stopped the run with no
    evidence record of it, and `policy check --data` said the data fits."""
    import yaml
    from tests.support.policies import synthetic_credit_policy

    from fairgate.cli.main import main
    from fairgate.governance import evidence
    from fairgate.policy.loader import load_policy
    from fairgate.stages import lifecycle
    from fairgate.stages.lifecycle import RunInfo
    from fairgate.storage.local import LocalStore

    path, data = synthetic_credit_policy(tmp_path, 2000, seed=7)
    column = next(c for c in load_policy(path).numeric if c in data.columns)
    data.loc[data.index[:7], column] = np.nan
    data.to_csv(tmp_path / "credit.csv", index=False)
    raw = yaml.safe_load(path.read_text())
    raw["quality"]["max_null_fraction"] = 0.05
    path.write_text(yaml.safe_dump(raw))
    store = LocalStore(tmp_path / "store")
    recorded = lifecycle.run_in_process(store, load_policy(path), RunInfo(dag_id="nb", run_id="gaps"))
    assert recorded.decision == "quality_failed"
    record = evidence.find(store, "credit", "gaps")["record"]
    assert record["quality"]["failures"] == [
        f"fairgate_no_missing_feature_values on column '{column}': FAILED (unexpected_count=7, element_count=2000, "
        "dataset.missing=refuse)"
    ]
    capsys.readouterr()
    assert main(["policy", "check", str(path), "--data"]) != 0
    assert column in capsys.readouterr().out
