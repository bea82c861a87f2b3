"""The prediction log in a SQL table (``audit.log_table``): its tables and columns, and every write and
row-level read of it; the audit's ``GROUP BY`` on it is :mod:`fairgate.monitoring.sql_audit`.

```
predictions: <row_key>, model_version, scored_on (date), channel (batch | online), score, decision,
             <protected columns>; a served row also its time, id, reasons, inputs and review status
outcomes:    <row_key>, outcome (0/1, 1 = favourable; the Parquet labels' column)
```
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from fairgate.data.sources import connection_uri
from fairgate.errors import StageError
from fairgate.monitoring.columns import LABEL_COLUMN, Prediction, as_prediction

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy

    from fairgate.policy.schema import Policy


def tables(policy: Policy) -> tuple[str, str, str]:
    """The connection id, predictions table and outcomes table of ``audit.log_table``."""
    assert policy.audit.log_table is not None and policy.audit.outcomes_table is not None
    conn_id, _, table = policy.audit.log_table.removeprefix("sql://").partition("/")
    return conn_id, table, policy.audit.outcomes_table


def engine_for(policy: Policy) -> sqlalchemy.engine.Engine:
    import sqlalchemy as sa

    return sa.create_engine(connection_uri(tables(policy)[0]))


def _replace_day(
    engine: sqlalchemy.engine.Engine, table: str, day: date, rows: pd.DataFrame, *, channel: str | None = None
) -> None:
    """Delete the day's rows of ``table`` and insert ``rows`` in one transaction (a re-run replaces, not adds).

    With ``channel`` (the predictions table), only that channel's rows of the day are replaced: a
    re-scored batch day keeps the decisions served online that day. ``rows`` may be empty: the table
    is then created with its columns, so an audit before any outcome has arrived joins an empty
    outcomes table rather than a missing one.
    """
    import sqlalchemy as sa

    if channel is not None:
        rows = rows.assign(channel=channel)
        prepare_predictions(engine, table, rows)
    with engine.begin() as conn:
        if sa.inspect(conn).has_table(table):
            t = sa.table(table, sa.column("scored_on"), sa.column("channel"))
            where = t.c.scored_on == day
            if channel is not None:  # rows written before channels existed are batch rows
                where = where & sa.or_(t.c.channel == channel, t.c.channel.is_(None))
            conn.execute(sa.delete(t).where(where))
        rows.assign(scored_on=day).to_sql(table, conn, index=False, if_exists="append", dtype={"scored_on": sa.Date()})


def _sql_type(dtype: Any) -> Any:
    import pandas as pd
    import sqlalchemy as sa

    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        return sa.Integer()
    if pd.api.types.is_float_dtype(dtype):
        return sa.Float()
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return sa.DateTime(timezone=True)
    return sa.Text()


def prepare_predictions(engine: sqlalchemy.engine.Engine, table: str, rows: pd.DataFrame) -> sqlalchemy.Table:
    """The predictions table, created or given the columns of ``rows`` it lacks (``scored_on`` a date).

    Batch and served rows carry different columns (a served row also has its time, id, reasons and
    inputs); each writer adds what it writes, so neither has to know the other's. Safe when two
    servers' workers do it at once: a column or table another one just added is taken as it is.
    """
    import sqlalchemy as sa

    wanted = {str(c): _sql_type(rows[c].dtype) for c in rows.columns}
    wanted["scored_on"] = sa.Date()
    quote = engine.dialect.identifier_preparer.quote
    for _ in range(3):  # a concurrent writer may win a race: look again
        try:
            with engine.begin() as conn:
                inspector = sa.inspect(conn)
                if not inspector.has_table(table):
                    sa.Table(table, sa.MetaData(), *(sa.Column(c, t) for c, t in wanted.items())).create(conn)
                else:
                    have = {c["name"] for c in inspector.get_columns(table)}
                    for col, kind in wanted.items():
                        if col not in have:
                            ddl = f"ALTER TABLE {quote(table)} ADD COLUMN {quote(col)} {kind.compile(engine.dialect)}"
                            conn.execute(sa.text(ddl))
            break
        except sa.exc.SQLAlchemyError:
            continue
    return sa.Table(table, sa.MetaData(), autoload_with=engine)


def write_day(policy: Policy, day: date, log: pd.DataFrame | None, outcomes: pd.DataFrame | None) -> None:
    """The day's predictions and outcomes (each when given) into ``audit.log_table``, replacing that day's rows."""
    import pandas as pd
    import sqlalchemy as sa

    assert policy.dataset.row_key is not None
    conn_id, predictions, outcome_table = tables(policy)
    columns = [policy.dataset.row_key, "model_version", "score", "decision", *policy.protected_columns]
    engine = engine_for(policy)
    try:
        if log is not None:
            _replace_day(engine, predictions, day, log[[c for c in columns if c in log.columns]], channel="batch")
            if outcomes is None and not sa.inspect(engine).has_table(outcome_table):
                # None yet: the outcomes table exists, empty, from the first day on (and outcomes
                # already written for this day are kept, as on the Parquet path).
                empty = pd.DataFrame(
                    {
                        policy.dataset.row_key: log[policy.dataset.row_key].iloc[:0],
                        LABEL_COLUMN: pd.Series([], dtype="int8"),
                    }
                )
                _replace_day(engine, outcome_table, day, empty)
        if outcomes is not None:
            _replace_day(engine, outcome_table, day, outcomes[[policy.dataset.row_key, LABEL_COLUMN]])
    except Exception as exc:
        raise StageError(
            f"Policy key 'audit.log_table': writing the log of {day} to {conn_id!r} failed: "
            f"{str(getattr(exc, 'orig', exc)).strip().splitlines()[0]}"
        ) from None
    finally:
        engine.dispose()


def write_outcomes(policy: Policy, day: date, outcomes: pd.DataFrame) -> None:
    """Outcomes of the predictions of ``day`` into the outcomes table (replacing that day's)."""
    write_day(policy, day, None, outcomes)


def find_online(policy: Policy, row: str) -> Prediction | None:
    """The newest decision served online for row key ``row`` in ``audit.log_table`` (a contest finds it here)."""
    import sqlalchemy as sa

    assert policy.dataset.row_key is not None
    _, predictions, _ = tables(policy)
    engine = engine_for(policy)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(predictions):
                return None
            t = sa.Table(predictions, sa.MetaData(), autoload_with=conn)
            if "channel" not in t.c:
                return None
            found = (
                conn.execute(
                    sa.select(t)
                    .where(sa.cast(t.c[policy.dataset.row_key], sa.Text) == str(row), t.c.channel == "online")
                    .order_by(t.c.scored_at.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
    finally:
        engine.dispose()
    if found is None:
        return None
    logged = {str(k): v for k, v in found.items()}
    inputs = [c for c in dict.fromkeys([*policy.features, *policy.protected_columns]) if c in logged]
    return as_prediction(logged, row, str(logged["scored_on"]), inputs)


def days_before(policy: Policy, before: date) -> list[str]:
    """The log table's days scored before ``before`` (both channels), oldest first."""
    import sqlalchemy as sa

    _, predictions, _ = tables(policy)
    engine = engine_for(policy)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(predictions):
                return []
            t = sa.table(predictions, sa.column("scored_on"))
            old = conn.execute(sa.select(t.c.scored_on).where(t.c.scored_on < before).distinct())
            return sorted(str(r[0]) for r in old)
    finally:
        engine.dispose()


def delete_days(policy: Policy, days: list[str]) -> None:
    """Delete the log table's rows of ``days`` (both channels). Outcomes are kept: they are joined by row
    key, and hold no decision."""
    import sqlalchemy as sa

    if not days:
        return
    _, predictions, _ = tables(policy)
    engine = engine_for(policy)
    try:
        with engine.begin() as conn:
            if not sa.inspect(conn).has_table(predictions):
                return
            t = sa.table(predictions, sa.column("scored_on"))
            conn.execute(sa.delete(t).where(t.c.scored_on.in_([date.fromisoformat(d) for d in days])))
    finally:
        engine.dispose()


def online_since(policy: Policy, mark: str | None) -> pd.DataFrame:
    """The decisions served online into ``audit.log_table`` after ``mark`` (a time; None: all), oldest first."""
    import pandas as pd
    import sqlalchemy as sa

    _, predictions, _ = tables(policy)
    engine = engine_for(policy)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(predictions):
                return pd.DataFrame()
            t = sa.Table(predictions, sa.MetaData(), autoload_with=conn)
            if "channel" not in t.c or "scored_at" not in t.c:
                return pd.DataFrame()
            query = sa.select(t).where(t.c.channel == "online")
            if mark is not None:
                query = query.where(t.c.scored_at > datetime.fromisoformat(mark))
            return pd.DataFrame(conn.execute(query.order_by(t.c.scored_at)).mappings().all())
    finally:
        engine.dispose()
