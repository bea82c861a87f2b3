"""Recourse against independent answers: for a logistic regression, the closed form from its
coefficients (the decision function is ``w · φ(x) + b``, so the cheapest change is worked out by
hand from the weights, the scaler and the bounds); for a gradient-boosted model, the full grid
searched by brute force, against which the bounded search's optimality gap is measured."""

from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import pytest
import yaml
from tests.support.policies import synthetic_credit_policy

from fairgate.cli.main import main
from fairgate.data.features import feature_frame
from fairgate.errors import PolicyError
from fairgate.models import recourse, training
from fairgate.policy.loader import load_policy, parse_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore

THRESHOLD = 0.5


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recourse")
    path, data = synthetic_credit_policy(tmp, 4000, seed=21)
    raw = yaml.safe_load(path.read_text())
    return {"tmp": tmp, "raw": raw, "data": data}


def _policy(credit, actionable, **extra):
    raw = json.loads(json.dumps(credit["raw"]))
    raw["recourse"] = {"actionable": actionable, **extra}
    return parse_policy(raw)


def _fitted(credit, policy, estimator=None):
    pipe = training.build_pipeline(policy, estimator=estimator)
    pipe.fit(feature_frame(credit["data"], policy), credit["data"]["approved"])
    return pipe


def _by_hand(pipe, row, policy):
    """The logistic regression's decision function and weights, read off the fitted parts."""
    pre, clf = pipe[:-1], pipe[-1]
    names = list(pre.get_feature_names_out())
    phi = pre.transform(feature_frame(row, policy))
    phi = phi.toarray() if hasattr(phi, "toarray") else phi
    w = dict(zip(names, clf.coef_[0], strict=True))
    scaler = pipe.named_steps["features"].named_transformers_["numeric"]
    numeric = [n.removeprefix("numeric__") for n in names if n.startswith("numeric__")]
    per_unit = {c: w[f"numeric__{c}"] / scaler.scale_[i] for i, c in enumerate(numeric)}
    return float(phi[0] @ clf.coef_[0] + clf.intercept_[0]), per_unit, w


def _unfavourable(pipe, policy, data, n=8):
    scores = pipe.predict_proba(feature_frame(data, policy))[:, 1]
    return data[scores < THRESHOLD].head(n)


def _scale(data, columns):
    return {c: float(data[c].std(ddof=0)) for c in columns}


def test_one_input_exact_against_the_closed_form(credit):
    policy = _policy(credit, {"income": {"direction": "increase"}})
    pipe = _fitted(credit, policy)
    scale = _scale(credit["data"], policy.numeric)
    for _, r in _unfavourable(pipe, policy, credit["data"]).iterrows():
        row = r.to_frame().T.infer_objects()
        d, per_unit, _ = _by_hand(pipe, row, policy)
        delta = (math.log(THRESHOLD / (1 - THRESHOLD)) - d) / per_unit["income"]  # income raises the score
        found = recourse.compute(pipe, r.to_dict(), policy, scale=scale)
        assert found.feasible and found.method == "exact (linear model)"
        [change] = found.changes
        assert change.column == "income"
        assert float(change.after) - float(change.before) == pytest.approx(delta, rel=1e-6)
        assert found.cost == pytest.approx(delta / scale["income"], rel=1e-5)
        assert found.score == pytest.approx(THRESHOLD, abs=1e-6)


