"""The audit's fairness figures pushed down to the database that holds the prediction log.

One query returns the window's rows counted by joint group cell, decision and arrived outcome
(``GROUP BY``); every metric and interval is then computed from those counts by the same
:func:`fairgate.fairness.metrics.measure` the Parquet path uses, with the counts as weights, so the two
paths agree exactly. Only counts leave the database: at most ``2^k · 2 · 3`` rows for ``k``
protected attributes.

The tables (names are the caller's; columns are the policy's):

```
predictions: <row_key>, model_version, scored_on (date), decision (0/1), <protected columns>
outcomes:    <row_key>, outcome (0/1, 1 = favourable; the Parquet labels' column)
```

An outcome counts when its prediction was scored on or before ``day - audit.label_lag_days``,
the label-lag rule of :func:`fairgate.monitoring.prediction_log.read_window`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from fairgate.data.sources import connection_uri
from fairgate.errors import StageError
from fairgate.fairness import estimation, subgroups
from fairgate.fairness.estimation import BINS
from fairgate.fairness.groups import comparisons
from fairgate.fairness.metrics import measure
from fairgate.monitoring.audit import AuditResult, WindowFigures, judge_fairness, window_figures
from fairgate.monitoring.columns import LABEL_COLUMN

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy

    from fairgate.fairness.estimation import Calibration
    from fairgate.policy.schema import Policy
    from fairgate.stages.contracts import AuditStatus


def counts_query(
    policy: Policy,
    predictions: str,
    outcomes: str,
    *,
    day: date,
    window_days: int,
    label_lag_days: int,
    version: str,
    scores: bool = False,
    values: bool = False,
) -> Any:
    """The ``GROUP BY`` (a SQLAlchemy statement, identifiers quoted, values bound) of one window.

    ``values``: also by each protected column's own value (``v0``, ``v1``, …), for the subgroup
    discovery over the protected attributes' values and their intersections.

    ``scores``: also by score bin (``b``, the label-free estimates' 10 bins) with each group's
    score sum (``s``), for :func:`fairgate.fairness.estimation.per_group`; at most ten times the rows.
    """
    import sqlalchemy as sa

    assert policy.dataset.row_key is not None
    cols = {
        policy.dataset.row_key,
        "model_version",
        "scored_on",
        "decision",
        *policy.protected_columns,
        *(["score"] if scores else []),
    }
    p = sa.table(predictions, *(sa.column(c) for c in sorted(cols))).alias("p")
    o = sa.table(outcomes, sa.column(policy.dataset.row_key), sa.column(LABEL_COLUMN)).alias("o")
    cells = []
    for i, attr in enumerate(policy.protected_attributes):
        col = p.c[attr.column]
        if attr.is_threshold:
            assert attr.op is not None and attr.value is not None
            test = {">=": col >= attr.value, ">": col > attr.value, "<=": col <= attr.value, "<": col < attr.value}[
                attr.op
            ]
        else:
            test = col.in_(attr.privileged_values)
        cells.append(sa.case((test, 1), else_=0).label(f"g{i}"))
    cutoff = day - timedelta(days=label_lag_days)
    label = sa.case((p.c.scored_on <= cutoff, o.c[LABEL_COLUMN]), else_=None).label("y")
    joined = p.outerjoin(o, o.c[policy.dataset.row_key] == p.c[policy.dataset.row_key])
    start = day - timedelta(days=window_days - 1)
    keys = [*cells, p.c.decision.label("d"), label]
    if values:
        keys += [p.c[attr.column].label(f"v{i}") for i, attr in enumerate(policy.protected_attributes)]
    sums = [sa.func.count().label("n")]
    if scores:  # the bin as numpy takes it: floor(score * 10), a score of 1 in the top bin
        keys.append(
            sa.case((p.c.score >= 1.0, BINS - 1), else_=sa.cast(sa.func.floor(p.c.score * BINS), sa.Integer)).label("b")
        )
        sums.append(sa.func.sum(p.c.score).label("s"))
    return (
        sa.select(*keys, *sums)
        .select_from(joined)
        .where(p.c.scored_on >= start, p.c.scored_on <= day, p.c.model_version == version)
        .group_by(*(sa.literal_column(k.name) for k in keys))
    )


def window_counts(
    engine: sqlalchemy.engine.Engine,
    policy: Policy,
    predictions: str,
    outcomes: str,
    *,
    day: date,
    version: str,
    scores: bool = False,
    values: bool = False,
) -> pd.DataFrame:
    """The window's counts: one row per (group cell, decision, outcome or null[, score bin]) with its ``n``."""
    import pandas as pd

    query = counts_query(
        policy,
        predictions,
        outcomes,
        day=day,
        window_days=policy.audit.window_days,
        label_lag_days=policy.audit.label_lag_days,
        version=version,
        scores=scores,
        values=values,
    )
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())


