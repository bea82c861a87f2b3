"""`fairgate policy set`: keys changed, everything else (comments included) kept, a refused edit changes nothing."""

from __future__ import annotations

import pytest
import yaml
from tests.support.policies import DEFAULT_POLICY

from fairgate.cli.main import main
from fairgate.errors import PolicyError
from fairgate.policy.editing import set_in_file, set_keys
from fairgate.policy.loader import load_policy

COMMENT = "# why the threshold is what it is: agreed with the credit committee\n"


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "credit.yaml"
    text = DEFAULT_POLICY.read_text()
    path.write_text(COMMENT + text)
    return path


def test_set_keys_changes_only_the_keys_given_and_keeps_the_comments(policy_file):
    before = policy_file.read_text()
    after = set_keys(
        before,
        [
            "fairness.review_margin=0.05",
            "audit.incoming=/data/feed",
            "fairness.thresholds.statistical_parity_difference={kind: abs_difference, max: 0.2}",
            "dataset.feature_labels.age=Age in years",  # a mapping created on the way
        ],
    )
    assert after.startswith(COMMENT)
    assert after.count("#") == before.count("#")  # every comment of the file is still there
    # the file's keys as they were, with those four set by hand: the same mapping
    expected = yaml.safe_load(before)
    expected["fairness"]["review_margin"] = 0.05
    expected["audit"]["incoming"] = "/data/feed"
    expected["fairness"]["thresholds"]["statistical_parity_difference"] = {"kind": "abs_difference", "max": 0.2}
    expected["dataset"].setdefault("feature_labels", {})["age"] = "Age in years"
    assert yaml.safe_load(after) == expected


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ("fairness.review_margin=.inf", "fairness.review_margin"),  # not finite
        ("fairness.nope=1", "fairness.nope"),  # not a key
        ("model_name.x=1", "model_name"),  # not a mapping on the way
        ("fairness.min_group_size=-3", "min_group_size"),  # out of range
        ("review_margin", "KEY=VALUE"),  # no value
        ("fairness.review_margin=*a", "alias"),  # the value goes through the bounded reader too
    ],
)
def test_a_refused_edit_names_the_key_and_leaves_the_file_byte_for_byte(policy_file, setting, named):
    before = policy_file.read_bytes()
    with pytest.raises(PolicyError, match=named.replace(".", r"\.")):
        set_in_file(policy_file, ["audit.incoming=/data/feed", setting])
    assert policy_file.read_bytes() == before
    assert sorted(p.name for p in policy_file.parent.iterdir()) == ["credit.yaml"]  # no temporary file left


def test_the_command_sets_validates_and_the_result_loads(policy_file, capsys):
    assert main(["policy", "set", str(policy_file), "fairness.review_margin=0.04", "audit.window_days=3"]) == 0
    assert "set fairness.review_margin, audit.window_days; the schema is satisfied" in capsys.readouterr().out
    policy = load_policy(policy_file)
    assert policy.fairness.review_margin == 0.04 and policy.audit.window_days == 3
    assert main(["policy", "set", str(policy_file), "audit.window_days=0"]) != 0
    assert load_policy(policy_file).audit.window_days == 3


def test_yes_and_no_stay_text_when_set_and_when_read(tmp_path):
    """Before: `policy set ...allowed=[yes, no]` wrote booleans (YAML 1.1), the loader accepted them, the
    quality gate failed with a misleading message and recourse proposed "insurance False"."""
    raw = yaml.safe_load(DEFAULT_POLICY.read_text())
    raw["protected_attributes"].append({"column": "insured", "privileged": ["yes"], "allowed": ["yes", "no"]})
    raw["audit"]["incoming"] = str(tmp_path / "feed")  # the simulated Adult feed has no column 'insured'
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw).replace("- 'yes'", "- yes").replace("- 'no'", "- no"))
    assert "- yes" in path.read_text()  # unquoted, as a person writes it
    insured = next(a for a in load_policy(path).protected_attributes if a.column == "insured")
    assert insured.allowed == ["yes", "no"] and insured.privileged_values == ["yes"]
    set_in_file(path, ["protected_attributes=" + yaml.safe_dump(raw["protected_attributes"], default_flow_style=True)])
    set_in_file(path, ["dataset.favorable_label=yes"])
    text = path.read_text()
    assert 'favorable_label: "yes"' in text  # quoted for every other YAML reader
    assert yaml.safe_load(text)["dataset"]["favorable_label"] == "yes"  # even a YAML 1.1 one
    assert load_policy(path).dataset.favorable_label == "yes"
