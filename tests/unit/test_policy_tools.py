"""``fairgate policy init`` and ``policy check``: figures by hand on small frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from fairgate.errors import InputError
from fairgate.policy.authoring import check_against_data, parse_protected, starter_policy
from fairgate.policy.loader import parse_policy


def _frame(n=400, seed=3):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "loan_id": [f"L{i:05d}" for i in range(n)],
            "gender": rng.choice(["f", "m"], n),
            "age": rng.integers(18, 80, n),
            "amount": rng.normal(1000, 200, n).round(2),
            "purpose": rng.choice(["car", "home", "study"], n),
            "note": [f"free text {i}" for i in range(n)],  # an identifier-like text column
            "repaid": rng.choice([0, 1], n),
        }
    )


def _starter(df, **kw):
    text = starter_policy(
        df,
        model_name="loans",
        source="/data/loans.csv",
        label="repaid",
        favorable="1",
        protected=[parse_protected("gender=m"), parse_protected("age>=25")],
        **kw,
    )
    return text, yaml.safe_load(text)


def test_init_writes_a_policy_that_loads_with_what_the_data_holds():
    df = _frame()
    text, raw = _starter(df)
    policy = parse_policy(raw)
    assert text.startswith("# Fairgate policy for loans")
    assert policy.dataset.favorable_label == 1  # "1" from the command line, typed as the integer column
    assert policy.dataset.row_key == "loan_id"
    assert (policy.categorical, policy.numeric) == (["purpose"], ["amount"])
    assert "note" in text.split("model_name")[0]  # left out, and said so in the header
    r = policy.quality.ranges["amount"]
    assert (r.min, r.max) == (df["amount"].min(), df["amount"].max())
    assert policy.quality.allowed_values["purpose"] == ["car", "home", "study"]
    assert policy.attribute("gender").allowed == ["f", "m"] and policy.attribute("age").op == ">="
    assert policy.intersections == [["gender", "age"]]


def test_init_refuses_a_label_value_that_never_occurs_and_a_missing_column():
    with pytest.raises(InputError, match=r"favourable label 2 never occurs in column 'repaid'"):
        starter_policy(
            _frame(), model_name="m", source="s", label="repaid", favorable="2", protected=[parse_protected("gender=m")]
        )
    with pytest.raises(InputError, match=r"Columns \['sex'\] are not in the data"):
        starter_policy(
            _frame(), model_name="m", source="s", label="repaid", favorable="1", protected=[parse_protected("sex=m")]
        )
    with pytest.raises(InputError, match="COLUMN=PRIVILEGED"):
        parse_protected("gender")


def test_check_names_a_wrongly_typed_label_and_privileged_value():
    df = _frame()
    _, raw = _starter(df)
    raw["dataset"]["favorable_label"] = "1"
    raw["protected_attributes"][0]["privileged"] = ["M"]
    raw["protected_attributes"][0]["allowed"] = ["f", "M"]
    result = check_against_data(parse_policy(raw), df)
    assert any(
        "'dataset.favorable_label' '1' never occurs in column 'repaid'. It occurs as 1 (int64)" in p
        for p in result.problems
    ), result.problems
    assert any(
        "'protected_attributes[0].privileged' value 'M' never occurs in column 'gender'" in p for p in result.problems
    ), result.problems


def test_check_says_which_group_the_test_split_is_too_small_for_and_what_would_do():
    df = _frame(400)
    _, raw = _starter(df)
    raw["intersections"] = []
    raw["protected_attributes"] = raw["protected_attributes"][:1]
    policy = parse_policy(raw)
    # by hand: 400 rows, test_size 0.2; each gender about 200 rows -> about 40 in the test split < 50
    women = int((df["gender"] == "f").sum())
    result = check_against_data(policy, df)
    assert not result.problems and not result.ok
    needed = np.ceil(50 / women * 100) / 100
    assert any(
        f"Group gender=unprivileged has about {women * 0.2:.0f} rows in the test split; "
        f"'fairness.min_group_size' asks for 50"
        in c
        and f"model.test_size {needed:g} would reach it" in c
        for c in result.cannot_pass
    ), result.cannot_pass
    assert check_against_data(parse_policy({**raw, "fairness": {"min_group_size": 30, "min_positives": 10}}), df).ok


@pytest.mark.lifecycle
def test_the_bias_stage_says_which_groups_the_test_split_is_too_small_for(store, adult, tmp_path):
    import io

    from tests.conftest import default_policy_dict

    from fairgate.stages.lifecycle import RunInfo, check_bias, collect, validate

    path = tmp_path / "sample.csv"
    adult.sample(6000, random_state=2).to_csv(path, index=False)
    raw = default_policy_dict()
    raw["dataset"]["source"] = str(path)
    raw["fairness"]["min_positives"] = 40
    policy, run = parse_policy(raw), RunInfo(dag_id="d", run_id="r")
    bias = check_bias(store, policy, run, validate(store, policy, run, collect(store, policy, run)))
    snapshot = pd.read_parquet(io.BytesIO(store.get(bias.quality.snapshot.data.key)))
    test = snapshot[pd.read_parquet(io.BytesIO(store.get(bias.split.key)))["split"].to_numpy() == "test"]
    women = test[(test["sex"] == "Female") & (test["race"] != "White")]
    positives = int((women["income"] == ">50K").sum())
    assert positives < 40  # by hand: few women outside the privileged race earn >50K in 1,200 test rows
    expected = (
        f"Group sex=unprivileged & race=unprivileged has {positives} favourable outcomes in the test rows; "
        "'fairness.min_positives' asks for 40"
    )
    assert any(s.startswith(expected) for s in bias.short_of_evidence), bias.short_of_evidence


def test_init_reads_a_parquet_file_as_parquet_without_being_told(tmp_path):
    from fairgate.cli.main import main

    _frame().to_parquet(tmp_path / "loans.parquet", index=False)
    out = tmp_path / "loans.yaml"
    assert (
        main(
            [
                "policy",
                "init",
                "--source",
                str(tmp_path / "loans.parquet"),
                "--label",
                "repaid",
                "--favorable",
                "1",
                "--protected",
                "gender=m",
                "--model-name",
                "loans",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    policy = parse_policy(yaml.safe_load(out.read_text()))
    assert policy.dataset.format == "parquet" and policy.dataset.row_key == "loan_id"


@pytest.mark.lifecycle  # runs the GX suite
def test_check_with_data_says_what_the_quality_gate_will_say(tmp_path, capsys):
    """Data the columns fit but the gate refuses: a missing amount, a repeated row key, a third label class."""
    from fairgate.cli.main import main

    df = _frame()
    text, _ = _starter(df)
    df.loc[7, "amount"] = np.nan
    df.loc[9, "loan_id"] = df.loc[8, "loan_id"]
    df.loc[11, "repaid"] = 2
    df.to_csv(tmp_path / "loans.csv", index=False)
    (tmp_path / "loans.yaml").write_text(text.replace("/data/loans.csv", str(tmp_path / "loans.csv")))
    assert main(["policy", "check", str(tmp_path / "loans.yaml"), "--data"]) == 1
    said = capsys.readouterr().out
    gate = [line for line in said.splitlines() if "the quality gate would fail" in line]
    assert any("'amount'" in line and "null" in line for line in gate), said
    assert any("'loan_id'" in line and "unique" in line for line in gate), said
    assert any("'repaid'" in line for line in gate), said
    assert "The data fits the policy" not in said
