"""The audit's fairness figures from one GROUP BY on PostgreSQL equal the Parquet path's on the same log."""

from __future__ import annotations

import io
import uuid
from datetime import date, timedelta

import pandas as pd
import pytest
import yaml
from tests.support.policies import synthetic_credit_policy
from tests.support.stack import PG, require_postgres

from fairgate.fairness.metrics import SCORE_METRICS
from fairgate.fairness.subgroups import discover
from fairgate.monitoring import sql_audit
from fairgate.monitoring.columns import LABEL_COLUMN
from fairgate.monitoring.prediction_log import read_window
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo, read_json
from fairgate.storage.roots import open_store

pytestmark = pytest.mark.integration
DAYS = [date(2026, 4, 1) + timedelta(days=i) for i in range(6)]


@pytest.fixture
def scored(tmp_path):
    """Six scored days of synthetic credit applications (outcomes with them), and the same log in PostgreSQL."""
    require_postgres()
    import sqlalchemy

    path, data = synthetic_credit_policy(tmp_path, 6000, seed=21, audit={"window_days": 5, "label_lag_days": 2})
    store = open_store(str(tmp_path / "store"))
    policy = load_policy(path)
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r")).decision == "deployed"
    feed = data.sample(frac=1.0, random_state=2).reset_index(drop=True)
    for i, day in enumerate(DAYS):
        monitoring.score_day(store, policy, day, feed.iloc[i * 700 : (i + 1) * 700].reset_index(drop=True))
    predictions, outcomes = f"predictions_{uuid.uuid4().hex[:8]}", f"outcomes_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/test")
    for day in DAYS:
        log = pd.read_parquet(io.BytesIO(store.get(f"predictions/model=credit/date={day}/part.parquet")))
        log.assign(scored_on=day).to_sql(predictions, engine, index=False, if_exists="append")
        labels = pd.read_parquet(io.BytesIO(store.get(f"labels/model=credit/date={day}/part.parquet")))
        labels.sample(frac=1.0, random_state=day.day).to_sql(outcomes, engine, index=False, if_exists="append")
    yield store, policy, engine, predictions, outcomes
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'DROP TABLE "{predictions}"'))
        conn.execute(sqlalchemy.text(f'DROP TABLE "{outcomes}"'))
    engine.dispose()


def test_one_group_by_gives_the_parquet_audits_figures(scored):
    store, policy, engine, predictions, outcomes = scored
    day = DAYS[-1]
    parquet = monitoring.audit_day(store, policy, day, run_id="a")
    counts = sql_audit.window_counts(engine, policy, predictions, outcomes, day=day, version=parquet["judged_version"])
    assert len(counts) <= 2 ** len(policy.protected_attributes) * 2 * 3  # only counts leave the database
    assert counts["n"].sum() == parquet["rows"] == 5 * 700
    # The label lag: outcomes of the last two days are not used yet.
    assert counts.loc[counts["y"].notna(), "n"].sum() == parquet["labeled_rows"] == 3 * 700
    pushed = sql_audit.fairness_from_counts(counts, policy)
    assert set(pushed) == set(parquet["fairness"])
    for key, result in parquet["fairness"].items():
        assert pushed[key]["counts"] == result["counts"], key
        assert set(pushed[key]["metrics"]) == set(result["metrics"]) - set(SCORE_METRICS), key
        for metric, m in pushed[key]["metrics"].items():
            for part in ("value", "ci_low", "ci_high"):
                assert m[part] == pytest.approx(result["metrics"][metric][part], rel=1e-12, abs=1e-15), (
                    key,
                    metric,
                    part,
                )


def test_the_query_binds_values_and_quotes_names(scored):
    _, policy, engine, predictions, outcomes = scored
    query = sql_audit.counts_query(
        policy, predictions, outcomes, day=DAYS[-1], window_days=5, label_lag_days=2, version="x'; DROP TABLE users; --"
    )
    sql = str(query.compile(engine))
    assert "DROP TABLE" not in sql and "GROUP BY" in sql and sql.count("%(") >= 4
    empty = sql_audit.window_counts(engine, policy, predictions, outcomes, day=DAYS[-1], version="no-such")
    assert empty.empty
    from fairgate.errors import StageError

    with pytest.raises(StageError, match="no predictions of the judged version"):
        sql_audit.fairness_from_counts(empty, policy)


