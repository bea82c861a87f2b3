"""Audit building blocks: PSI by hand, interval coverage on simulated data, safe scoring, simulation."""

from __future__ import annotations

import io
import math
from datetime import date

import numpy as np
import pytest
from tests.support.policies import edited

from fairgate.data.simulation import day_batch
from fairgate.fairness.metrics import newcombe_interval, ratio_interval, wilson_interval
from fairgate.governance import approval, registry
from fairgate.monitoring.audit import feature_psi, psi
from fairgate.policy.loader import load_policy
from fairgate.stages.monitoring import score_day


def test_psi_by_hand():
    # shares 0.5/0.5 -> 0.25/0.75: (0.25-0.5)ln(0.25/0.5) + (0.75-0.5)ln(0.75/0.5)
    expected = (0.25 - 0.5) * math.log(0.5) + (0.75 - 0.5) * math.log(1.5)
    assert psi([50, 50], [25, 75]) == pytest.approx(expected, abs=1e-12)
    assert psi([10, 20, 30], [10, 20, 30]) == 0.0


def test_feature_psi_is_zero_for_the_same_sample_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    import pandas as pd

    ref = pd.Series(rng.normal(0, 1, 5000))
    assert feature_psi(ref, ref, numeric=True) == pytest.approx(0.0, abs=1e-12)
    assert feature_psi(ref, pd.Series(rng.normal(1, 1, 5000)), numeric=True) > 0.25
    cats = pd.Series(["a"] * 50 + ["b"] * 50)
    assert feature_psi(cats, pd.Series(["a"] * 25 + ["b"] * 75), numeric=False) == pytest.approx(
        psi([50, 50], [25, 75])
    )


def coverage(make_interval, truth, draws):
    hits = sum(lo <= truth <= hi for lo, hi in (make_interval(*d) for d in draws))
    return hits / len(draws)


def test_intervals_cover_the_true_value_at_about_the_stated_rate():
    rng = np.random.default_rng(2024)
    n1, p1, n2, p2, reps = 300, 0.12, 500, 0.30, 2000
    x1, x2 = rng.binomial(n1, p1, reps), rng.binomial(n2, p2, reps)
    c_rate = coverage(lambda x: wilson_interval(x, n1), p1, [(x,) for x in x1])
    c_diff = coverage(lambda a, b: newcombe_interval(a, n1, b, n2), p1 - p2, list(zip(x1, x2, strict=True)))
    c_ratio = coverage(lambda a, b: ratio_interval(a, n1, b, n2), p1 / p2, list(zip(x1, x2, strict=True)))
    for c in (c_rate, c_diff, c_ratio):
        assert 0.93 <= c <= 0.97, (c_rate, c_diff, c_ratio)


def test_simulated_batches_are_deterministic_and_change_as_documented():
    policy = load_policy()
    a = day_batch(date(2026, 3, 1), policy, rows=1000)
    assert a.equals(day_batch(date(2026, 3, 1), policy, rows=1000))
    assert not a.equals(day_batch(date(2026, 3, 2), policy, rows=1000))
    mix = day_batch(date(2026, 3, 1), policy, scenario="group_mix_shift", rows=1000)
    assert (mix["sex"] == "Female").mean() == pytest.approx(0.7)
    assert (a["sex"] == "Female").mean() < 0.45
    shifted = day_batch(date(2026, 3, 1), policy, scenario="label_shift", rows=1000)
    women = shifted["sex"] == "Female"
    assert (shifted.loc[women, "income"] == ">50K").mean() > (a.loc[a["sex"] == "Female", "income"] == ">50K").mean()


def test_scoring_refuses_a_corrupt_production_model_and_names_it(store, adult):
    from fairgate.errors import IntegrityError
    from fairgate.models.training import dump_model, fit

    policy = load_policy()
    data = dump_model(fit(adult.head(2000), policy))
    v = registry.register(store, policy.model_name, data, {"approved": True, "registered_at": "1"})["version"]
    approval.deploy_recorded(
        store, policy.model_name, v, run_id="r", dag_id="test", gate_outcome="pass", replaces=None, approver="t"
    )
    batch = day_batch(date(2026, 3, 1), policy, rows=100)
    out = score_day(store, policy, date(2026, 3, 1), batch)
    assert out["rows"] == 100 and out["model_version"] == v
    store.put(f"registry/{policy.model_name}/versions/{v}/model.skops", data[:-10] + b"0123456789")
    # refused before it is loaded: the promotion record binds the model file's sha256 (the version)
    with pytest.raises(IntegrityError, match=f"model.skops of '{policy.model_name}' version {v[:12]}"):
        score_day(store, policy, date(2026, 3, 2), batch)


