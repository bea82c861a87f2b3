"""Policy validation: every error names the key, what was expected and what arrived."""

from __future__ import annotations

import pytest
import yaml
from tests.support.policies import default_policy_dict, edited

from fairgate.errors import PolicyError
from fairgate.policy.loader import load_policy, parse_policy
from fairgate_dev.local import REPO


def test_default_policy_loads():
    p = load_policy()
    assert p.dataset.label == "income" and p.dataset.favorable_label == ">50K"
    assert p.protected_columns == ("sex", "race")
    assert p.intersections == [["sex", "race"]]
    assert "sex" not in p.features and "race" not in p.features
    di = next(t for t in p.fairness.bounds if t.metric == "disparate_impact")
    assert (di.kind, di.min, di.max) == ("ratio_band", 0.8, 1.25)
    assert len(p.sha256) == 64


def _with(path: str, value):
    raw = default_policy_dict()
    node = raw
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[leaf]
    else:
        node[leaf] = value
    return raw


@pytest.mark.parametrize(
    "path,value,message",
    [
        ("dataset.label", None, "Policy key 'dataset.label' is missing"),
        ("fairness.min_group_size", "fifty", "Policy key 'fairness.min_group_size' must be an integer. Got 'fifty'"),
        ("model.estimator", "svm", "Policy key 'model.estimator' must be one of ['logistic_regression', "),
        (
            "fairness.thresholds",
            {"disparate_impact": {"kind": "band", "min": 0.8, "max": 1.25}},
            "Policy key 'fairness.thresholds.disparate_impact.kind' must be one of ['ratio_band', 'abs_difference']",
        ),
        (
            "fairness.thresholds",
            {"accuracy": {"kind": "abs_difference", "max": 0.1}},
            "Policy key 'fairness.thresholds' has unknown entries ['accuracy']",
        ),
        (
            "fairness.thresholds",
            {"equal_opportunity_difference": {"kind": "abs_difference", "min": -1, "max": 0.1}},
            "'fairness.thresholds.equal_opportunity_difference.min' does not apply to kind 'abs_difference'",
        ),
        ("intersections", [["sex", "age"]], "Policy key 'intersections[0]' has unknown entries ['age']"),
        ("fairness.confidence_level", 1.5, "'fairness.confidence_level' must be a number strictly between 0 and 1"),
        ("use_protected_as_features", "yes", "'use_protected_as_features' must be true or false"),
    ],
)
def test_bad_policy_names_the_key(path, value, message):
    with pytest.raises(PolicyError) as err:
        parse_policy(_with(path, value))
    assert message in str(err.value)


def test_privileged_value_must_be_allowed():
    raw = default_policy_dict()
    raw["protected_attributes"][0]["privileged"] = ["male"]
    with pytest.raises(PolicyError, match=r"protected_attributes\[0\].privileged' has values \['male'\]"):
        parse_policy(raw)


def test_protected_columns_cannot_sneak_into_features():
    raw = default_policy_dict()
    raw["dataset"]["features"]["categorical"].append("sex")
    with pytest.raises(PolicyError, match=r"includes protected columns \['sex'\]"):
        parse_policy(raw)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(bad)


def test_threshold_overrides_keep_kinds():
    p = load_policy()
    q = p.with_threshold_overrides(
        {"disparate_impact_min": 0.7, "equal_opportunity_difference_max": 0.2}, rationale="pilot", by="ana"
    )
    t = {t.metric: t for t in q.fairness.bounds}
    assert (t["disparate_impact"].min, t["disparate_impact"].max) == (0.7, 1.25)
    assert t["equal_opportunity_difference"].max == 0.2
    with pytest.raises(PolicyError, match="has no min"):
        p.with_threshold_overrides({"equal_opportunity_difference_min": 0.0}, rationale="x")
    with pytest.raises(PolicyError, match="must be one of"):
        p.with_threshold_overrides({"accuracy_min": 0.5}, rationale="x")
    with pytest.raises(PolicyError, match="must be a finite number"):
        p.with_threshold_overrides({"disparate_impact_min": float("nan")}, rationale="x")


def test_a_threshold_override_is_an_exception_with_a_reason_on_record_or_forbidden():
    p = load_policy()
    assert p.override is None and p.with_threshold_overrides({}) is p  # no override: the policy as written
    with pytest.raises(PolicyError, match=r"without a rationale.*'override_rationale'"):
        p.with_threshold_overrides({"disparate_impact_min": 0.7}, rationale="   ", by="ana")
    q = p.with_threshold_overrides({"disparate_impact_min": 0.7}, rationale=" regulator's pilot bound ", by="ana")
    assert q.override is not None and q.override.model_dump() == {
        "overrides": {"disparate_impact_min": 0.7},
        "policy_thresholds": {k: v.model_dump(exclude_none=True) for k, v in p.fairness.thresholds.items()},
        "rationale": "regulator's pilot bound",
        "requested_by": "ana",
    }
    assert q.override.policy_thresholds["disparate_impact"]["min"] == 0.8  # what the file says, kept beside it
    strict = edited(p, {"fairness.overrides": "forbidden"})
    with pytest.raises(PolicyError, match=r"'fairness.overrides' is 'forbidden'"):
        strict.with_threshold_overrides({"disparate_impact_min": 0.7}, rationale="pilot")


def test_default_yaml_round_trips(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(default_policy_dict()))
    by_metric = lambda p: sorted(p.fairness.bounds, key=lambda t: t.metric)  # noqa: E731
    assert by_metric(load_policy(path)) == by_metric(load_policy())