def test_two_inputs_with_a_bound_spend_the_cheaper_one_first(credit):
    policy = _policy(credit, {"income": {"direction": "increase"}, "loan_amount": {"direction": "decrease", "min": 0}})
    pipe = _fitted(credit, policy)
    scale = _scale(credit["data"], policy.numeric)
    r = _unfavourable(pipe, policy, credit["data"]).iloc[0]
    row = r.to_frame().T.infer_objects()
    d, per_unit, _ = _by_hand(pipe, row, policy)
    need = -d
    gain = {
        "income": per_unit["income"] * scale["income"],
        "loan_amount": -per_unit["loan_amount"] * scale["loan_amount"],
    }
    assert gain["income"] > 0 and gain["loan_amount"] > 0  # both help, in their allowed directions
    first, second = sorted(gain, key=gain.get, reverse=True)
    reach = {"income": math.inf, "loan_amount": float(r["loan_amount"])}
    spent_first = min(need / abs(per_unit[first]), reach[first])
    rest = need - abs(per_unit[first]) * spent_first
    spent_second = min(rest / abs(per_unit[second]), reach[second]) if rest > 0 else 0.0
    expected = spent_first / scale[first] + spent_second / scale[second]
    found = recourse.compute(pipe, r.to_dict(), policy, scale=scale)
    assert found.feasible and found.cost == pytest.approx(expected, rel=1e-5)
    # Capping the cheaper input below what it alone needs forces the second one in.
    capped = _policy(
        credit,
        {
            first: {
                "direction": "increase" if first == "income" else "decrease",
                **(
                    {"max": float(r[first]) + 0.3 * need / abs(per_unit[first])}
                    if first == "income"
                    else {"min": float(r[first]) - 0.3 * need / abs(per_unit[first])}
                ),
            },
            second: {
                "direction": "increase" if second == "income" else "decrease",
                **({"min": -1e12} if second == "loan_amount" else {}),
            },
        },
    )  # no bound
    both = recourse.compute(pipe, r.to_dict(), capped, scale=scale)
    assert sorted(c.column for c in both.changes) == sorted([first, second])
    assert both.cost == pytest.approx(
        0.3 * need / abs(per_unit[first]) / scale[first] + 0.7 * need / abs(per_unit[second]) / scale[second], rel=1e-5
    )


def test_a_category_and_a_number_exact_over_every_category(credit):
    policy = _policy(
        credit,
        {"savings_band": {"values": ["low", "medium", "high"]}, "income": {"direction": "increase"}},
        categorical_cost=0.5,
    )
    pipe = _fitted(credit, policy)
    scale = _scale(credit["data"], policy.numeric)
    target = math.log(THRESHOLD / (1 - THRESHOLD))
    for _, r in _unfavourable(pipe, policy, credit["data"], n=5).iterrows():
        row = r.to_frame().T.infer_objects()
        d, per_unit, w = _by_hand(pipe, row, policy)
        costs = []
        for band in ("low", "medium", "high"):
            shift = w[f"categorical__savings_band_{band}"] - w[f"categorical__savings_band_{r['savings_band']}"]
            need = target - d - shift
            switch = 0.5 if band != r["savings_band"] else 0.0
            costs.append(switch + max(need, 0) / per_unit["income"] / scale["income"])
        found = recourse.compute(pipe, r.to_dict(), policy, scale=scale)
        assert found.cost == pytest.approx(min(costs), rel=1e-5)


def test_steps_round_up_and_the_model_agrees(credit):
    policy = _policy(credit, {"income": {"direction": "increase", "step": 1000}})
    pipe = _fitted(credit, policy)
    r = _unfavourable(pipe, policy, credit["data"]).iloc[0]
    found = recourse.compute(pipe, r.to_dict(), policy, scale=_scale(credit["data"], policy.numeric))
    delta = float(found.changes[0].after) - float(r["income"])
    assert delta % 1000 == pytest.approx(0, abs=1e-6) and found.score >= THRESHOLD
    assert "income up by" in recourse.sentence(found, policy)


def test_no_recourse_within_bounds_is_an_answer(credit):
    policy = _policy(credit, {"income": {"direction": "increase", "max": 0}})
    pipe = _fitted(credit, policy)
    r = _unfavourable(pipe, policy, credit["data"]).iloc[0]
    found = recourse.compute(pipe, r.to_dict(), policy, scale=_scale(credit["data"], policy.numeric))
    assert not found.feasible and found.changes == []
    assert recourse.sentence(found, policy).startswith("No change of the inputs you can act on")


