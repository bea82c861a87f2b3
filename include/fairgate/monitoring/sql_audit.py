"""The audit's fairness figures pushed down to the database that holds the prediction log.

One query returns the window's rows counted by joint group cell, decision and arrived outcome
(``GROUP BY``); every metric and interval is then computed from those counts by the same
:func:`fairgate.fairness.metrics.measure` the Parquet path uses, with the counts as weights, so the two
paths agree exactly. Only counts leave the database: at most ``2^k · 2 · 3`` rows for ``k``
protected attributes.

The tables are :mod:`fairgate.monitoring.log_table`'s: batch-scored and served decisions side by side
(``channel``), both counted.

An outcome counts when its prediction was scored on or before ``day - audit.label_lag_days``,
the label-lag rule of :func:`fairgate.monitoring.prediction_log.read_window`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from fairgate.errors import StageError
from fairgate.fairness import estimation, subgroups
from fairgate.fairness.estimation import BINS
from fairgate.fairness.metrics import measure
from fairgate.groups import comparisons
from fairgate.monitoring import log_table
from fairgate.monitoring.audit import AuditResult, WindowFigures, judge_fairness, window_figures
from fairgate.monitoring.columns import LABEL_COLUMN

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy

    from fairgate.contracts import AuditStatus
    from fairgate.fairness.estimation import Calibration
    from fairgate.policy.schema import Policy


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


# --- the audit on the prediction log's table --------------------------------------------------------

NOT_MEASURED = (
    "feature drift, recourse, the scores' ranking and calibration differences, and subgroups that name an input: "
    "the SQL audit reads counts only, and the inputs stay in the database"
)


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

    conn_id, predictions, outcomes = log_table.tables(policy)
    engine = log_table.engine_for(policy)
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
            channels = _channel_counts(conn, predictions, start, day)
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


def _channel_counts(conn: sqlalchemy.Connection, predictions: str, start: date, day: date) -> dict[str, int]:
    """The window's decisions per channel (every version): batch scoring and served online."""
    import sqlalchemy as sa

    has_channel = "channel" in {c["name"] for c in sa.inspect(conn).get_columns(predictions)}
    p = sa.table(predictions, sa.column("scored_on"), *([sa.column("channel")] if has_channel else []))
    channel = sa.func.coalesce(p.c.channel, "batch") if has_channel else sa.literal("batch")
    query = sa.select(channel, sa.func.count()).where(p.c.scored_on >= start, p.c.scored_on <= day).group_by(channel)
    return {str(c): int(n) for c, n in conn.execute(query).all()}
