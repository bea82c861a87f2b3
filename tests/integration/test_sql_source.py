"""A ``sql://`` source on the local PostgreSQL: the run's interval as bound parameters, row filters, errors."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from tests.support.policies import default_policy_dict
from tests.support.stack import PG, reader_uri, require_postgres

from fairgate.data.sources import read_source
from fairgate.errors import DataError
from fairgate.policy.loader import parse_policy


@pytest.fixture
def table(adult, monkeypatch):
    """Adult's first 3,000 rows in a fresh table, one applied_on day per row over ten days."""
    require_postgres()
    import psycopg2
    import sqlalchemy

    name = f"applications_{uuid.uuid4().hex[:8]}"
    rows = adult.head(3000).copy()
    rows["applied_on"] = [date(2026, 3, 1) + timedelta(days=i % 10) for i in range(len(rows))]
    rows["status"] = ["withdrawn" if i % 7 == 0 else "decided" for i in range(len(rows))]
    uri = f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/test"
    engine = sqlalchemy.create_engine(uri)
    rows.to_sql(name, engine, index=False)
    engine.dispose()
    monkeypatch.setenv("AIRFLOW_CONN_FG_WAREHOUSE", reader_uri(name))  # a role that may only SELECT it
    yield name, rows
    with psycopg2.connect(dbname="test", **PG) as conn, conn.cursor() as cur:
        cur.execute(f'DROP TABLE "{name}"')


def _policy(table_name: str, min_rows: int = 1000, **dataset):
    raw = default_policy_dict()
    raw["quality"]["min_rows"] = min_rows
    raw["dataset"].update(
        {
            "source": "sql://fg_warehouse",
            "format": "csv",
            **dataset,
            "query": f'SELECT * FROM "{table_name}" WHERE applied_on >= :interval_start AND applied_on < :interval_end',
        }
    )
    return parse_policy(raw)


def test_the_query_reads_only_the_runs_interval_and_the_filters_drop_rows(table):
    name, rows = table
    policy = _policy(
        name,
        filters=[
            {"column": "status", "op": "!=", "value": "withdrawn"},
            {"column": "hours_per_week", "op": "<=", "value": 60},
        ],
    )
    interval = (datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC))
    got = read_source(policy, interval=interval)
    days = rows["applied_on"].map(lambda d: date(2026, 3, 3) <= d < date(2026, 3, 6))
    expected = rows[days & (rows["status"] != "withdrawn") & (rows["hours_per_week"] <= 60)]
    assert len(expected) > 500
    assert sorted(got["row_id"]) == sorted(expected["row_id"])


def test_a_lifecycle_collects_its_snapshot_from_the_database(table, store):
    from fairgate.stages.lifecycle import RunInfo, collect, validate

    name, rows = table
    policy = _policy(name, min_rows=100)
    run = RunInfo(
        dag_id="fairgate_lifecycle",
        run_id="sql_1",
        interval_start=datetime(2026, 3, 1, tzinfo=UTC),
        interval_end=datetime(2026, 3, 8, tzinfo=UTC),
    )
    snapshot = collect(store, policy, run)
    assert snapshot.rows == sum(d < date(2026, 3, 8) for d in rows["applied_on"])
    assert "status" not in snapshot.columns  # only the columns the policy names are kept
    assert validate(store, policy, run, snapshot).passed


def test_a_broken_query_names_the_key_and_the_connection(table):
    name, _ = table
    raw = default_policy_dict()
    raw["dataset"].update({"source": "sql://fg_warehouse", "query": f'SELECT nope FROM "{name}"'})
    with pytest.raises(DataError, match=r"'dataset.query' failed on connection 'fg_warehouse': .*nope"):
        read_source(parse_policy(raw))