def test_refusals(credit):
    policy = _policy(credit, {"income": {"direction": "increase"}, "postcode_area": {"values": ["east", "west"]}})
    pipe = _fitted(credit, policy)
    scores = pipe.predict_proba(feature_frame(credit["data"], policy))[:, 1]
    favourable = credit["data"][scores >= THRESHOLD].iloc[0]
    with pytest.raises(recourse.RecourseError, match="already favourable"):
        recourse.compute(pipe, favourable.to_dict(), policy, scale=_scale(credit["data"], policy.numeric))
    r = _unfavourable(pipe, policy, credit["data"]).iloc[0]
    found = recourse.compute(
        pipe, r.to_dict(), policy, scale=_scale(credit["data"], policy.numeric), proxies=["postcode_area"]
    )
    assert all(c.column != "postcode_area" for c in found.changes)
    assert any("postcode_area is a proxy" in n for n in found.notes)
    for actionable, message in [
        ({"gender": {"values": ["male"]}}, "protected attribute"),
        ({"salary": {}}, "unknown entries"),
        ({"savings_band": {"min": 1, "values": ["low"]}}, "is a category"),
        ({"income": {"values": [1]}}, "applies to categories"),
        ({"income": {"min": 5, "max": 1}}, "above max"),
    ]:
        with pytest.raises(PolicyError, match=message):
            _policy(credit, actionable)
    with pytest.raises(PolicyError, match="recourse"):
        _policy(credit, {"income": {"direction": "upwards"}})


def _grid_by_hand(pipe, record, policy, scale):
    """Every change of the actionable inputs on the search grid, scored with the model here: the cheapest
    favourable one (cost, setting), or None."""
    import itertools

    import pandas as pd

    row = pd.DataFrame([record])
    spec, _ = recourse.actionable(policy, [])
    values = {
        c: [record[c], *recourse._grid(float(record[c]), s, policy.recourse.search_steps)] for c, s in spec.items()
    }
    combos = list(itertools.product(*values.values()))
    frame = pd.concat([row] * len(combos), ignore_index=True)
    for j, c in enumerate(values):
        frame[c] = [combo[j] for combo in combos]
    ok = pipe.predict_proba(feature_frame(frame, policy))[:, 1] >= THRESHOLD
    costs = [sum(abs(v - record[c]) / scale[c] for c, v in zip(values, combo, strict=True)) for combo in combos]
    found = [(cost, combo) for cost, combo, good in zip(costs, combos, ok, strict=True) if good]
    return min(found, key=lambda f: f[0]) if found else None


def test_a_small_grid_is_searched_exhaustively_and_a_large_one_in_pairs(credit, monkeypatch):
    """Gradient boosting: a grid of 124 changes is searched whole, so the answer is the cheapest favourable
    change on it, found here by scoring every grid point; with the exhaustive limit below the grid's size
    the search changes at most two inputs, is never cheaper, equal whenever the optimum moves two inputs
    or fewer, and says it is not proven least cost."""
    policy = _policy(
        credit,
        {
            "income": {"direction": "increase", "max": 80000},
            "loan_amount": {"direction": "decrease", "min": 500},
            "duration_months": {"direction": "decrease", "min": 12},
        },
        search_steps=4,
    )
    pipe = _fitted(credit, policy, estimator="hist_gradient_boosting")
    scale = _scale(credit["data"], policy.numeric)
    rows = _unfavourable(pipe, policy, credit["data"], n=12)
    feasible = 0
    for record in rows.to_dict("records"):
        found = recourse.compute(pipe, record, policy, scale=scale)
        best = _grid_by_hand(pipe, record, policy, scale)
        assert found.method.startswith("exhaustive over the search grid")
        assert found.feasible == (best is not None)
        if best is not None:
            feasible += 1
            assert found.cost == pytest.approx(best[0], abs=1e-6) and found.score >= THRESHOLD
    assert feasible, "no row had a recourse on the grid"

    monkeypatch.setattr(recourse, "EXHAUSTIVE_LIMIT", 10)
    gaps = []
    for record in rows.to_dict("records"):
        found = recourse.compute(pipe, record, policy, scale=scale)
        best = _grid_by_hand(pipe, record, policy, scale)
        assert found.method == "bounded search (at most 2 inputs changed; not proven least cost)"
        if best is None:
            assert not found.feasible
            continue
        moved = sum(v != record[c] for c, v in zip(("income", "loan_amount", "duration_months"), best[1], strict=True))
        if moved <= 2:
            assert found.feasible and found.cost == pytest.approx(best[0], abs=1e-6)
        if found.feasible:
            assert found.cost >= best[0] - 1e-6 and found.score >= THRESHOLD  # the cost is rounded to 6 places
            gaps.append(found.cost - best[0])
    print(f"bounded search optimality gap over {len(gaps)} rows: mean {np.mean(gaps):.4f}, max {max(gaps):.4f}")


