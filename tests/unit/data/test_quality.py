"""The policy-generated quality suite on real Adult rows and on broken copies of them."""

from __future__ import annotations

import json

import pytest
from tests.support.policies import edited

from fairgate.data.quality import validate_frame
from fairgate.policy.loader import load_policy


@pytest.fixture(scope="module")
def policy():
    return load_policy()


@pytest.fixture(scope="module")
def sample(adult):
    return adult.sample(3000, random_state=0).reset_index(drop=True)


def failed(result):
    return {(c.check, c.column) for c in result.failures}


def test_adult_passes(adult, policy):
    result = validate_frame(adult, policy)
    assert result.passed, result.summary()
    assert result.rows == 30162


def test_missing_protected_column_is_named(sample, policy):
    result = validate_frame(sample.drop(columns=["race"]), policy)
    assert ("expect_column_to_exist", "race") in failed(result)


def test_null_and_unknown_protected_values_counted_without_leaking_values(sample, policy):
    df = sample.copy()
    df["sex"] = df["sex"].astype(object)
    df.loc[:4, "sex"] = None
    df.loc[5:11, "sex"] = "Secret-Value"
    result = validate_frame(df, policy)
    by_check = {(c.check, c.column): c for c in result.failures}
    assert by_check[("expect_column_values_to_not_be_null", "sex")].detail["unexpected_count"] == 5
    assert by_check[("expect_column_values_to_be_in_set", "sex")].detail["unexpected_count"] == 7
    assert "Secret-Value" not in json.dumps(result.as_dict())


def test_empty_frame_fails_on_row_count(sample, policy):
    result = validate_frame(sample.head(0), policy)
    assert ("expect_table_row_count_to_be_between", None) in failed(result)
    assert not result.passed


def test_single_class_label_fails(sample, policy):
    df = sample.copy()
    df["income"] = "<=50K"
    assert ("expect_column_unique_value_count_to_be_between", "income") in failed(validate_frame(df, policy))


def test_out_of_range_and_duplicate_key(sample, policy):
    df = sample.copy()
    df.loc[0, "age"] = 130
    df.loc[1, "row_id"] = df.loc[2, "row_id"]
    f = failed(validate_frame(df, policy))
    assert ("expect_column_values_to_be_between", "age") in f
    assert ("expect_column_values_to_be_unique", "row_id") in f


def test_small_intersection_cell_fails_min_group_size(sample, policy):
    df = sample[~((sample["sex"] == "Female") & (sample["race"] != "White"))].copy()
    keep = sample[(sample["sex"] == "Female") & (sample["race"] != "White")].head(policy.fairness.min_group_size - 1)
    import pandas as pd

    result = validate_frame(pd.concat([df, keep]), policy)
    cell = [c for c in result.failures if c.check == "fairgate_min_group_size"]
    assert len(cell) == 1 and cell[0].detail["observed"] == policy.fairness.min_group_size - 1


def test_a_favourable_label_of_the_wrong_type_fails_with_a_hint(sample, policy):

    df = sample.assign(income=(sample["income"] == ">50K").astype(int))
    result = validate_frame(df, edited(policy, {"dataset.favorable_label": "1"}))
    (check,) = [c for c in result.failures if c.column == "income"]
    assert check.check == "expect_column_distinct_values_to_contain_set"
    assert (
        "dataset.favorable_label is '1' (str) but the column holds 1 (int64): write it as 1"
        in result.summary()["failures"][0]
    )
    assert validate_frame(df, edited(policy, {"dataset.favorable_label": 1})).passed