def test_a_source_query_only_reads_one_statement_in_a_read_only_transaction(table):
    """What the policy check and every run execute: never a second statement, never a write."""
    import sqlalchemy

    name, rows = table
    raw = default_policy_dict()
    dropped = f'SELECT * FROM "{name}"; DROP TABLE "{name}"; COMMIT'
    raw["dataset"].update({"source": "sql://fg_warehouse", "query": dropped})
    with pytest.raises(DataError, match=r"'dataset.query' holds 3 SQL statements"):
        read_source(parse_policy(raw))
    writing = f'DELETE FROM "{name}" RETURNING *'  # one statement that writes: refused before it runs
    raw["dataset"]["query"] = writing
    with pytest.raises(DataError, match=r"'dataset.query' is a DELETE statement"):
        read_source(parse_policy(raw))
    raw["dataset"]["query"] = f'SELECT * FROM "{name}";'  # one statement with its terminator is fine
    assert len(read_source(parse_policy(raw))) == len(rows)
    engine = sqlalchemy.create_engine(f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/test")
    with engine.connect() as conn:  # the table and every row are still there
        assert conn.execute(sqlalchemy.text(f'SELECT count(*) FROM "{name}"')).scalar() == len(rows)
    engine.dispose()


def test_an_undefined_connection_says_how_to_define_it(monkeypatch, tmp_path):
    from fairgate.data import sources as data
    from fairgate_airflow.settings import artifact_store

    monkeypatch.delenv("AIRFLOW_CONN_NOWHERE", raising=False)
    raw = default_policy_dict()
    raw["dataset"].update({"source": "sql://nowhere", "query": "SELECT 1"})
    monkeypatch.setattr(data, "_connection_uri", None)  # outside Airflow: the environment
    with pytest.raises(DataError, match=r"No connection 'nowhere': .*AIRFLOW_CONN_NOWHERE"):
        read_source(parse_policy(raw))
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(tmp_path))
    artifact_store()  # in a task: Airflow's connections, still a named, non-retried input error
    with pytest.raises(DataError, match=r"No Airflow connection 'nowhere' .*airflow connections add nowhere"):
        read_source(parse_policy(raw))


def test_outcomes_arrive_from_a_query_by_the_predictions_day(table, store, adult):
    """The feed has no label; the outcomes table is queried per prediction day, with bound parameters."""
    import psycopg2

    from fairgate.data.simulation import day_batch
    from fairgate.governance import approval, registry
    from fairgate.models.training import dump_model, fit
    from fairgate.stages.monitoring import audit_day, score_day

    name, _ = table
    raw = default_policy_dict()
    raw["audit"].update(
        {
            "outcomes": "sql://fg_warehouse",
            "window_days": 2,
            "label_lag_days": 0,
            "outcomes_query": f'SELECT row_id, income FROM "{name}_outcomes" '
            "WHERE decided_on >= :interval_start AND decided_on < :interval_end",
        }
    )
    policy = parse_policy(raw)
    v = registry.register(
        store, policy.model_name, dump_model(fit(adult.head(2000), policy)), {"approved": True, "registered_at": "1"}
    )["version"]
    approval.deploy_recorded(
        store, policy.model_name, v, run_id="r", dag_id="t", gate_outcome="pass", replaces=None, approver="t"
    )
    days = [date(2026, 3, 1), date(2026, 3, 2)]
    with psycopg2.connect(dbname="test", **PG) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE TABLE "{name}_outcomes" (row_id text, income text, decided_on date)')
        for d in days:
            batch = day_batch(d, policy, rows=200)
            score_day(store, policy, d, batch.drop(columns=["income"]))
            for row, income in zip(batch["row_id"][:120], batch["income"][:120], strict=True):
                cur.execute(f'INSERT INTO "{name}_outcomes" VALUES (%s, %s, %s)', (row, income, d))
    reader_uri(f"{name}_outcomes")
    try:
        result = audit_day(store, policy, days[-1], run_id="a")
        assert result["outcomes_fetched"] == [d.isoformat() for d in days]
        assert (result["rows"], result["labeled_rows"]) == (400, 240)
    finally:
        with psycopg2.connect(dbname="test", **PG) as conn, conn.cursor() as cur:
            cur.execute(f'DROP TABLE "{name}_outcomes"')


# What one statement ran as the connection's role before (the attack reached the server, not the data):
ATTACKS = {
    "COPY (SELECT 1) TO PROGRAM 'touch {marker}'": r"is a COPY statement",
    "SELECT pg_read_file('/etc/passwd')": r"calls pg_read_file\(\)",
    "SELECT lo_export(lo_from_bytea(0, 'x'), '{marker}')": r"calls lo_export\(\)",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity": r"calls pg_terminate_backend\(\)",
    "SELECT pg_sleep(60)": r"calls pg_sleep\(\)",
    'WITH gone AS (DELETE FROM "{table}" RETURNING *) SELECT * FROM gone': r"holds a DELETE inside its SELECT",
    'SELECT * INTO stolen FROM "{table}"': r"SELECT \.\.\. INTO",
    'SELECT * FROM "{table}" FOR UPDATE': r"locks rows",
    "SELECT 1; SELECT 2": r"holds 2 SQL statements",
}


