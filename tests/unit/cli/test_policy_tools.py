"""``fairgate policy init`` and ``policy check``: figures by hand on small frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from fairgate.cli.authoring import check_against_data, parse_protected, starter_policy
from fairgate.cli.main import main
from fairgate.errors import InputError
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
    assert not result.problems and result.ok and result.exit_code == 0  # warnings, not errors
    needed = np.ceil(50 / women * 100) / 100
    assert any(
        f"Group gender=unprivileged has about {women * 0.2:.0f} rows in the test split; "
        f"'fairness.min_group_size' asks for 50"
        in c
        and f"model.test_size {needed:g} would reach it" in c
        for c in result.cannot_pass
    ), result.cannot_pass
    # by hand: validation_size 0.1, so about 20 rows of each gender there: short of 50 too
    assert any(
        f"Group gender=unprivileged has about {women * 0.1:.0f} rows in the validation split; "
        "'fairness.min_group_size' asks for 50, so the mitigation search cannot judge fairness on validation "
        "and chooses by balanced accuracy alone" in w
        for w in result.warnings
    ), result.warnings
    roomy = check_against_data(parse_policy({**raw, "fairness": {"min_group_size": 15, "min_positives": 5}}), df)
    assert not roomy.cannot_pass and not [w for w in roomy.warnings if "split" in w]


@pytest.mark.lifecycle
def test_the_bias_stage_says_which_groups_the_test_split_is_too_small_for(store, adult, tmp_path):
    import io

    from tests.support.policies import default_policy_dict

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
    assert main(["policy", "check", str(tmp_path / "loans.yaml"), "--data"]) == 2  # errors exit 2
    said = capsys.readouterr().out
    gate = [line for line in said.splitlines() if "the quality gate would fail" in line]
    assert any("'amount'" in line and "null" in line for line in gate), said
    assert any("'loan_id'" in line and "unique" in line for line in gate), said
    assert any("'repaid'" in line for line in gate), said
    assert "The data fits the policy" not in said


def test_init_leaves_out_inputs_that_leak_the_label_and_says_why():
    """A field recorded after the outcome (the label plus a little noise) and one named like a score are
    left out, each with a comment; an honest input stays. The AUC in the comment is recomputed here."""
    from sklearn.metrics import roc_auc_score

    df = _frame(600, seed=5)
    rng = np.random.default_rng(9)
    df["days_late"] = (1 - df["repaid"]) * 30 + rng.normal(0, 5, len(df)).round(1)  # known only afterwards
    df["risk_score"] = rng.integers(1, 11, len(df))  # another model's output: named like one
    df["outcome_code"] = np.where(df["repaid"] == 1, "paid", rng.choice(["late", "paid"], len(df), p=[0.9, 0.1]))
    text, raw = _starter(df)
    policy = parse_policy(raw)
    assert "days_late" not in policy.features and "risk_score" not in policy.features
    assert "outcome_code" not in policy.features and "amount" in policy.numeric
    auc = roc_auc_score(df["repaid"] == 1, df["days_late"])
    auc = max(auc, 1 - auc)
    assert auc >= 0.95
    header = text.split("model_name")[0]
    assert f"# Left out of the features: days_late: on its own it ranks 'repaid' with ROC AUC {auc:.3f}" in header
    assert "# Left out of the features: risk_score: named like a score or an outcome" in header
    rate = df.groupby("outcome_code")["repaid"].mean()
    by_value = roc_auc_score(df["repaid"] == 1, df["outcome_code"].map(rate))
    assert f"outcome_code: on its own it ranks 'repaid' with ROC AUC {max(by_value, 1 - by_value):.3f}" in header


def test_init_says_how_it_chose_the_row_key_or_that_there_is_none():
    df = _frame().rename(columns={"loan_id": "reference"})
    text, raw = _starter(df)
    assert raw["dataset"]["row_key"] == "reference"
    assert "# Row key: 'reference', a column whose every value is distinct though not named *_id" in text
    text, raw = _starter(df.drop(columns=["reference", "note"]))
    assert "row_key" not in raw["dataset"]
    assert "# No row key: no column identifies a record" in text
    result = check_against_data(parse_policy(raw), df)
    assert any("'dataset.row_key' is not set" in w for w in result.warnings) and result.exit_code == 0


def test_init_explains_the_duplicate_fraction_it_copied():
    df = _frame(400).drop(columns=["note", "amount"])  # few columns: some rows repeat
    df["age"] = np.where(df["age"] < 50, 30, 60)
    repeated = df.drop(columns=["loan_id"]).duplicated().sum()  # by hand: every column but the row key
    assert repeated > 0.05 * len(df)
    text, raw = _starter(df)
    share = repeated / len(df)
    assert raw["quality"]["max_duplicate_fraction"] == np.ceil(share * 1000) / 1000
    line = next(line for line in text.splitlines() if "max_duplicate_fraction" in line)
    assert f"# {share:.1%} of these rows repeat another row's values" in line and "not a recommendation" in line


def test_check_warns_of_an_actionable_number_that_another_input_follows():
    df = _frame(500)
    df["age_band"] = np.where(df["age"] < 40, "young", "older")
    _, raw = _starter(df)
    assert "age_band" in raw["dataset"]["features"]["categorical"]
    raw["dataset"]["features"]["numeric"].append("income_k")
    df["income_k"] = df["amount"] / 10
    raw["recourse"] = {"actionable": {"income_k": {"direction": "increase"}}}
    assert not [w for w in check_against_data(parse_policy(raw), df).warnings if "is determined by" in w]
    raw["protected_attributes"] = raw["protected_attributes"][:1]  # age no longer protected: an input
    raw["intersections"] = []
    raw["dataset"]["features"]["numeric"].append("age")
    raw["recourse"] = {"actionable": {"age": {"direction": "increase"}}}
    warned = [w for w in check_against_data(parse_policy(raw), df).warnings if "is determined by" in w]
    assert warned == [
        "Policy key 'recourse.actionable.age': 'age_band' is determined by 'age' in the data (each value of age "
        "has one age_band); a recourse that changes age leaves age_band as it was. Drop one of the two from "
        "the features, or make the model see only one."
    ]


@pytest.mark.lifecycle  # runs the GX suite
def test_check_exits_0_with_warnings_and_prints_them(tmp_path, capsys):
    df = _frame(400)
    _, raw = _starter(df)
    raw["protected_attributes"], raw["intersections"] = raw["protected_attributes"][:1], []
    raw["dataset"]["source"] = str(tmp_path / "loans.csv")
    df.to_csv(tmp_path / "loans.csv", index=False)
    (tmp_path / "loans.yaml").write_text(yaml.safe_dump(raw))
    assert main(["policy", "check", str(tmp_path / "loans.yaml"), "--data"]) == 0
    said = capsys.readouterr().out
    assert "  warning (cannot pass): Group " in said and "in the validation split" in said
    assert said.rstrip().endswith("warning(s) above.") and "The data fits the policy, with" in said


def test_init_rounds_ranges_outward_and_writes_recourse_and_label_stubs_that_load_uncommented():
    """Before: ranges were copied to the last bit (0.30000000000000004), so the same value sent as JSON with
    fewer digits was refused by the server; and no policy init wrote `recourse`, so the docs' request with
    "params": {"recourse": true} was refused on every policy it wrote."""
    df = _frame()
    df["rate"] = [0.1 + 0.2] + [0.5] * (len(df) - 2) + [2 / 3]  # 0.30000000000000004 and 0.6666666666666666
    text, raw = _starter(df)
    rate = parse_policy(raw).quality.ranges["rate"]
    assert (rate.min, rate.max) == (0.3, 0.666667)  # 6 significant digits, by hand, outward
    assert rate.min <= df["rate"].min() and rate.max >= df["rate"].max()
    assert "# recourse:" in text and "#   actionable:" in text and "  # feature_labels:" in text
    uncommented = "\n".join(
        line.replace("# ", "", 1) if line.startswith(("# recourse", "#   actionable", "#     ")) else line
        for line in text.splitlines()
    )
    uncommented = "\n".join(
        line.split("  #", 1)[0] if line.startswith("recourse:") else line for line in uncommented.splitlines()
    )
    policy = parse_policy(yaml.safe_load(uncommented))
    assert set(policy.recourse.actionable) == {"amount", "rate", "purpose"}


def test_init_says_what_uneven_classes_do_to_the_default_gate():
    df = _frame()
    df["repaid"] = [1 if i % 10 == 0 else 0 for i in range(len(df))]  # 10% favourable
    text, _ = _starter(df)
    header = text.split("model_name")[0]
    assert "Classes are uneven (10.0% favourable)" in header and "min_positives (10)" in header
    assert "Classes are uneven" not in _starter(_frame())[0]


def test_check_notes_inputs_that_reasons_would_name_by_their_column_names():
    df = _frame()
    _, raw = _starter(df)
    said = check_against_data(parse_policy(raw), df).notes
    assert any("by their column names (purpose, amount)" in n and "dataset.feature_labels" in n for n in said), said
    raw["dataset"]["feature_labels"] = {"purpose": "purpose of the loan", "amount": "amount asked for"}
    assert not any("column names" in n for n in check_against_data(parse_policy(raw), df).notes)
