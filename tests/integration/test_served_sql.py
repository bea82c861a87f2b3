"""Served decisions on a PostgreSQL log table (``audit.log_table``): one INSERT per request beside the batch
rows, audited together and counted per channel, contested, ingested for review, expired by retention;
four writers at once on a table none of them found."""

from __future__ import annotations

import io
import threading
import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from tests.support.policies import synthetic_credit_policy
from tests.support.stack import PG, require_postgres

from fairgate.governance import registry
from fairgate.integrations import serving
from fairgate.monitoring import cases, log_table, retention
from fairgate.monitoring.served_log import DecisionLogger, TableSink
from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle, monitoring
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.roots import open_store
from fairgate_dev.synthetic import credit_applications

pytestmark = pytest.mark.integration
DAYS = [date(2026, 5, 1) + timedelta(days=i) for i in range(3)]
URL = f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/test"


@pytest.fixture
def on_postgres(tmp_path, monkeypatch):
    require_postgres()
    import sqlalchemy

    table = f"served_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_CONN_FAIRGATE_WAREHOUSE", URL)
    path, _data = synthetic_credit_policy(
        tmp_path,
        3000,
        seed=31,
        audit={"window_days": 3, "label_lag_days": 0, "log_table": f"sql://fairgate_warehouse/{table}"},
        review_triggers={"score_margin": 0.1, "daily_cap": 3},
    )
    policy = load_policy(path)
    store = open_store(str(tmp_path / "store"))
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r")).decision == "deployed"
    version = registry.production_version(store, "credit")
    folder = serving.write_bundle(store, policy, version, tmp_path / "bundle")
    served = serving.load({p.name: str(p) for p in folder.iterdir()}, version=version)
    engine = sqlalchemy.create_engine(URL.replace("postgresql://", "postgresql+psycopg2://"))
    yield {"policy": policy, "store": store, "served": served, "table": table, "engine": engine}
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{table}"'))
        conn.execute(sqlalchemy.text(f'DROP TABLE IF EXISTS "{table}_outcomes"'))
    engine.dispose()


def _applications(n: int, seed: int, policy) -> pd.DataFrame:
    """New applications, inside the ranges the policy's quality gate holds (the server refuses others)."""
    feed = credit_applications(n, seed=seed)
    feed["application_id"] = feed["application_id"].str.replace("app-", f"s{seed}-")
    for col, bounds in policy.quality.ranges.items():
        feed[col] = feed[col].clip(bounds.min, bounds.max)
    return feed


def _count(engine, sql: str):
    import sqlalchemy

    with engine.connect() as conn:
        return conn.execute(sqlalchemy.text(sql)).all()


