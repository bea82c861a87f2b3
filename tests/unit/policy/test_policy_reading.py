"""Hostile and broken policy files: refused at once, naming the file, the line or the key.

Each case is what a careless or hostile user writes. The reader is the one the CLI, the DAG
processor's catalog and the tasks share, so each refusal is checked through ``load_policy`` and,
for the catalog, through a policies folder where the other models' DAGs must still load.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
import yaml
from tests.support.policies import default_policy_dict

from fairgate.cli.authoring import next_runs
from fairgate.errors import PolicyError
from fairgate.policy import catalog
from fairgate.policy.loader import load_policy, parse_policy
from fairgate.policy.reading import MAX_BYTES

ALIAS_BOMB = """model_name: bomb
a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
schedule: {lifecycle: *h}
"""


def _write(tmp_path, text: str, name: str = "p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path):
    with pytest.raises(PolicyError, match=r"line 3: YAML aliases \(\*a\) are not allowed"):
        load_policy(_write(tmp_path, ALIAS_BOMB))


def test_a_key_given_twice_is_refused_naming_it_and_its_line(tmp_path):
    text = yaml.safe_dump(default_policy_dict(), sort_keys=False) + "model_name: renamed\n"
    line = len(text.splitlines())
    with pytest.raises(PolicyError, match=rf"line {line}: key 'model_name' is given twice"):
        load_policy(_write(tmp_path, text))


def test_a_file_too_large_to_be_a_policy_is_refused_unread(tmp_path):
    path = _write(tmp_path, "model_name: big\n# " + "x" * MAX_BYTES + "\n")
    with pytest.raises(PolicyError, match=r"is 1,000,0\d\d bytes; a policy may be at most 1,000,000"):
        load_policy(path)


@pytest.mark.parametrize(
    ("dotted", "value", "named"),
    [
        ("fairness.review_margin", float("inf"), "fairness.review_margin' is inf"),
        ("fairness.champion_tolerance", float("-inf"), "fairness.champion_tolerance' is -inf"),
        ("fairness.thresholds.disparate_impact.min", float("nan"), "fairness.thresholds.disparate_impact.min' is nan"),
    ],
)
def test_a_number_that_is_not_finite_is_refused_naming_the_key(dotted, value, named):
    raw = default_policy_dict()
    node = raw
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    with pytest.raises(PolicyError, match=rf"Policy key '{named}: numbers in a policy must be finite"):
        parse_policy(raw)


def test_nan_written_in_yaml_for_a_privileged_value_is_refused(tmp_path):
    raw = default_policy_dict()
    text = yaml.safe_dump(raw).replace("privileged:\n  - Male", "privileged_if: .nan", 1)
    assert "privileged_if: .nan" in text
    with pytest.raises(PolicyError, match=r"protected_attributes\[\d\]\.privileged_if' is nan"):
        load_policy(_write(tmp_path, text))


def test_a_row_key_that_is_also_the_label_or_an_input_is_refused():
    raw = default_policy_dict()
    raw["dataset"]["row_key"] = raw["dataset"]["label"]
    with pytest.raises(PolicyError, match=r"'dataset.row_key' \('income'\) is also the label"):
        parse_policy(raw)
    raw["dataset"]["row_key"] = "age"
    with pytest.raises(PolicyError, match=r"'dataset.row_key' \('age'\)"):
        parse_policy(raw)


def test_a_cron_that_is_not_one_is_refused_and_policy_check_shows_the_next_runs():
    raw = default_policy_dict()
    raw["schedule"] = {"lifecycle": "not a cron"}
    with pytest.raises(PolicyError, match=r"'schedule.lifecycle' is 'not a cron', which is not a cron expression"):
        parse_policy(raw)
    raw["schedule"] = {"lifecycle": "61 3 * * 1"}
    with pytest.raises(PolicyError, match=r"schedule.lifecycle"):
        parse_policy(raw)
    raw["schedule"] = {"lifecycle": "15 4 * * 2"}
    monday = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # a Monday, noon
    runs = next_runs(parse_policy(raw), after=monday)
    assert runs == {
        "lifecycle": "2026-12-08 04:15",
        "score": "2026-12-08 01:00",
        "ingest": "2026-12-07 12:15",  # every 15 minutes
        "audit": "2026-12-08 03:00",
    }


def test_in_a_policies_folder_a_refused_file_skips_only_its_model(tmp_path, monkeypatch, caplog):
    for name, schedule in (("good", None), ("badcron", {"lifecycle": "every monday"})):
        raw = {**default_policy_dict(), "model_name": name} | ({"schedule": schedule} if schedule else {})
        (tmp_path / f"{name}.yaml").write_text(json.dumps(raw))
    (tmp_path / "bomb.yaml").write_text(ALIAS_BOMB)
    (tmp_path / "twice.yaml").write_text("model_name: a\nmodel_name: b\n")
    monkeypatch.setenv("FAIRGATE_POLICIES", str(tmp_path))
    assert [e.name for e in catalog.entries()] == ["good"]
    skipped = " ".join(r.getMessage() for r in caplog.records)
    assert "aliases" in skipped and "given twice" in skipped and "'schedule.lifecycle' is 'every monday'" in skipped


HOSTILE = {
    "nul": "model_name: nul\n# \x00\n",
    "digits": "model_name: digits\nextra: " + "9" * 5000 + "\n",
    "nested": "model_name: nested\na: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "nested-maps": "model_name: deep\n" + "".join("  " * i + f"k{i}:\n" for i in range(40)),
}


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("nul", "unacceptable character #x0000"),
        ("digits", "a whole number of 5,000 digits"),
        ("nested", "nested more than 32 levels deep"),
        ("nested-maps", "nested more than 32 levels deep"),
    ],
)
def test_a_file_that_escaped_the_reader_is_refused_naming_it(tmp_path, name, said):
    """Before: a ValueError (5,000 digits) or a RecursionError (nesting) was raised outside the reader's
    ``try``, so reading a folder of policies failed for every model, and ``policy check`` printed a traceback."""
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(HOSTILE[name].encode())
    with pytest.raises(PolicyError, match=said) as refused:
        load_policy(path)
    assert str(path) in str(refused.value)


def test_hostile_files_in_a_folder_refuse_only_themselves_and_policy_check_prints_no_traceback(
    tmp_path, monkeypatch, capsys
):
    from fairgate.cli.main import main

    (tmp_path / "good.yaml").write_text(json.dumps({**default_policy_dict(), "model_name": "good"}))
    for name, text in HOSTILE.items():
        (tmp_path / f"{name}.yaml").write_bytes(text.encode())
    models, refused = catalog.scan(folder=tmp_path)
    assert [m.name for m in models] == ["good"]
    assert sorted(r.path.name for r in refused) == sorted(f"{n}.yaml" for n in HOSTILE)
    for name in HOSTILE:
        capsys.readouterr()
        assert main(["policy", "check", str(tmp_path / f"{name}.yaml")]) != 0
        printed = capsys.readouterr()
        assert "Traceback" not in printed.out + printed.err and f"{name}.yaml" in printed.out + printed.err


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *"])
def test_a_cron_that_never_fires_within_a_year_is_refused(cron):
    raw = default_policy_dict()
    raw["schedule"] = {"lifecycle": cron}
    said = rf"'schedule.lifecycle' is '{re.escape(cron)}', which never fires within a year"
    with pytest.raises(PolicyError, match=said):
        parse_policy(raw)