def test_the_audit_estimates_each_groups_rates_before_outcomes_and_scores_the_estimate_after(scored):
    import numpy as np

    from fairgate.governance import evidence, registry
    from fairgate.groups import cell_mask, codes_and_labels, comparisons
    from fairgate.models import training

    store, policy, *_ = scored
    result = monitoring.audit_day(store, policy, DAYS[-1], run_id="a")
    estimated = result["estimated_performance"]["gender"]
    assert sum(s["rows_without_outcome"] for s in estimated.values()) == 2 * 700  # the two days inside the lag
    # The lifecycle measured calibration per group on its test split; recomputed here from the model.
    rec = evidence.find(store, "credit", "r")["record"]
    df = pd.read_parquet(io.BytesIO(store.get("runs/nb/r/snapshot.parquet")))
    split = pd.read_parquet(io.BytesIO(store.get("runs/nb/r/split.parquet")))["split"].to_numpy()
    test = df[split == "test"].reset_index(drop=True)
    scores, _ = training.predict(registry.load_model(store, "credit", rec["model"]["sha256"]), test, policy)
    codes, y = codes_and_labels(test, policy)
    comp = comparisons(policy)[0]
    women = cell_mask(codes, comp.unprivileged)
    bins = np.minimum((scores[women] * 10).astype(int), 9)
    by_hand = np.abs(np.bincount(bins, scores[women], 10) - np.bincount(bins, y[women], 10)).sum() / women.sum()
    assert rec["calibration"]["gender"]["unprivileged"]["calibration_error"] == pytest.approx(by_hand)
    for side, entry in estimated.items():
        assert entry["test_calibration_error"] == rec["calibration"]["gender"][side]["calibration_error"]
        # Where outcomes have arrived, the estimate is scored against them (a calibrated logistic regression
        # on data it was trained for: within a few points).
        for rate in ("true_positive_rate", "false_positive_rate", "accuracy"):
            assert abs(entry["error"][rate]) < 0.08, (side, rate, entry)
            assert entry["estimated"][rate] is not None and entry["realised"][rate] is not None
    from fairgate.reporting.report import audit_report

    page = audit_report(result, [result])
    assert "rates estimated from the scores" in page and page.count("<td>gender") >= 2


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}/{key}").items()}
    return {prefix: tree}