def _by_enumeration(need, levers):
    """The least cost by brute force: every whole-unit combination of the stepped levers, the rest of the
    need met by the continuous ones in order of gain per cost (the linear programme's exact answer)."""
    import itertools

    whole = [lv for lv in levers if lv.whole]
    smooth = sorted((lv for lv in levers if not lv.whole), key=lambda lv: lv.gain / lv.cost, reverse=True)
    best = None
    for units in itertools.product(*(range(int(lv.units) + 1) for lv in whole)):
        rest = need - sum(u * lv.gain for u, lv in zip(units, whole, strict=True))
        cost = sum(u * lv.cost for u, lv in zip(units, whole, strict=True))
        for lv in smooth:
            if rest <= 0:
                break
            take = min(rest / lv.gain, lv.units)
            rest -= take * lv.gain
            cost += take * lv.cost
        if rest <= 1e-12 and (best is None or cost < best):
            best = cost
    return best


def test_least_cost_equals_brute_force_on_random_instances():
    """300 random covering knapsacks, one to four inputs, stepped and continuous, bounded and not: the
    integer program's cost equals the enumeration's, and its answer covers the need within bounds."""
    rng = np.random.default_rng(7)
    solved = infeasible = used_milp = 0
    for _ in range(300):
        levers = [
            recourse.Lever(
                f"x{i}",
                gain=float(rng.uniform(0.05, 1.5)),
                cost=float(rng.uniform(0.05, 1.0)),
                units=float(rng.integers(1, 9)) if whole or rng.random() < 0.7 else math.inf,
                whole=bool(whole),
            )
            for i, whole in enumerate(rng.random(int(rng.integers(1, 5))) < 0.7)
        ]
        need = float(rng.uniform(0.1, 6.0))
        expected = _by_enumeration(need, levers)
        units = recourse.least_cost(need, levers)
        if expected is None:
            assert units is None
            infeasible += 1
            continue
        assert units is not None
        solved += 1
        assert sum(u * lv.gain for u, lv in zip(units, levers, strict=True)) >= need - 1e-7
        for u, lv in zip(units, levers, strict=True):
            assert 0 <= u <= lv.units + 1e-9 and (not lv.whole or u == int(u))
        assert sum(u * lv.cost for u, lv in zip(units, levers, strict=True)) == pytest.approx(expected, abs=1e-6)
        used_milp += recourse._fractional(need, levers) is not None and any(
            lv.whole and abs(u - round(u)) > 1e-9
            for u, lv in zip(recourse._fractional(need, levers), levers, strict=True)
        )
    assert solved >= 200 and infeasible > 0 and used_milp >= 100  # every kind of instance was met


def test_whole_steps_are_not_rounded_up_greedily():
    """Need 2.1; input a gains 1.0 per step at 0.20, input b 1.05 per step at 0.22. The best ratio (a) rounded
    up takes three steps at 0.60; two steps of b reach 2.1 at 0.44, the least cost."""
    a = recourse.Lever("a", gain=1.0, cost=0.20, units=10, whole=True)
    b = recourse.Lever("b", gain=1.05, cost=0.22, units=10, whole=True)
    assert recourse.least_cost(2.1 - 1e-9, [a, b]) == [0.0, 2.0]