def test_served_and_batch_decisions_in_one_table_are_audited_together(on_postgres):
    policy, store, served, table, engine = (on_postgres[k] for k in ("policy", "store", "served", "table", "engine"))
    logger = DecisionLogger.for_policy(policy, store)
    batch = _applications(300, seed=70, policy=policy)
    monitoring.score_day(store, policy, DAYS[0], batch.iloc[:150].reset_index(drop=True))  # creates the table
    received = []
    for d, _day in enumerate(DAYS):
        feed = _applications(40, seed=71 + d, policy=policy).drop(columns=["approved"])
        for i in range(4):
            decided = serving.decide(
                served, feed.iloc[i * 10 : (i + 1) * 10], now=datetime(2026, 5, 1 + d, 10 + i, tzinfo=UTC)
            )
            assert logger.log(decided.log, decided.day) is True
            received.append(decided.answer.assign(gender=feed["gender"].iloc[i * 10 : (i + 1) * 10].to_numpy()))
    # a re-scored batch day replaces the batch rows only: the day's served ones stay
    monitoring.score_day(store, policy, DAYS[0], batch.iloc[150:].reset_index(drop=True))
    by_channel = dict(_count(engine, f'SELECT channel, count(*) FROM "{table}" GROUP BY channel'))
    assert by_channel == {"batch": 150, "online": 120}

    answers = pd.concat(received, ignore_index=True)
    result = monitoring.audit_day(store, policy, DAYS[-1], run_id="a")
    assert result["measured_in"] == "sql" and result["rows"] == 270
    assert result["channels"] == {"batch": 150, "online": 120}
    log = pd.read_parquet(io.BytesIO(store.get(f"predictions/model=credit/date={DAYS[0]}/part.parquet")))  # batch
    decisions = np.concatenate([answers["decision"].to_numpy(), log["decision"].to_numpy()])
    female = np.concatenate([(answers["gender"] == "female").to_numpy(), (log["gender"] == "female").to_numpy()])
    metrics = result["fairness"]["gender"]["metrics"]
    assert metrics["statistical_parity_difference"]["value"] == pytest.approx(
        decisions[female].mean() - decisions[~female].mean()
    )

    # a contest finds the served decision in the table, with its reasons and inputs
    row = answers.iloc[25]
    case = cases.open_contest(store, policy, row["application_id"], reason="wrong", opened_by="applicant")
    assert case["decision"] == int(row["decision"]) and case["score"] == pytest.approx(row["score"])
    assert case["date"] == DAYS[25 // 40].isoformat() and case["reasons"][0]["text"] == row["reason_1"]

    # ingestion reads what was served since its last mark, and queues the flagged ones up to the daily cap
    queued = [
        sum(c["kind"] == "review" and c["date"] == d.isoformat() for c in cases.cases_of(store, "credit")) for d in DAYS
    ]
    assert queued[0] > 0 and queued[1:] == [0, 0]  # the batch day's own reviews count against its cap
    done = monitoring.ingest(store, policy, run_id="i1")
    assert done["new_decisions"] == 120 and done["compacted"] == []
    flagged = answers[answers["review"] == "pending"]
    per_day = flagged.groupby(flagged.index // 40).size().reindex(range(3), fill_value=0)
    assert len(done["review_cases"]) == sum(min(max(3 - q, 0), n) for q, n in zip(queued, per_day, strict=True))
    assert monitoring.ingest(store, policy, run_id="i2")["new_decisions"] == 0

    # retention: a day past the period goes from the table (both channels), and is recorded
    expiring = load_policy_with(policy, retention_days=30)
    done = retention.apply(store, expiring, DAYS[0] + timedelta(days=40), run_id="ret")
    assert done["removed"] == [] and "contest or review" in done["kept"][DAYS[0].isoformat()]  # cases open
    for c in cases.cases_of(store, "credit"):
        if c["outcome"] is None and c["date"] == DAYS[0].isoformat():
            cases.decide(store, policy, c["case_id"], choice="Uphold", rationale="checked", reviewer="ops")
    done = retention.apply(store, expiring, DAYS[0] + timedelta(days=40), run_id="ret2")
    assert DAYS[0].isoformat() in done["removed"]
    left = {str(d) for (d,) in _count(engine, f'SELECT DISTINCT scored_on FROM "{table}"')}
    assert DAYS[0].isoformat() not in left and DAYS[2].isoformat() in left


def load_policy_with(policy, **audit):
    from tests.support.policies import edited

    return edited(policy, {f"audit.{k}": v for k, v in audit.items()})


def test_four_writers_at_once_on_a_new_table_lose_nothing(on_postgres):
    policy, served, table, engine = (on_postgres[k] for k in ("policy", "served", "table", "engine"))
    feed = _applications(40, seed=80, policy=policy).drop(columns=["approved"])
    errors = []

    def worker(n: int) -> None:  # each a server process of its own: its own sink and engine
        sink = TableSink(policy)
        try:
            for i in range(10):
                decided = serving.decide(served, feed.iloc[(n * 10 + i) % 40 : (n * 10 + i) % 40 + 1])
                sink.write(decided.log, decided.day)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _count(engine, f'SELECT count(*), count(DISTINCT decision_id) FROM "{table}"')[0] == (40, 40)
    assert log_table.find_online(policy, feed["application_id"].iloc[0]) is not None