def _codes(counts: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """Each counts row's 0/1 code per protected attribute (the query's ``g0``, ``g1``, …), as group_codes gives."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        {attr.column: counts[f"g{i}"].to_numpy(dtype=np.int8) for i, attr in enumerate(policy.protected_attributes)}
    )


def fairness_from_counts(counts: pd.DataFrame, policy: Policy) -> dict[str, WindowFigures]:
    """Each comparison's metrics (as the audit reports them) and counts, from :func:`window_counts`."""
    import numpy as np

    if counts.empty:
        raise StageError(
            "The window holds no predictions of the judged version: nothing to measure "
            "(check the table names, the day and the model version)."
        )
    comps = comparisons(policy)
    codes = _codes(counts, policy)
    pred = counts["d"].to_numpy(dtype=np.int8)
    weights = counts["n"].to_numpy(dtype=float)
    labeled = counts["y"].notna().to_numpy()
    selection = measure(
        codes,
        np.zeros(len(counts), dtype=np.int8),
        pred,
        comps,
        confidence=policy.fairness.confidence_level,
        weights=weights,
    )
    outcome = (
        measure(
            codes[labeled].reset_index(drop=True),
            counts.loc[labeled, "y"].to_numpy(dtype=np.int8),
            pred[labeled],
            comps,
            confidence=policy.fairness.confidence_level,
            weights=weights[labeled],
        )
        if labeled.any()
        else {}
    )
    return window_figures(selection, outcome, comps)


# --- the prediction log in a table, and the audit on it --------------------------------------------

NOT_MEASURED = (
    "feature drift, recourse, the scores' ranking and calibration differences, and subgroups that name an input: "
    "the SQL audit reads counts only, and the inputs stay in the database"
)


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


def audit_window(
    policy: Policy,
    day: date,
    *,
    calibration_of: Callable[[str], Calibration | None] = lambda version: None,
) -> AuditResult | None:
    """The audit's fairness, counts and status for the window ending ``day``, from ``audit.log_table``.

    The judged version is the one that scored the window's last scored day (as on the Parquet
    path). ``None`` when the window holds no predictions. With a ``score`` column, the label-free
    estimates come from the same query (by score bin); ``calibration_of(version)`` is that
    version's calibration on its test split (its manifest's), which marks poorly calibrated groups.
    """
    import sqlalchemy as sa

    conn_id, predictions, outcomes = tables(policy)
    engine = engine_for(policy)
    try:
        p = sa.table(predictions, sa.column("model_version"), sa.column("scored_on"))
        start = day - timedelta(days=policy.audit.window_days - 1)
        with engine.connect() as conn:
            in_window = (p.c.scored_on >= start, p.c.scored_on <= day)
            versions = [
                r[0]
                for r in conn.execute(
                    sa.select(p.c.model_version)
                    .where(*in_window)
                    .group_by(p.c.model_version)
                    .order_by(sa.func.max(p.c.scored_on), p.c.model_version)
                )
            ]
            days = [
                str(r[0])
                for r in conn.execute(sa.select(p.c.scored_on).where(*in_window).distinct().order_by(p.c.scored_on))
            ]
            channels = _channel_counts(conn, predictions, in_window)
        if not versions:
            return None
        scored = "score" in {c["name"] for c in sa.inspect(engine).get_columns(predictions)}
        counts = window_counts(engine, policy, predictions, outcomes, day=day, version=versions[-1], scores=scored)
        by_value = (
            window_counts(engine, policy, predictions, outcomes, day=day, version=versions[-1], values=True)
            if policy.subgroups.enabled
            else None
        )
    except sa.exc.ProgrammingError as exc:  # a missing table or column: the policy's doing, not the network's
        cause = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise StageError(
            f"Policy key 'audit.log_table': the audit's query on {conn_id!r} failed ({cause}); "
            f"it reads {predictions!r} and {outcomes!r}, which scoring writes."
        ) from None
    finally:
        engine.dispose()
    fairness = fairness_from_counts(counts, policy)
    reasons, insufficient, alerts = judge_fairness(fairness, policy)
    n = counts["n"].to_numpy(dtype=float)
    labeled = counts["y"].notna().to_numpy()
    agree = (counts["d"] == counts["y"]).to_numpy() & labeled
    status: AuditStatus = "degraded" if reasons else "insufficient_evidence" if insufficient else "healthy"
    estimated = None
    if scored:
        import numpy as np

        estimated = estimation.per_group(
            _codes(counts, policy),
            counts["s"].to_numpy(dtype=float) / n,
            counts["d"].to_numpy(),
            comparisons(policy),
            outcomes=counts["y"].to_numpy(dtype=float, na_value=np.nan),
            deployed=calibration_of(versions[-1]),
            weights=n,
            score_bins=counts["b"].to_numpy(dtype=np.int64),
        )
    return {
        "window_days": days,
        "estimated_performance": estimated,
        "status": status,
        "reasons": reasons,
        "insufficient": insufficient,
        "measured_in": "sql",
        "not_measured": [NOT_MEASURED],
        "rows": int(n.sum()),
        "labeled_rows": int(n[labeled].sum()),
        "channels": channels,
        "model_versions": versions,
        "judged_version": versions[-1],
        "per_version": {},
        "selection_rate": float((n * counts["d"].to_numpy()).sum() / n.sum()),
        "accuracy": float(n[agree].sum() / n[labeled].sum()) if labeled.any() else None,
        "fairness": fairness,
        "alerts": alerts,
        "subgroups": None if by_value is None else subgroups_from_counts(by_value, policy, version=versions[-1]),
        "drift": {},
    }


def subgroups_from_counts(counts: pd.DataFrame, policy: Policy, *, version: str) -> subgroups.Discovery:
    """The subgroup discovery of :func:`window_counts` by protected value (``values=True``): over the
    protected attributes' values and their intersections only, as the inputs stay in the database."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({attr.column: counts[f"v{i}"] for i, attr in enumerate(policy.protected_attributes)})
    n = counts["n"].to_numpy(dtype=float)
    return subgroups.discover(
        frame,
        counts["d"].to_numpy(dtype=np.int64),
        policy,
        labels=counts["y"].to_numpy(dtype=float, na_value=np.nan),
        weights=n,
        measured_on=f"{int(n.sum())} decisions of version {version[:12]} in the window (SQL counts by protected "
        "value: the inputs stay in the database)",
    )


def _channel_counts(conn: sqlalchemy.Connection, predictions: str, in_window: tuple[Any, ...]) -> dict[str, int]:
    """The window's decisions per channel (every version): batch scoring and served online."""
    import sqlalchemy as sa

    if "channel" not in {c["name"] for c in sa.inspect(conn).get_columns(predictions)}:
        total = conn.execute(
            sa.select(sa.func.count()).select_from(sa.table(predictions, sa.column("scored_on"))).where(*in_window)
        ).scalar()
        return {"batch": int(total or 0)}
    p = sa.table(predictions, sa.column("scored_on"), sa.column("channel"))
    channel = sa.func.coalesce(p.c.channel, "batch")
    rows = conn.execute(sa.select(channel, sa.func.count()).where(*in_window).group_by(channel)).all()
    return {str(c): int(n) for c, n in rows}


def find_online(policy: Policy, row: str) -> dict[str, Any] | None:
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
    return dict(found) if found else None


def expire(policy: Policy, before: date, keep: set[str]) -> list[str]:
    """Delete the log table's days scored before ``before`` (both channels), except the days in ``keep``;
    returns the days deleted. Outcomes are kept: they are joined by row key, and hold no decision."""
    import sqlalchemy as sa

    _, predictions, _ = tables(policy)
    engine = engine_for(policy)
    try:
        with engine.begin() as conn:
            if not sa.inspect(conn).has_table(predictions):
                return []
            t = sa.table(predictions, sa.column("scored_on"))
            old = [r[0] for r in conn.execute(sa.select(t.c.scored_on).where(t.c.scored_on < before).distinct())]
            gone = sorted(d for d in old if str(d) not in keep)
            if gone:
                conn.execute(sa.delete(t).where(t.c.scored_on.in_(gone)))
    finally:
        engine.dispose()
    return [str(d) for d in gone]