def test_read_window_looks_up_outcomes_by_key_in_any_order(store):
    import io

    import pandas as pd

    from fairgate.errors import StageError
    from fairgate.monitoring.prediction_log import partition_key, read_window

    def put(key, df):
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        store.put(key, buf.getvalue())

    day = date(2026, 3, 2)
    put(
        partition_key("predictions", "m", day),
        pd.DataFrame(
            {
                "k": ["a", "b", "c", "d"],
                "model_version": "v1",
                "score": 0.5,
                "decision": [1, 0, 1, 0],
                "x": [1, 2, 3, 4],
            }
        ),
    )
    put(partition_key("labels", "m", day), pd.DataFrame({"k": ["d", "b"], "outcome": [1, 0]}))
    df, days, versions = read_window(store, "m", day, 1, row_key="k")
    assert days == ["2026-03-02"] and versions == ["v1"]
    assert list(df["x"]) == [1, 2, 3, 4]
    assert df["outcome"].isna().tolist() == [True, False, True, False]
    assert df.loc[df["x"] == 4, "outcome"].item() == 1 and df.loc[df["x"] == 2, "outcome"].item() == 0
    # Not yet arrived: with a one-day lag the same outcomes are not used.
    assert read_window(store, "m", day, 1, row_key="k", label_lag_days=1)[0]["outcome"].isna().all()
    put(partition_key("labels", "m", day), pd.DataFrame({"k": ["d", "d"], "outcome": [1, 0]}))
    with pytest.raises(StageError, match="duplicate values in 'k'"):
        read_window(store, "m", day, 1, row_key="k")


def test_audit_history_keeps_the_last_audits_up_to_a_date(store):
    import json
    from datetime import timedelta

    from fairgate.monitoring.prediction_log import audit_history

    start = date(2026, 1, 1)
    for i in range(40):
        d = (start + timedelta(days=i)).isoformat()
        store.put(f"audits/model=m/date={d}/audit.json", json.dumps({"date": d}).encode())
    got = [a["date"] for a in audit_history(store, "m", until=start + timedelta(days=34), last=30)]
    assert got == [(start + timedelta(days=i)).isoformat() for i in range(5, 35)]


def test_scoring_refuses_records_without_an_input_column_and_writes_nothing(store, adult):
    from fairgate.errors import NotFoundError, StageError
    from fairgate.models.training import dump_model, fit
    from fairgate.monitoring.prediction_log import partition_key

    policy = load_policy()
    v = registry.register(
        store, policy.model_name, dump_model(fit(adult.head(2000), policy)), {"approved": True, "registered_at": "1"}
    )["version"]
    approval.deploy_recorded(
        store, policy.model_name, v, run_id="r", dag_id="test", gate_outcome="pass", replaces=None, approver="t"
    )
    batch = day_batch(date(2026, 3, 1), policy, rows=100).drop(columns=["occupation"])
    with pytest.raises(StageError, match=r"input column\(s\) \['occupation'\]"):
        score_day(store, policy, date(2026, 3, 1), batch)
    with pytest.raises(NotFoundError):
        store.get(partition_key("predictions", policy.model_name, date(2026, 3, 1)))


def _tiny_audit_policy():

    from tests.support.fixtures import tiny_policy

    return edited(tiny_policy(), {"audit.window_days": 3, "audit.label_lag_days": 30})


def _predictions(version, female_selected, male_selected, n=20, start=0):
    """A day's prediction log: ``n`` women and ``n`` men, the first k of each selected."""
    import pandas as pd

    sex = ["F"] * n + ["M"] * n
    decision = [int(i < female_selected) for i in range(n)] + [int(i < male_selected) for i in range(n)]
    return pd.DataFrame(
        {
            "id": [f"r{start + i}" for i in range(2 * n)],
            "model_version": version,
            "score": 0.5,
            "decision": decision,
            "sex": sex,
        }
    )


