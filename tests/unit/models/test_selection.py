"""Decisions made by rank (``model.selection: top_k | top_fraction``): the cutoff by hand, the gate's
fairness figures those of the selection the model makes of the test split, and each scored day's
log holding exactly the day's top ``k``, on synthetic credit data."""

from __future__ import annotations

import io
import json
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.support.policies import synthetic_credit_policy

from fairgate.errors import PolicyError
from fairgate.groups import group_codes
from fairgate.models import evaluation, training
from fairgate.policy.loader import load_policy, parse_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore

RAW = {
    "model_name": "rank",
    "dataset": {"source": "/x.csv", "label": "y", "favorable_label": 1, "features": {"numeric": ["x"]}},
    "protected_attributes": [{"column": "g", "privileged": ["a"], "allowed": ["a", "b"]}],
}


def _policy(**model):
    return parse_policy({**RAW, "model": model})


def test_the_cutoff_by_hand():
    scores = np.array([0.9, 0.2, 0.5, 0.7, 0.5])
    assert training.rank_cutoff(scores, _policy(), day=True) is None
    assert training.rank_cutoff(scores, _policy(selection="top_fraction", top_fraction=0.4), day=True) == 0.7
    # three of five: the third highest is 0.5, and both records at 0.5 are selected (ties at the cutoff)
    three = training.rank_cutoff(scores, _policy(selection="top_fraction", top_fraction=0.6), day=False)
    assert three == 0.5 and int((scores >= three).sum()) == 4
    top_k = _policy(selection="top_k", top_k=2, expected_daily_rows=5)
    assert training.rank_cutoff(scores, top_k, day=True) == 0.7  # two a day
    ten = np.linspace(0.05, 0.95, 10)
    assert training.rank_cutoff(ten, top_k, day=False) == pytest.approx(ten[-4])  # 2/5 of ten rows: four
    with pytest.raises(PolicyError, match="'selection: top_k' needs 'top_k'"):
        _policy(selection="top_k", top_k=2)


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rank")
    path, data = synthetic_credit_policy(tmp, 4000, seed=41)
    return tmp, yaml.safe_load(path.read_text()), data


def test_the_gate_measures_the_selection_the_model_makes(credit):
    _, raw, data = credit
    raw = {**raw, "model": {**raw["model"], "selection": "top_fraction", "top_fraction": 0.25}}
    policy = parse_policy(raw)
    train, test = data.iloc[:3000], data.iloc[3000:].reset_index(drop=True)
    model = training.fit(train, policy)
    result = evaluation.evaluate(test, model, policy, training_rows=train)
    scores = training.predict(model, test, policy)[0]
    chosen = np.argsort(-scores, kind="stable")[: math.ceil(0.25 * len(test))]  # by hand: the top quarter
    selected = np.zeros(len(test), dtype=bool)
    selected[chosen] = True
    assert result["selection"]["selected"] == selected.sum() == 250
    assert result["selection"]["cutoff"] == pytest.approx(scores[chosen].min())
    men = group_codes(test, policy)["gender"].to_numpy() == 1
    spd = selected[~men].mean() - selected[men].mean()
    assert result["fairness"]["gender"]["metrics"]["statistical_parity_difference"]["value"] == pytest.approx(spd)


@pytest.mark.lifecycle
def test_each_scored_day_holds_exactly_its_top_k(credit, tmp_path):
    _, raw, data = credit
    raw = {**raw, "model": {**raw["model"], "selection": "top_k", "top_k": 40, "expected_daily_rows": 300}}
    (tmp_path / "rank.yaml").write_text(yaml.safe_dump(raw))
    policy = load_policy(tmp_path / "rank.yaml")
    store = LocalStore(tmp_path / "store")
    recorded = lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r"))
    assert recorded.decision == "deployed"
    day = date(2026, 7, 1)
    batch = data.sample(n=300, random_state=3).reset_index(drop=True)
    monitoring.score_day(store, policy, day, batch)
    log = pd.read_parquet(io.BytesIO(store.get(f"predictions/model=credit/date={day}/part.parquet")))
    assert int(log["decision"].sum()) == 40
    top = log.nlargest(40, "score")
    assert set(top["application_id"]) == set(log.loc[log["decision"] == 1, "application_id"])
    # the gate judged the same share of its test split: 40/300 of it, rounded up
    gate = json.loads(store.get("runs/nb/r/gate.json"))
    assert gate["selection"]["rule"] == "top_k"
    assert gate["selection"]["selected"] >= math.ceil(40 / 300 * gate["selection"]["rows"])
    # one record at a time has no day to rank: the server decides at the gate's cutoff
    from fairgate.governance import registry
    from fairgate.integrations import serving

    version = registry.production_version(store, "credit")
    folder = serving.write_bundle(
        store, policy, version, tmp_path / "bundle", policy_file=(tmp_path / "rank.yaml").read_bytes()
    )
    served = serving.load({f: str(folder / f) for f in (*serving.FILES, *serving.OPTIONAL_FILES)}, version=version)
    answered = serving.answer(served, batch.head(50), reasons=False)
    assert (answered["decision"] == (answered["score"] >= gate["selection"]["cutoff"]).astype(int)).all()
