"""Subgroup discovery: figures recomputed from hand counts, an injected subgroup disparity found (and
nothing else), and with no disparity the false-discovery rate held over repeated draws."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from fairgate.fairness.subgroups import describe, discover
from fairgate.policy.loader import parse_policy

RAW = {
    "model_name": "sub",
    "dataset": {
        "source": "/x.csv",
        "label": "y",
        "favorable_label": 1,
        "features": {"categorical": ["region"], "numeric": ["income"]},
    },
    "protected_attributes": [{"column": "gender", "privileged": ["male"], "allowed": ["female", "male"]}],
}


def _policy(**subgroups):
    return parse_policy({**RAW, "subgroups": {"min_size": 20, **subgroups}})


def test_a_subgroups_figures_from_hand_counts():
    # 40 women in the south, 6 selected; everyone else (160 rows) 80 selected.
    df = pd.DataFrame(
        {
            "gender": ["female"] * 40 + ["female"] * 40 + ["male"] * 120,
            "region": ["south"] * 40 + ["north"] * 40 + ["south"] * 60 + ["north"] * 60,
            "income": np.arange(200.0),
        }
    )
    pred = np.array([1] * 6 + [0] * 34 + [1, 0] * 20 + [1, 0] * 60)
    found = discover(df, pred, _policy(max_attributes=2))
    [cell] = [f for f in found["top"] if f["subgroup"] == {"gender": "female", "region": "south"}]
    assert (cell["rows"], cell["rate"], cell["rest_rate"]) == (40, 6 / 40, 80 / 160)
    assert cell["gap"] == pytest.approx(0.15 - 0.5)
    pooled = 86 / 200
    z = (0.15 - 0.5) / math.sqrt(pooled * (1 - pooled) * (1 / 40 + 1 / 160))
    assert cell["p"] == pytest.approx(2 * norm.sf(abs(z)))
    assert cell["ci_low"] < cell["gap"] < cell["ci_high"] and cell["discovered"]
    assert describe(cell).startswith("gender=female & region=south: selection_rate 0.150 vs 0.500 for the rest")
    # every subgroup names gender: gender alone, gender × region, gender × income quartile
    assert all("gender" in f["subgroup"] for f in found["top"])
    assert found["attributes"] == ["gender", "region", "income"]


def _draw(rng, n, *, injected):
    df = pd.DataFrame(
        {
            "gender": rng.choice(["female", "male"], n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "income": rng.normal(30000, 8000, n),
        }
    )
    rate = np.full(n, 0.5)
    if injected:
        rate[(df["gender"] == "female").to_numpy() & (df["region"] == "south").to_numpy()] = 0.3
    y = (rng.random(n) < 0.5).astype(float)
    return df, (rng.random(n) < rate).astype(int), y


def test_an_injected_subgroup_disparity_is_found_first():
    rng = np.random.default_rng(1)
    df, pred, y = _draw(rng, 8000, injected=True)
    found = discover(df, pred, _policy(), labels=y)
    first = found["top"][0]
    assert first["subgroup"] == {"gender": "female", "region": "south"} and first["metric"] == "selection_rate"
    assert first["discovered"] and first["gap"] == pytest.approx(-0.2, abs=0.05)
    assert found["tests"] > 50  # selection, TPR, FPR and error rate of every subgroup with a protected attribute


def test_with_no_disparity_the_false_discovery_rate_holds():
    """200 draws with no difference anywhere: every null is true, so the FDR is the share of draws with any
    discovery; Benjamini–Hochberg at 0.05 keeps it there (binomial slack 2.5 SE)."""
    rng = np.random.default_rng(2)
    draws = 200
    any_found = [discover(*_draw(rng, 3000, injected=False)[:2], _policy())["discovered"] > 0 for _ in range(draws)]
    rate = float(np.mean(any_found))
    assert rate <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / draws), rate
    print(f"draws with a false discovery: {rate:.3f} of {draws}")


# --- the gate judges discovered subgroups of protected attributes alone against the policy's bands ---

TWO = {
    **RAW,
    "protected_attributes": [
        {"column": "gender", "privileged": ["male"], "allowed": ["female", "male"]},
        {"column": "origin", "privileged": ["local"], "allowed": ["local", "migrant"]},
    ],
    "fairness": {"thresholds": {"statistical_parity_difference": {"kind": "abs_difference", "max": 0.1}}},
}


def _two(**subgroups):
    return parse_policy({**TWO, "subgroups": {"min_size": 20, **subgroups}})


def _intersection_draw(rng, n, *, gap):
    """Two protected attributes, no intersection declared; migrant women selected ``gap`` less often.

    Each attribute's own marginal gap stays small (the cell is a quarter of each side), so only the
    undeclared intersection lies outside a 0.1 band.
    """
    df = pd.DataFrame(
        {
            "gender": rng.choice(["female", "male"], n),
            "origin": rng.choice(["local", "migrant"], n),
            "region": rng.choice(["north", "south"], n),
            "income": rng.normal(30000, 8000, n),
        }
    )
    rate = np.full(n, 0.5)
    cell = (df["gender"] == "female").to_numpy() & (df["origin"] == "migrant").to_numpy()
    rate[cell] -= gap
    return df, (rng.random(n) < rate).astype(int)


def test_the_gate_reviews_an_undeclared_intersection_outside_the_band():
    from fairgate.fairness.gate import subgroup_findings

    df, pred = _intersection_draw(np.random.default_rng(3), 8000, gap=0.25)
    found = discover(df, pred, _two())
    # by hand: the cell's rate against everyone else's, as the SPD band reads it
    cell = (df["gender"] == "female") & (df["origin"] == "migrant")
    gap = pred[cell].mean() - pred[~cell].mean()
    assert gap < -0.1
    findings = subgroup_findings(found, _two())
    scopes = {f.scope for f in findings}
    assert "subgroup gender=female & origin=migrant" in scopes
    assert all(f.outcome == "review" for f in findings)
    [intersection] = [f for f in findings if f.scope == "subgroup gender=female & origin=migrant"]
    assert f"statistical_parity_difference {gap:.4f}" in intersection.message
    # a subgroup that names a non-protected input is reported, never gated
    assert not any("region" in s or "income" in s for s in scopes)
    assert [f.outcome for f in subgroup_findings(found, _two(gate="fail"))][:1] == ["fail"]
    assert subgroup_findings(found, _two(gate="off")) == []


def test_the_gate_is_silent_on_subgroups_inside_the_band():
    from fairgate.fairness.gate import subgroup_findings

    df, pred = _intersection_draw(np.random.default_rng(4), 8000, gap=0.0)
    assert subgroup_findings(discover(df, pred, _two()), _two()) == []


def test_the_verdict_and_the_run_report_say_a_gated_subgroup_in_words():
    from fairgate.governance.records import LifecycleRecord
    from fairgate.reporting.report import run_report
    from fairgate.reporting.verdict import verdict

    df, pred = _intersection_draw(np.random.default_rng(3), 8000, gap=0.25)
    policy = _two()
    found = discover(df, pred, policy)
    cell = (df["gender"] == "female") & (df["origin"] == "migrant")
    record = LifecycleRecord.model_validate(
        {
            "kind": "lifecycle",
            "run_id": "r",
            "dag_id": "d",
            "decision": "rejected",
            "model_name": "sub",
            "policy": {"sha256": "0" * 64, "path": "p.yaml"},
            "subgroups": found,
        }
    )
    said = [c for c in verdict(record, policy)["checks"] if c.startswith("A subgroup no comparison names")]
    mine = next(c for c in said if "gender female and origin migrant" in c)
    assert f"{pred[cell].mean():.0%} favourable decisions, against {pred[~cell].mean():.0%} for everyone else" in mine
    page = run_report(record, policy)
    assert "Subgroups treated most differently from the rest" in page and "gender=female &amp; origin=migrant" in page


def test_a_dictionary_encoded_column_with_gaps_is_searched_as_its_text():
    """A Parquet read gives categorical columns, with a missing value where the log has none: they are
    searched as the same text a plain column gives (a missing value reads "nan"), every figure equal; and
    each rate with labels is recounted here with plain masks."""
    rng = np.random.default_rng(3)
    n = 4000
    text = pd.DataFrame(
        {
            "gender": rng.choice(["female", "male"], n),
            "region": rng.choice(["north", "south", "east"], n).astype(object),
            "income": rng.normal(50, 10, n),
        }
    )
    text.loc[::9, "region"] = None
    pred = rng.integers(0, 2, n)
    labels = rng.integers(0, 2, n).astype(float)
    labels[::5] = np.nan
    encoded = text.astype({"gender": "category", "region": "category"})
    plain = text.assign(region=text["region"].fillna("nan"))
    policy = _policy(max_attributes=2, min_size=50)
    found = discover(encoded, pred, policy, labels=labels)
    assert found == discover(plain, pred, policy, labels=labels)
    known = ~np.isnan(labels)
    for f in found["top"]:
        inside = np.ones(n, dtype=bool)
        for col, value in f["subgroup"].items():
            if col == "income":
                low, high = (float(x) for x in value.strip("[)").split(", "))
                inside &= (plain["income"] >= low) & (plain["income"] < high)
            else:
                inside &= (plain[col] == value).to_numpy()
        among, hit = {
            "selection_rate": (np.ones(n, dtype=bool), pred == 1),
            "true_positive_rate": (known & (labels == 1), pred == 1),
            "false_positive_rate": (known & (labels == 0), pred == 1),
            "error_rate": (known, pred != labels),
        }[f["metric"]]
        assert f["rows"] == (inside & among).sum()
        assert f["rate"] == pytest.approx((inside & among & hit).sum() / (inside & among).sum(), abs=1e-15)
        assert f["rest_rate"] == pytest.approx((~inside & among & hit).sum() / (~inside & among).sum(), abs=1e-15)