def test_an_audit_over_a_redeploy_judges_the_newer_version_not_the_larger_hash(store):
    """Regression: the audit took sorted(versions)[-1], the lexicographically largest sha256, and pooled versions."""
    import io
    from datetime import timedelta

    from fairgate.monitoring.prediction_log import partition_key
    from fairgate.stages.monitoring import audit_day

    policy = _tiny_audit_policy()
    a, b = (
        registry.register(store, policy.model_name, body, {"approved": True, "registered_at": "1"})["version"]
        for body in (b"model-a", b"model-b")
    )
    older, newer = max(a, b), min(a, b)  # the newer deployment has the smaller hash
    for version, di in ((older, 0.9), (newer, 0.6)):  # the DI each version had at its own gate
        key = f"registry/{policy.model_name}/versions/{version}/manifest.json"
        manifest = registry.read_manifest(store, policy.model_name, version)
        store.put(key, registry.dumps({**manifest, "fairness": {"sex": {"disparate_impact": {"value": di}}}}))
    day3 = date(2026, 3, 3)
    days = {
        day3 - timedelta(days=2): _predictions(older, 10, 10),  # DI 1.0 under the older model
        day3 - timedelta(days=1): _predictions(older, 10, 10, start=40),
        day3: _predictions(newer, 5, 10, start=80),
    }  # DI 0.5 after the redeploy
    for d, frame in days.items():
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        store.put(partition_key("predictions", policy.model_name, d), buf.getvalue())

    result = audit_day(store, policy, day3, run_id="audit")
    assert result["judged_version"] == newer and result["model_versions"] == [older, newer]
    assert result["rows"] == 40  # only the judged version's predictions
    assert result["fairness"]["sex"]["metrics"]["disparate_impact"]["value"] == pytest.approx(5 / 20 / (10 / 20))
    # "change since deployment" against the newer version's own gate figure (0.6), not the older one's (0.9)
    assert result["change_since_deployment"]["sex"]["disparate_impact"] == pytest.approx(0.5 - 0.6)
    per = result["per_version"]
    assert per[older]["rows"] == 80 and per[newer]["rows"] == 40
    assert per[older]["fairness"]["sex"]["disparate_impact"]["value"] == pytest.approx(1.0)
    assert per[newer]["fairness"]["sex"]["disparate_impact"]["value"] == pytest.approx(0.5)


def test_a_rolled_back_version_that_scored_the_newest_day_is_the_one_judged(store):
    import io
    from datetime import timedelta

    from fairgate.monitoring.prediction_log import partition_key
    from fairgate.stages.monitoring import audit_day

    policy = _tiny_audit_policy()
    a, b = (
        registry.register(store, policy.model_name, body, {"approved": True, "registered_at": "1"})["version"]
        for body in (b"model-a", b"model-b")
    )
    day3 = date(2026, 3, 3)
    for i, version in enumerate((a, b, a)):  # deployed a, then b, then rolled back to a
        buf = io.BytesIO()
        _predictions(version, 10, 10, start=40 * i).to_parquet(buf, index=False)
        store.put(partition_key("predictions", policy.model_name, day3 - timedelta(days=2 - i)), buf.getvalue())
    result = audit_day(store, policy, day3, run_id="audit")
    assert result["judged_version"] == a and result["model_versions"] == [b, a] and result["rows"] == 80


def test_re_running_an_audit_date_shows_that_date_once_in_the_trend(store):
    """Regression: history read with <= date, then the new result appended again."""
    import json
    from datetime import timedelta

    from fairgate.monitoring.prediction_log import audit_trend

    start = date(2026, 1, 1)
    for i in range(3):
        d = (start + timedelta(days=i)).isoformat()
        store.put(f"audits/model=m/date={d}/audit.json", json.dumps({"date": d, "status": "healthy"}).encode())
    rerun = {"date": (start + timedelta(days=2)).isoformat(), "status": "degraded"}
    trend = audit_trend(store, "m", rerun)
    assert [(a["date"], a["status"]) for a in trend] == [
        ("2026-01-01", "healthy"),
        ("2026-01-02", "healthy"),
        ("2026-01-03", "degraded"),
    ]
    assert [a["date"] for a in audit_trend(store, "m", rerun, last=2)] == ["2026-01-02", "2026-01-03"]