def test_with_log_table_scoring_writes_the_table_and_the_audit_judges_it_as_parquet_does(tmp_path, monkeypatch):
    """``audit.log_table``: scoring fills the table (a re-scored day replaces its rows), and the audit
    stage's figures and status come from the database and equal the Parquet audit's."""
    require_postgres()
    import sqlalchemy

    table = f"log_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_CONN_FAIRGATE_WAREHOUSE", f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/test")
    path, data = synthetic_credit_policy(tmp_path, 6000, seed=23, audit={"window_days": 5, "label_lag_days": 2})
    plain = load_policy(path)
    raw = yaml.safe_load(path.read_text())
    raw["audit"]["log_table"] = f"sql://fairgate_warehouse/{table}"
    (tmp_path / "sql.yaml").write_text(yaml.safe_dump(raw))
    policy = load_policy(tmp_path / "sql.yaml")
    store = open_store(str(tmp_path / "store"))
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r")).decision == "deployed"
    feed = data.sample(frac=1.0, random_state=3).reset_index(drop=True)
    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/test")
    try:
        for i, day in enumerate(DAYS):
            monitoring.score_day(store, policy, day, feed.iloc[i * 700 : (i + 1) * 700].reset_index(drop=True))
        monitoring.score_day(store, policy, DAYS[0], feed.iloc[:700])  # a re-run of the first day
        with engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(f'SELECT count(*), count(DISTINCT scored_on) FROM "{table}"')).one()
            outcomes = conn.execute(sqlalchemy.text(f'SELECT count(*) FROM "{table}_outcomes"')).scalar()
        assert tuple(rows) == (6 * 700, 6) and outcomes == 6 * 700

        parquet = monitoring.audit_day(store, plain, DAYS[-1], run_id="p")
        stage = monitoring.audit(store, policy, DAYS[-1], run_id="s")
        pushed = read_json(store, stage.result, "audit")
        assert pushed["measured_in"] == "sql" and pushed["not_measured"] == [sql_audit.NOT_MEASURED]
        assert (stage.rows, stage.labeled_rows) == (parquet["rows"], parquet["labeled_rows"]) == (3500, 2100)
        assert pushed["window_days"] == parquet["window_days"]
        assert pushed["judged_version"] == parquet["judged_version"]
        assert pushed["accuracy"] == pytest.approx(parquet["accuracy"], abs=1e-12)
        assert pushed["selection_rate"] == pytest.approx(parquet["selection_rate"], abs=1e-12)
        for key, result in parquet["fairness"].items():
            assert pushed["fairness"][key]["counts"] == result["counts"], key
            assert _flat(pushed["fairness"][key]["rates"]) == pytest.approx(_flat(result["rates"]), abs=1e-12), key
            assert set(result["metrics"]) - set(pushed["fairness"][key]["metrics"]) == set(SCORE_METRICS)
            for metric, m in pushed["fairness"][key]["metrics"].items():
                assert m["value"] == pytest.approx(result["metrics"][metric]["value"], abs=1e-12)
        # The label-free estimates come from the same GROUP BY (by score bin), equal to the Parquet path's.
        assert pushed["estimated_performance"] is not None
        assert _flat(pushed["estimated_performance"]) == pytest.approx(
            _flat(parquet["estimated_performance"]), abs=1e-9
        )
        # Drift is Parquet-only; the fairness verdict is the same.
        fairness_reasons = [r for r in parquet["reasons"] if not r.startswith(("feature", "group mix"))]
        assert pushed["reasons"] == fairness_reasons
        assert pushed["change_since_deployment"] == {
            key: {m: v for m, v in changes.items() if m not in SCORE_METRICS}
            for key, changes in parquet["change_since_deployment"].items()
        }
        # Subgroups of the protected values, from counts: equal to the discovery on the window's own rows
        window, _, _ = read_window(
            store, "credit", DAYS[-1], policy.audit.window_days, row_key="application_id", label_lag_days=2
        )
        window = window[window["model_version"] == pushed["judged_version"]].reset_index(drop=True)
        by_rows = discover(
            window[list(policy.protected_columns)],
            window["decision"].to_numpy(),
            policy,
            labels=window[LABEL_COLUMN].to_numpy(dtype=float),
        )
        assert pushed["subgroups"]["tests"] == by_rows["tests"] > 0
        for ours, theirs in zip(pushed["subgroups"]["top"], by_rows["top"], strict=True):
            assert ours["subgroup"] == theirs["subgroup"] and ours["metric"] == theirs["metric"]
            assert (ours["rows"], ours["gap"], ours["p_adjusted"]) == pytest.approx(
                (theirs["rows"], theirs["gap"], theirs["p_adjusted"]), abs=1e-12
            )
        page = store.get(stage.report.key).decode()
        assert "Measured in the database" in page and "feature drift, recourse" in page
        assert "Subgroups treated most differently from the rest" in page
        assert "rates estimated from the scores" in page
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{table}"'))
            conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{table}_outcomes"'))
        engine.dispose()


def test_a_log_table_that_is_not_a_connection_and_table_is_refused_by_name(tmp_path):
    from fairgate.errors import PolicyError

    path, _ = synthetic_credit_policy(tmp_path, 200, seed=1)
    raw = yaml.safe_load(path.read_text())
    raw["audit"]["log_table"] = "warehouse.predictions"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(PolicyError, match=r"audit.*log_table.*sql://<connection id>/<table>"):
        load_policy(tmp_path / "bad.yaml")


def test_before_any_outcome_the_audit_joins_an_empty_table_and_a_missing_table_is_named(tmp_path, monkeypatch):
    require_postgres()
    import sqlalchemy

    from fairgate.errors import StageError

    table = f"log_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_CONN_FAIRGATE_WAREHOUSE", f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/test")
    path, data = synthetic_credit_policy(
        tmp_path,
        3000,
        seed=29,
        audit={"window_days": 3, "label_lag_days": 2, "log_table": f"sql://fairgate_warehouse/{table}"},
    )
    policy = load_policy(path)
    store = open_store(str(tmp_path / "store"))
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r")).decision == "deployed"
    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/test")
    try:
        with pytest.raises(StageError, match=rf"audit.log_table.*{table}"):
            monitoring.audit_day(store, policy, DAYS[0], run_id="a")  # nothing scored yet: no table
        records = data.drop(columns=[policy.dataset.label]).iloc[:500].reset_index(drop=True)  # outcomes not known
        monitoring.score_day(store, policy, DAYS[0], records)
        result = monitoring.audit_day(store, policy, DAYS[0], run_id="a")
        assert (result["rows"], result["labeled_rows"]) == (500, 0)
        assert all(r["counts"]["labeled"] is None for r in result["fairness"].values())
        assert "equal_opportunity_difference" not in result["fairness"]["gender"]["metrics"]
        assert result["status"] == "healthy"  # the loose policy gates disparate impact only: no outcome needed
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{table}"'))
            conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{table}_outcomes"'))
        engine.dispose()