def test_a_linear_model_with_steps_equals_the_whole_step_grid(credit):
    """Logistic regression, three stepped inputs: the answer equals the cheapest favourable change over
    every whole-step combination within the bounds, scored with the model here (8,000+ per record)."""
    import itertools

    import pandas as pd

    spec = {
        "income": {"direction": "increase", "max": 60000, "step": 2500},
        "loan_amount": {"direction": "decrease", "min": 500, "step": 750},
        "duration_months": {"direction": "decrease", "min": 6, "step": 6},
    }
    policy = _policy(credit, spec)
    pipe = _fitted(credit, policy)
    scale = _scale(credit["data"], policy.numeric)
    compared = 0
    for record in _unfavourable(pipe, policy, credit["data"], n=30).to_dict("records"):
        grids = {
            "income": [record["income"] + 2500 * k for k in range(int((60000 - record["income"]) // 2500) + 1)],
            "loan_amount": [
                record["loan_amount"] - 750 * k for k in range(int((record["loan_amount"] - 500) // 750) + 1)
            ],
            "duration_months": [
                record["duration_months"] - 6 * k for k in range(int((record["duration_months"] - 6) // 6) + 1)
            ],
        }
        combos = list(itertools.product(*grids.values()))
        frame = pd.DataFrame([record] * len(combos))
        for j, c in enumerate(grids):
            frame[c] = [combo[j] for combo in combos]
        d = pipe.decision_function(feature_frame(frame, policy))
        costs = np.array(
            [sum(abs(v - record[c]) / scale[c] for c, v in zip(grids, combo, strict=True)) for combo in combos]
        )
        ok = d >= recourse.MARGIN
        found = recourse.compute(pipe, record, policy, scale=scale)
        assert found.feasible == bool(ok.any())
        if ok.any():
            compared += 1
            assert found.cost == pytest.approx(costs[ok].min(), abs=2e-6)
    assert compared >= 10


@pytest.mark.lifecycle
def test_explain_recourse_from_the_cli(credit, tmp_path, capsys):
    """A deployed model, a scored day, and `fairgate explain ROW --recourse` for an unfavourable record."""
    from fairgate_dev.synthetic import write_feed

    write_feed(str(tmp_path / "feed"), "2026-06-01", 1, 300, seed=22)
    raw = json.loads(json.dumps(credit["raw"]))
    raw["recourse"] = {"actionable": {"income": {"direction": "increase"}}}
    raw["audit"].update({"incoming": str(tmp_path / "feed")})
    (tmp_path / "credit.yaml").write_text(yaml.safe_dump(raw))
    policy = load_policy(tmp_path / "credit.yaml")
    store = LocalStore(tmp_path / "store")
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r")).decision == "deployed"
    monitoring.score(store, policy, date(2026, 6, 1))
    import pandas as pd

    log = pd.read_parquet(tmp_path / "store/predictions/model=credit/date=2026-06-01/part.parquet")
    row = log[log["decision"] == 0].iloc[0]
    args = [
        "--artifact-root",
        str(store.root),
        "--policy",
        str(tmp_path / "credit.yaml"),
        "explain",
        str(row["application_id"]),
        "--recourse",
    ]
    assert main([*args, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)["recourse"]
    assert answer["feasible"] and answer["changes"][0]["column"] == "income"
    assert answer["changes"][0]["from"] == pytest.approx(float(row["income"]))
    assert main(args) == 0
    assert "Changing income up by" in capsys.readouterr().out
    favoured = log[log["decision"] == 1].iloc[0]
    assert main([*args[:-2], str(favoured["application_id"]), "--recourse"]) == 1
    assert "decided favourably" in capsys.readouterr().err


@pytest.mark.lifecycle
def test_the_audit_reports_recourse_per_group_against_the_closed_form(credit, tmp_path):
    """The nightly audit's recourse figures: whether each unfavourable decision has recourse within the
    income bound, and what it costs, worked out here from the deployed model's coefficients."""
    from fairgate.governance import registry
    from fairgate.monitoring.prediction_log import read_window

    write = __import__("fairgate_dev.synthetic", fromlist=["write_feed"]).write_feed
    write(str(tmp_path / "feed"), "2026-06-01", 2, 400, seed=23)
    raw = json.loads(json.dumps(credit["raw"]))
    raw["recourse"] = {"actionable": {"income": {"direction": "increase", "max": 45000}}}
    raw["audit"].update({"incoming": str(tmp_path / "feed"), "window_days": 2, "label_lag_days": 0})
    (tmp_path / "deploy.yaml").write_text(yaml.safe_dump(raw))
    store = LocalStore(tmp_path / "store")
    lifecycle.run_in_process(store, load_policy(tmp_path / "deploy.yaml"), RunInfo(dag_id="nb", run_id="r"))
    raw["recourse"]["max_share_gap"] = 0.01  # judged by the audit (the gate would judge it too)
    (tmp_path / "credit.yaml").write_text(yaml.safe_dump(raw))
    policy = load_policy(tmp_path / "credit.yaml")
    for day in (date(2026, 6, 1), date(2026, 6, 2)):
        monitoring.score(store, policy, day)
    result = monitoring.audit_day(store, policy, date(2026, 6, 2), run_id="a")

    version = registry.production_version(store, "credit")
    pipe = registry.load_model(store, "credit", version)
    window, _, _ = read_window(store, "credit", date(2026, 6, 2), 2, row_key=policy.dataset.row_key)
    snapshot = __import__("pandas").read_parquet(store.root / "runs/nb/r/snapshot.parquet")
    split = __import__("pandas").read_parquet(store.root / "runs/nb/r/split.parquet")["split"].to_numpy()
    s = float(snapshot.loc[split == "train", "income"].std(ddof=0))  # the cost unit: the training split's SD
    rows = window[window["decision"] == 0].reset_index(drop=True)
    d = np.array([_by_hand(pipe, rows.iloc[[i]], policy)[0] for i in range(len(rows))])
    per_unit = _by_hand(pipe, rows.iloc[[0]], policy)[1]["income"]
    needed = -d / per_unit
    ok = needed <= 45000 - rows["income"].to_numpy()
    cost = needed / s
    rec = result["recourse"]
    assert rec["measured_on"] == f"{len(rows)} of {len(rows)} unfavourable decisions"
    for side, gender in (("privileged", "male"), ("unprivileged", "female")):
        mask = (rows["gender"] == gender).to_numpy()
        got = rec["comparisons"]["gender"][side]
        assert (got["unfavourable"], got["with_recourse"]) == (int(mask.sum()), int((ok & mask).sum()))
        assert got["median_cost"] == pytest.approx(float(np.median(cost[ok & mask])), rel=1e-5)
        assert got["share_ci"][0] <= got["share"] <= got["share_ci"][1]
    gap = rec["comparisons"]["gender"]["share_gap"]["value"]
    assert gap == pytest.approx(
        ok[(rows["gender"] == "female").to_numpy()].mean() - ok[(rows["gender"] == "male").to_numpy()].mean()
    )
    assert (abs(gap) > 0.01) == any("recourse share gap" in r for r in result["reasons"])
    if abs(gap) > 0.01:
        assert result["status"] == "degraded"


@pytest.mark.lifecycle
def test_the_vectorised_linear_answer_is_the_one_row_answer(credit):
    policy = _policy(
        credit,
        {
            "savings_band": {"values": ["medium", "high"]},
            "income": {"direction": "increase", "max": 60000, "step": 500},
            "loan_amount": {"direction": "decrease", "min": 1000},
        },
        categorical_cost=0.3,
    )
    pipe = _fitted(credit, policy)
    scale = _scale(credit["data"], policy.numeric)
    rows = _unfavourable(pipe, policy, credit["data"], n=40).reset_index(drop=True)
    spec, _ = recourse.actionable(policy, [])
    feasible, cost = recourse.linear_batch(pipe, rows, policy, spec, scale)
    assert 0 < feasible.sum() < len(rows) or feasible.all()
    for i, record in enumerate(rows.to_dict("records")):
        one = recourse.compute(pipe, record, policy, scale=scale)
        assert one.feasible == bool(feasible[i])
        if one.feasible:
            assert one.cost == pytest.approx(cost[i], abs=2e-6)  # the one-row cost is rounded to 6 places


@pytest.mark.lifecycle
def test_the_fairness_gate_judges_the_recourse_gap(credit, tmp_path):
    """With recourse.max_share_gap, the gate measures recourse on the test split's unfavourable decisions
    and judges the gap between groups like a metric; the gap is recomputed here from the coefficients."""
    from fairgate.governance import evidence

    raw = json.loads(json.dumps(credit["raw"]))
    raw["recourse"] = {"actionable": {"income": {"direction": "increase", "max": 40000}}, "max_share_gap": 0.05}
    (tmp_path / "credit.yaml").write_text(yaml.safe_dump(raw))
    policy = load_policy(tmp_path / "credit.yaml")
    store = LocalStore(tmp_path / "store")
    lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r"))
    rec = evidence.find(store, "credit", "r")["record"]
    import io

    import pandas as pd

    snap = pd.read_parquet(io.BytesIO(store.get("runs/nb/r/snapshot.parquet")))
    split = pd.read_parquet(io.BytesIO(store.get("runs/nb/r/split.parquet")))["split"].to_numpy()
    test = snap[split == "test"].reset_index(drop=True)
    pipe = training.load_model_bytes(
        store.get(store.key_of(rec["model"]["uri"])), expected_sha256=rec["model"]["sha256"], where="test"
    )
    d = pipe.decision_function(feature_frame(test, policy))
    per_unit = _by_hand(pipe, test.iloc[[0]], policy)[1]["income"]
    unfavourable = d < 0
    ok = (-d / per_unit <= 40000 - test["income"].to_numpy()) & unfavourable
    women, men = (test["gender"] == "female").to_numpy(), (test["gender"] == "male").to_numpy()
    gap = ok[women].sum() / (unfavourable & women).sum() - ok[men].sum() / (unfavourable & men).sum()
    assert rec["recourse"]["comparisons"]["gender"]["share_gap"]["value"] == pytest.approx(gap, abs=1e-9)
    [finding] = [f for f in json.loads(store.get("runs/nb/r/gate.json"))["findings"] if f["scope"] == "recourse gender"]
    assert finding["message"].startswith(f"recourse_share_gap={gap:.4f}")
    low, high = (rec["recourse"]["comparisons"]["gender"]["share_gap"][k] for k in ("ci_low", "ci_high"))
    expected = (
        "fail"
        if high < -0.05 or low > 0.05
        else "pass"
        if low >= -0.05 and high <= 0.05 and 0.05 - abs(gap) >= policy.fairness.review_margin
        else "review"
    )
    assert finding["outcome"] == expected


@pytest.mark.lifecycle
def test_the_gate_the_audit_and_the_served_model_cost_recourse_in_one_unit(credit, tmp_path):
    """The cost unit is each number's SD over the training split, wherever recourse is computed: the gate's
    gate.json, the manifest the audit and contests read, the served model's files, and (for a manifest
    written before it kept the unit) the run's stored split."""
    import pandas as pd

    from fairgate.governance import registry
    from fairgate.integrations import serving
    from fairgate.monitoring.prediction_log import recourse_context

    raw = json.loads(json.dumps(credit["raw"]))
    raw["recourse"] = {"actionable": {"income": {"direction": "increase"}}}
    (tmp_path / "credit.yaml").write_text(yaml.safe_dump(raw))
    policy = load_policy(tmp_path / "credit.yaml")
    store = LocalStore(tmp_path / "store")
    lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r"))
    snapshot = pd.read_parquet(store.root / "runs/nb/r/snapshot.parquet")
    split = pd.read_parquet(store.root / "runs/nb/r/split.parquet")["split"].to_numpy()
    by_hand = {c: float(snapshot.loc[split == "train", c].astype(float).std(ddof=0)) for c in policy.numeric}
    assert by_hand["income"] != pytest.approx(float(snapshot["income"].std(ddof=0)), rel=1e-9)  # not the snapshot's
    gate = json.loads((store.root / "runs/nb/r/gate.json").read_text())
    assert gate["recourse_cost_unit"] == pytest.approx(by_hand, rel=1e-12)
    version = registry.production_version(store, "credit")
    manifest = registry.read_manifest(store, "credit", version)
    assert manifest["recourse_cost_unit"] == pytest.approx(by_hand, rel=1e-12)
    assert recourse_context(store, policy, version)[1] == pytest.approx(by_hand, rel=1e-12)
    folder = serving.write_bundle(store, policy, version, tmp_path / "served")
    assert json.loads((folder / "recourse.json").read_text())["scale"] == pytest.approx(by_hand, rel=1e-12)

    old = {k: v for k, v in manifest.items() if k != "recourse_cost_unit"}  # as registered by earlier code
    key = f"{registry.version_prefix('credit', version)}/manifest.json"
    store.put(key, json.dumps(old).encode())
    assert recourse_context(store, policy, version)[1] == pytest.approx(by_hand, rel=1e-12)


def test_served_recourse_stops_at_its_time_budget_with_a_clear_refusal(credit, monkeypatch):
    """A request's recourse searches are bounded in time: past the budget the request is refused (400)."""
    from fairgate.errors import RequestError
    from fairgate.integrations import serving

    policy = _policy(credit, {"income": {"direction": "increase"}})
    pipe = _fitted(credit, policy)
    rows = _unfavourable(pipe, policy, credit["data"], n=3).reset_index(drop=True)
    served = serving.Served(
        model=pipe,
        policy=policy,
        version="v",
        reference={},
        inputs={},
        recourse={"scale": _scale(credit["data"], policy.numeric), "proxies": []},
    )
    decisions = np.zeros(len(rows), dtype=int)
    answered = serving._recourse(served, rows, decisions)  # within the budget: one sentence per record
    assert len(answered) == 3 and all(isinstance(a, str) for a in answered)
    monkeypatch.setattr(serving, "MAX_RECOURSE_SECONDS", -1)  # a budget already spent
    with pytest.raises(RequestError, match=r"Recourse for this request took over -1 s \(stopped at record 0 of 3\)"):
        serving._recourse(served, rows, decisions)


def test_one_records_search_stops_at_its_deadline_between_model_calls(credit, monkeypatch):
    """The budget is checked inside a record's search, not only between records: the
    grid search scores its candidate changes in chunks and stops before the chunk that starts past the deadline."""
    from fairgate.errors import RecourseOutOfTime

    policy = _policy(
        credit,
        {"income": {"direction": "increase", "max": 80000}, "loan_amount": {"direction": "decrease", "min": 500}},
        search_steps=4,
    )
    tree, linear = _fitted(credit, policy, estimator="hist_gradient_boosting"), _fitted(credit, policy)
    scale = _scale(credit["data"], policy.numeric)
    record = _unfavourable(tree, policy, credit["data"], n=1).iloc[0].to_dict()
    assert recourse.compute(tree, record, policy, scale=scale, deadline=None).method.startswith("exhaustive")

    clock = iter([0.0, 100.0])  # the first check is in time, the next (after one chunk) is not
    monkeypatch.setattr(recourse, "SEARCH_CHUNK", 1)
    monkeypatch.setattr(recourse.time, "monotonic", lambda: next(clock))
    calls = []
    score = recourse._score
    monkeypatch.setattr(recourse, "_score", lambda *a: calls.append(len(a[1])) or score(*a))
    with pytest.raises(RecourseOutOfTime, match="time budget"):
        recourse.compute(tree, record, policy, scale=scale, deadline=50.0)
    assert calls == [1, 1]  # the record's own score, then one chunk of one candidate: stopped mid-search
    monkeypatch.setattr(recourse.time, "monotonic", lambda: 100.0)
    linear_record = _unfavourable(linear, policy, credit["data"], n=1).iloc[0].to_dict()
    with pytest.raises(RecourseOutOfTime):
        recourse.compute(linear, linear_record, policy, scale=scale, deadline=50.0)
