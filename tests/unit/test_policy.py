"""Policy validation: every error names the key, what was expected and what arrived."""

from __future__ import annotations

import pytest
import yaml
from tests.conftest import default_policy_dict

from fairgate.policy import PolicyError, load_policy, parse_policy


def test_default_policy_loads():
    p = load_policy()
    assert p.label == "income" and p.favorable_label == ">50K"
    assert p.protected_columns == ("sex", "race")
    assert p.intersections == (("sex", "race"),)
    assert "sex" not in p.features and "race" not in p.features
    di = next(t for t in p.fairness_thresholds if t.metric == "disparate_impact")
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


@pytest.mark.parametrize("path,value,message", [
    ("dataset.label", None, "Policy key 'dataset.label' is missing"),
    ("fairness.min_group_size", "fifty", "Policy key 'fairness.min_group_size' must be an integer. Got 'fifty'"),
    ("model.estimator", "svm", "Policy key 'model.estimator' must be one of ['logistic_regression', "),
    ("fairness.thresholds", {"disparate_impact": {"kind": "band", "min": 0.8, "max": 1.25}},
     "Policy key 'fairness.thresholds.disparate_impact.kind' must be one of ['ratio_band', 'abs_difference']"),
    ("fairness.thresholds", {"accuracy": {"kind": "abs_difference", "max": 0.1}},
     "Policy key 'fairness.thresholds' has unknown entries ['accuracy']"),
    ("fairness.thresholds", {"equal_opportunity_difference": {"kind": "abs_difference", "min": -1, "max": 0.1}},
     "'fairness.thresholds.equal_opportunity_difference.min' does not apply to kind 'abs_difference'"),
    ("intersections", [["sex", "age"]], "Policy key 'intersections[0]' has unknown entries ['age']"),
    ("fairness.confidence_level", 1.5, "'fairness.confidence_level' must be a number strictly between 0 and 1"),
    ("use_protected_as_features", "yes", "'use_protected_as_features' must be true or false"),
])
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
    q = p.with_threshold_overrides({"disparate_impact_min": 0.7, "equal_opportunity_difference_max": 0.2})
    t = {t.metric: t for t in q.fairness_thresholds}
    assert (t["disparate_impact"].min, t["disparate_impact"].max) == (0.7, 1.25)
    assert t["equal_opportunity_difference"].max == 0.2
    with pytest.raises(PolicyError, match="has no min"):
        p.with_threshold_overrides({"equal_opportunity_difference_min": 0.0})
    with pytest.raises(PolicyError, match="must be one of"):
        p.with_threshold_overrides({"accuracy_min": 0.5})


def test_default_yaml_round_trips(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(default_policy_dict()))
    by_metric = lambda p: sorted(p.fairness_thresholds, key=lambda t: t.metric)  # noqa: E731
    assert by_metric(load_policy(path)) == by_metric(load_policy())