@pytest.mark.parametrize(
    "path,value,message",
    [
        # typos and singulars that used to fall back to a default without a word
        ("quality.min_row", 5000, "Policy key 'quality.min_row' is not a known key. Did you mean 'min_rows'?"),
        (
            "intersection",
            [["sex", "race"]],
            "Policy key 'intersection' is not a known key. Did you mean 'intersections'?",
        ),
        (
            "use_protected_as_feature",
            True,
            "Policy key 'use_protected_as_feature' is not a known key. Did you mean 'use_protected_as_features'?",
        ),
        (
            "fairness.review_margn",
            0.05,
            "Policy key 'fairness.review_margn' is not a known key. Did you mean 'review_margin'?",
        ),
        (
            "protected_attributes.0.privilegd",
            ["Male"],
            "Policy key 'protected_attributes[0].privilegd' is not a known key. Did you mean 'privileged'?",
        ),
        # wrong types are not coerced
        ("quality.min_rows", "5000", "Policy key 'quality.min_rows' must be an integer. Got '5000' instead."),
        ("quality.min_rows", True, "Policy key 'quality.min_rows' must be an integer. Got True instead."),
        ("dataset.partitioned", "false", "Policy key 'dataset.partitioned' must be true or false. Got 'false'"),
        ("model.seed", -1, "Policy key 'model.seed' must be a number >= 0"),
        ("quality.max_null_fraction", 2, "Policy key 'quality.max_null_fraction' must be a number between 0 and 1"),
        ("model_name", "credit model", "Policy key 'model_name' must be letters, digits, '-' or '_'"),
        (
            "dataset.value_labels",
            {"purpose": {"A43": "radio or TV"}},
            "Policy key 'dataset.value_labels' has unknown entries ['purpose']",
        ),
        (
            "model.params",
            {"max_iter": 100, "C_value": 1.0},
            "Policy key 'model.params' does not fit logistic_regression",
        ),
        (
            "dataset.filters",
            [{"column": "age", "op": ">=", "value": "old"}],
            "Policy key 'dataset.filters[0].value' must be a number for op '>='",
        ),
        (
            "dataset.filters",
            [{"column": "age", "op": "in", "value": 30}],
            "Policy key 'dataset.filters[0]': op 'in' needs a non-empty list as value.",
        ),
    ],
)
def test_typos_and_wrong_types_are_refused_at_load_naming_the_key(path, value, message):
    from fairgate.errors import InputError

    raw = default_policy_dict()
    node = raw
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    node[leaf] = value
    with pytest.raises(InputError) as err:
        parse_policy(raw)
    assert message in str(err.value)


def test_omitted_keys_take_the_documented_defaults():
    """The minimal policy of the docs: every omitted key takes the value the policy reference table shows."""
    raw = {
        "model_name": "loans",
        "dataset": {"source": "/data/x.csv", "label": "y", "favorable_label": 1, "features": {"numeric": ["amount"]}},
        "protected_attributes": [{"column": "gender", "privileged": ["m"]}],
    }
    p = parse_policy(raw)
    assert (p.quality.min_rows, p.quality.max_null_fraction, p.quality.max_duplicate_fraction) == (1000, 0.0, 0.05)
    assert (p.fairness.review_margin, p.fairness.min_balanced_accuracy, p.fairness.champion_tolerance) == (
        0.02,
        0.6,
        0.02,
    )
    assert (p.fairness.min_group_size, p.fairness.min_positives, p.fairness.confidence_level) == (50, 10, 0.95)
    assert (p.model.estimator, p.model.seed, p.model.test_size, p.model.validation_size) == (
        "logistic_regression",
        42,
        0.2,
        0.1,
    )
    assert (p.audit.window_days, p.audit.label_lag_days) == (7, 3)
    assert p.audit.incoming is None  # no simulated Adult feed for somebody else's data
    assert {t.metric: (t.min, t.max) for t in p.fairness.bounds} == {
        "disparate_impact": (0.8, 1.25),
        "statistical_parity_difference": (None, 0.1),
        "equal_opportunity_difference": (None, 0.1),
        "average_odds_difference": (None, 0.1),
    }
    assert {t.metric for t in p.bias.bounds} == {"disparate_impact", "statistical_parity_difference"}


def test_the_readme_policy_table_is_the_schema():

    from fairgate.policy.schema import defaults_table

    reference = (REPO / "docs" / "policy.md").read_text()
    assert defaults_table() in reference, "docs/policy.md's table differs from `fairgate policy schema --markdown`"


def test_the_simulated_feed_is_refused_for_columns_adult_lacks():
    raw = default_policy_dict()
    raw["dataset"]["features"]["numeric"].append("credit_score")
    with pytest.raises(PolicyError, match=r"'audit.incoming': simulated://adult-test .* no columns \['credit_score'\]"):
        parse_policy(raw)


def test_json_schema_validates_the_bundled_policy_and_rejects_a_typo():
    jsonschema = pytest.importorskip("jsonschema")
    from fairgate.policy.schema import json_schema

    schema = json_schema()
    jsonschema.validate(default_policy_dict(), schema)
    raw = default_policy_dict()
    raw["quality"]["min_row"] = 5000
    with pytest.raises(jsonschema.ValidationError, match="min_row"):
        jsonschema.validate(raw, schema)


def test_the_simulated_scenarios_are_the_schemas():
    from typing import get_args

    from fairgate.policy.schema import SCENARIOS, Scenario

    assert get_args(Scenario) == SCENARIOS
