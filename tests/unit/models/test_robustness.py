"""Robustness checks: decision stability under noise and counterfactual flips, against answers worked
out by hand (a rule-based model whose flips follow from the normal distribution or from counting),
the gate's judgement of them, and the wiring through a real in-process lifecycle run."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from tests.support.policies import synthetic_credit_policy

from fairgate.errors import PolicyError
from fairgate.governance import evidence, registry
from fairgate.models import robustness
from fairgate.models.robustness import gate_findings
from fairgate.policy.loader import load_policy, parse_policy
from fairgate.stages import lifecycle
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore


def _policy(**robust):
    return parse_policy(
        {
            "model_name": "toy",
            "dataset": {
                "source": "/nowhere.csv",
                "row_key": "id",
                "label": "y",
                "favorable_label": 1,
                "features": {"categorical": ["area"], "numeric": ["x"]},
            },
            "protected_attributes": [{"column": "gender", "privileged": ["m"], "allowed": ["m", "f"]}],
            "audit": {"incoming": "/nowhere"},
            "robustness": {"enabled": True, **robust},
        }
    )


class Rule:
    """Favourable when ``x > 0`` (and, with ``area``, also when the area is west): decisions known exactly."""

    def __init__(self, *, area: bool = False):
        self.area = area

    def predict_proba(self, X):
        p = (X["x"].to_numpy(dtype=float) > 0) | (self.area & (X["area"].to_numpy() == "west"))
        return np.column_stack([1 - p, p]).astype(float)


def _frame(n_far, n_near, near_gender):
    """Far rows at x = ±1 (both genders), near rows at x = ±0.05 (one gender only)."""
    rows = [
        {"x": s, "gender": g, "area": "east", "y": 1}
        for g in ("m", "f")
        for s in (1.0, -1.0)
        for _ in range(n_far // 4)
    ]
    rows += [{"x": s, "gender": near_gender, "area": "east", "y": 1} for s in (0.05, -0.05) for _ in range(n_near // 2)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("repeats", [1, 3])
def test_stability_matches_the_normal_distribution(repeats):
    df = _frame(4000, 4000, "f")
    scale = 0.1
    sd = scale * df["x"].std(ddof=0)
    p_one = norm.cdf(-0.05 / sd)  # a near row crosses 0 in one draw; far rows (1/sd ≈ 14 sd away) never
    p_any = 1 - (1 - p_one) ** repeats
    out = robustness.stability(Rule(), df, _policy(), scale=scale, repeats=repeats, seed=1)
    women, men = out["groups"]["gender=unprivileged"], out["groups"]["gender=privileged"]
    assert men["changed"] == 0 and men["n"] == 2000
    assert women["n"] == 6000
    assert women["value"] == pytest.approx(p_any * 4000 / 6000, abs=0.02)
    assert women["ci_low"] < p_any * 4000 / 6000 < women["ci_high"]
    assert out["overall"]["changed"] == women["changed"]


def test_counterfactual_flips_the_attribute_and_its_proxy_to_the_other_groups_typical_value():
    df = pd.DataFrame(
        {
            "gender": ["m", "m", "m", "f", "f", "f", "f"],
            "area": ["west", "west", "east", "east", "east", "west", "east"],
            "x": [-1.0] * 7,
            "y": [1] * 7,
        }
    )
    # men's typical area is west, women's east: men get east, women get west
    out = robustness.counterfactual(Rule(area=True), df, _policy(), proxies={"gender": ["area"]})["gender"]
    assert out["swapped"]["area"] == {"privileged_rows_get": "east", "unprivileged_rows_get": "west"}
    # decisions before: west → 1. After: men all east → 0 (two changed), women all west → 1 (three changed)
    assert (out["privileged"]["changed"], out["unprivileged"]["changed"]) == (2, 3)
    assert out["overall"]["value"] == pytest.approx(5 / 7)
    alone = robustness.counterfactual(Rule(area=True), df, _policy(), proxies=None)["gender"]
    assert alone["overall"]["changed"] == 0 and "reads neither gender" in alone["note"]


def _share(k, n):
    from fairgate.fairness.metrics import wilson_interval

    low, high = wilson_interval(k, n)
    return {
        "n": n,
        "changed": k,
        "value": k / n if n else None,
        "ci_low": low if n else None,
        "ci_high": high if n else None,
    }


@pytest.mark.parametrize(
    "k,n,expected", [(0, 2000, "pass"), (400, 1000, "fail"), (50, 1000, "review"), (0, 0, "review")]
)
def test_the_gate_judges_a_share_by_its_interval(k, n, expected):
    measured = {
        "stability": {"groups": {"g=privileged": _share(k, n)}},
        "counterfactual": {},
        "max_flip_rate": 0.05,
        "max_counterfactual_rate": 0.02,
    }
    [finding] = gate_findings(measured, _policy())
    assert finding.outcome == expected and finding.scope == "robustness g=privileged"


def test_the_policy_section_is_strict():
    assert _policy(max_flip_rate=0.1).robustness.max_flip_rate == 0.1
    with pytest.raises(PolicyError, match="robustness"):
        _policy(max_flip=0.1)
    with pytest.raises(PolicyError, match="robustness.repeats"):
        _policy(repeats=0)


@pytest.mark.lifecycle
def test_a_lifecycle_gates_on_the_proxy_flip(tmp_path):
    """Synthetic credit data: ``postcode_area`` is gender's injected proxy, so flipping it with gender
    changes decisions; the rate in the evidence equals one recomputed here from the stored model."""
    path, _ = synthetic_credit_policy(
        tmp_path, 4000, seed=9, robustness={"enabled": True, "max_counterfactual_rate": 0.02}
    )
    store = LocalStore(tmp_path / "store")
    recorded = lifecycle.run_in_process(store, load_policy(path), RunInfo(dag_id="nb", run_id="r"))
    rec = evidence.find(store, "credit", "r")["record"]
    cf = rec["robustness"]["counterfactual"]["gender"]
    assert cf["columns"] == ["gender", "postcode_area"]

    from fairgate.models.training import load_model_bytes

    model = load_model_bytes(
        store.get(store.key_of(rec["model"]["uri"])), expected_sha256=rec["model"]["sha256"], where="test"
    )
    snap = pd.read_parquet(io.BytesIO(store.get("runs/nb/r/snapshot.parquet")))
    split = pd.read_parquet(io.BytesIO(store.get("runs/nb/r/split.parquet")))["split"].to_numpy()
    test = snap[split == "test"].reset_index(drop=True)
    men = test["gender"] == "male"
    flipped = test.assign(
        gender=np.where(men, "female", "male"),
        postcode_area=np.where(
            men, test.loc[~men, "postcode_area"].mode()[0], test.loc[men, "postcode_area"].mode()[0]
        ),
    )
    features = list(json.loads(store.get("runs/nb/r/train.json"))["features"])

    def decide(frame):
        return (
            model.predict_proba(frame[features].astype({c: str for c in features if frame[c].dtype == object}))[:, 1]
            >= 0.5
        )

    by_hand = int((decide(flipped) != decide(test)).sum())
    assert cf["overall"]["changed"] == by_hand > 0
    assert rec["gate"]["outcome"] == "fail" and recorded.decision == "rejected"
    assert any(r.startswith("robustness gender: counterfactual_change_rate") for r in rec["gate"]["reasons"])
    assert registry.production_version(store, "credit") is None  # nothing deployed
    assert "Robustness of the decisions" in store.get("runs/nb/r/report.html").decode()