@pytest.mark.parametrize("query", list(ATTACKS))
def test_a_query_that_reaches_beyond_the_rows_is_refused_before_it_runs(table, tmp_path, query):
    name, _ = table
    marker = tmp_path / "written-by-the-database"
    raw = default_policy_dict()
    raw["dataset"].update({"source": "sql://fg_warehouse", "query": query.format(marker=marker, table=name)})
    with pytest.raises(DataError, match=ATTACKS[query]):
        read_source(parse_policy(raw))
    assert not marker.exists()


def test_a_superuser_or_server_file_role_is_refused_unless_the_policy_allows_it(table, monkeypatch):
    import psycopg2

    name, rows = table
    raw = default_policy_dict()
    raw["dataset"].update({"source": "sql://fg_warehouse", "query": f'SELECT * FROM "{name}"'})
    monkeypatch.setenv("AIRFLOW_CONN_FG_WAREHOUSE", f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/test")
    with pytest.raises(DataError, match=rf"reads as role '{PG['user']}', which is a superuser.*allow_privileged_role"):
        read_source(parse_policy(raw))
    assert len(read_source(parse_policy({**raw, "sql": {"allow_privileged_role": True}}))) == len(rows)
    role = "fairgate_file_reader"
    with psycopg2.connect(dbname="test", **PG) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if cur.fetchone() is None:
            cur.execute(f"CREATE ROLE {role} LOGIN")
        cur.execute(f"GRANT pg_read_server_files TO {role}")
        cur.execute(f'GRANT SELECT ON "{name}" TO {role}')
    monkeypatch.setenv("AIRFLOW_CONN_FG_WAREHOUSE", f"postgres://{role}@{PG['host']}:{PG['port']}/test")
    with pytest.raises(DataError, match=r"which is a member of pg_read_server_files"):
        read_source(parse_policy(raw))


@pytest.mark.usefixtures("table")  # the reader role and the connection it sets
def test_a_query_runs_under_the_statement_timeout_and_the_row_cap():
    raw = default_policy_dict()
    slow = "SELECT count(*) AS n FROM generate_series(1, 10000000000) AS g"
    raw["dataset"].update({"source": "sql://fg_warehouse", "query": slow})
    started = datetime.now(UTC)
    with pytest.raises(DataError, match=r"statement timeout.*sql.timeout_seconds: 1"):
        read_source(parse_policy({**raw, "sql": {"timeout_seconds": 1}}))
    assert (datetime.now(UTC) - started).total_seconds() < 30  # stopped by the server, not waited out
    raw["dataset"]["query"] = "SELECT g AS row_id FROM generate_series(1, 1000) AS g"
    with pytest.raises(DataError, match=r"returned more than 100 rows \(sql.max_rows\)"):
        read_source(parse_policy({**raw, "sql": {"max_rows": 100}}))
    assert len(read_source(parse_policy({**raw, "sql": {"max_rows": 1000}}))) == 1000


def test_sqlite_is_opened_read_only(tmp_path, monkeypatch):
    import sqlite3

    from fairgate.data.sources import _read_only_url

    db = tmp_path / "warehouse.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (row_id TEXT)")
        conn.execute("INSERT INTO t VALUES ('a')")
    monkeypatch.setenv("AIRFLOW_CONN_LOCAL_DB", f"sqlite:///{db}")
    raw = default_policy_dict()
    for query, said in (
        (f"ATTACH DATABASE '{tmp_path / 'other.db'}' AS other", "is a ATTACH statement"),
        (f"VACUUM INTO '{tmp_path / 'copy.db'}'", "is a COMMAND statement"),
    ):
        raw["dataset"].update({"source": "sql://local_db", "query": query})
        with pytest.raises(DataError, match=said):
            read_source(parse_policy(raw))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.db"]
    raw["dataset"]["query"] = "SELECT * FROM t"
    assert list(read_source(parse_policy(raw))["row_id"]) == ["a"]
    import sqlalchemy

    engine = sqlalchemy.create_engine(_read_only_url(f"sqlite:///{db}"))
    with engine.connect() as conn, pytest.raises(sqlalchemy.exc.OperationalError, match="readonly"):
        conn.execute(sqlalchemy.text("INSERT INTO t VALUES ('b')"))
    engine.dispose()