def test_outcomes_from_their_own_source_are_fetched_once_past_the_lag(store, adult, tmp_path):
    """A feed without the label; outcomes arrive later as date= partitions of another folder."""
    from datetime import timedelta

    import pandas as pd
    from tests.support.policies import default_policy_dict

    from fairgate.errors import StageError
    from fairgate.models.training import dump_model, fit
    from fairgate.monitoring.prediction_log import partition_key
    from fairgate.policy.loader import parse_policy
    from fairgate.stages.monitoring import audit_day

    raw = default_policy_dict()
    raw["audit"].update({"outcomes": str(tmp_path / "outcomes"), "window_days": 3, "label_lag_days": 1})
    policy = parse_policy(raw)
    v = registry.register(
        store, policy.model_name, dump_model(fit(adult.head(2000), policy)), {"approved": True, "registered_at": "1"}
    )["version"]
    approval.deploy_recorded(
        store, policy.model_name, v, run_id="r", dag_id="test", gate_outcome="pass", replaces=None, approver="t"
    )
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(3)]
    arrived = {}
    for i, d in enumerate(days):
        batch = day_batch(d, policy, rows=300)
        score_day(store, policy, d, batch.drop(columns=["income"]))  # no outcomes with the records
        assert not store.exists(partition_key("labels", policy.model_name, d))
        if i < 2:  # outcomes of the first two days have arrived at the source, half of day 2's rows
            rows = batch if i == 0 else batch.iloc[::2]
            (tmp_path / "outcomes" / f"date={d}").mkdir(parents=True)
            rows[["row_id", "income"]].to_csv(tmp_path / "outcomes" / f"date={d}" / "part.csv", index=False)
            arrived[d] = rows
    result = audit_day(store, policy, days[-1], run_id="a")
    assert result["outcomes_fetched"] == [days[0].isoformat(), days[1].isoformat()]
    assert result["rows"] == 900 and result["labeled_rows"] == 300 + 150  # by hand: day 3 is inside the lag
    stored = pd.read_parquet(io.BytesIO(store.get(partition_key("labels", policy.model_name, days[1]))))
    expected = (arrived[days[1]]["income"] == ">50K").astype(int).to_numpy()
    assert list(stored["outcome"]) == list(expected)
    assert audit_day(store, policy, days[-1], run_id="again")["outcomes_fetched"] == []  # copied once

    (tmp_path / "outcomes" / f"date={days[2]}").mkdir()
    arrived_bad = day_batch(days[2], policy, rows=300)[["row_id"]]
    arrived_bad.to_csv(tmp_path / "outcomes" / f"date={days[2]}" / "part.csv", index=False)
    with pytest.raises(StageError, match=r"'audit.outcomes': the outcomes of 2026-03-03 lack column\(s\) \['income'\]"):
        audit_day(store, policy, days[-1] + timedelta(days=1), run_id="late")


def test_outcomes_are_found_by_key_in_any_order_and_taken_as_they_are_when_aligned():
    import pyarrow as pa

    from fairgate.errors import StageError
    from fairgate.monitoring.prediction_log import LABEL_COLUMN, _outcomes_of

    keys = pa.chunked_array([["a", "b"], ["c", "d"]])
    shuffled = pa.table({"k": ["c", "a", "x"], LABEL_COLUMN: pa.array([1, 0, 1], pa.int8())})
    assert _outcomes_of(keys, shuffled, "k", "labels").to_pylist() == [0, None, 1, None]
    aligned = pa.table({"k": ["a", "b", "c", "d"], LABEL_COLUMN: pa.array([1, None, 0, 1], pa.int8())})
    assert _outcomes_of(keys, aligned, "k", "labels").to_pylist() == [1, None, 0, 1]
    twice = pa.table({"k": ["a", "a", "b", "c"], LABEL_COLUMN: pa.array([1, 0, 1, 1], pa.int8())})
    with pytest.raises(StageError, match="labels has duplicate values in 'k'"):
        _outcomes_of(keys, twice, "k", "labels")


def test_batch_scoring_says_which_records_held_a_category_the_model_never_saw(store, adult):
    """The server refuses such a record; a batch scores it (the category has no effect of its own), and
    the day's summary names the column, the count and the values, instead of saying nothing."""
    from fairgate.models.training import dump_model, fit

    policy = load_policy()
    v = registry.register(store, policy.model_name, dump_model(fit(adult.head(2000), policy)), {"approved": True})[
        "version"
    ]
    approval.deploy_recorded(
        store, policy.model_name, v, run_id="r", dag_id="test", gate_outcome="pass", replaces=None, approver="t"
    )
    batch = day_batch(date(2026, 3, 1), policy, rows=100)
    batch.loc[batch.index[:3], "occupation"] = "Astronaut"
    from fairgate.monitoring import scoring

    found = scoring.unseen_categories(batch, adult.head(2000), policy)
    assert found["occupation"] == {"rows": 3, "values": ["Astronaut"]}
    for col in policy.categorical:  # every other column as counted by hand
        new = ~batch[col].astype(str).isin(set(adult.head(2000)[col].astype(str)))
        assert found.get(col, {"rows": 0})["rows"] == int(new.sum())
