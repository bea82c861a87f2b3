"""The nightly audit's measurements: fairness with intervals, drift (PSI), per-version figures.

Pure: a window of the prediction log in, the audit result out. It judges the model version that
was in production at the window's end, with the same evidence rules as the fairness gate
(:func:`fairgate.fairness.gate.short_groups`). Reading the window and storing the audit are in
:mod:`fairgate.monitoring.prediction_log`; the stage that does both is :func:`fairgate.stages.monitoring.audit`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.fairness import estimation, subgroups
from fairgate.fairness.gate import judge_metric, short_groups
from fairgate.fairness.metrics import (
    SCORE_METRICS,
    GroupFigures,
    Interval,
    Sides,
    measure,
    score_disparities,
    wilson_interval,
)
from fairgate.fairness.multiplicity import adjusted, exceedance_p
from fairgate.groups import Comparison, cell_mask, comparisons, group_codes
from fairgate.monitoring.columns import LABEL_COLUMN

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.contracts import AuditStatus
    from fairgate.governance.registry import Manifest
    from fairgate.models.recourse import RecourseAudit
    from fairgate.monitoring.served_log import Quarantined
    from fairgate.policy.schema import Policy, Threshold

# Measurable from the decisions alone; the other metrics need outcomes.
SELECTION_METRICS = ("disparate_impact", "statistical_parity_difference")
OUTCOME_METRICS = (
    "equal_opportunity_difference",
    "average_odds_difference",
    "false_positive_rate_difference",
    "false_negative_rate_difference",
)


class WindowCounts(TypedDict):
    all: Sides[dict[str, float | None]]  # every prediction: n and selected per side
    labeled: Sides[dict[str, float | None]] | None  # the rows whose outcome arrived (None: none has)


class WindowRates(TypedDict):
    selection: dict[str, Interval]  # per side
    outcome: Sides[dict[str, Interval]] | None


class WindowFigures(TypedDict):
    """One comparison's figures in an audit window: selection metrics always, outcome metrics once outcomes arrived."""

    metrics: dict[str, Interval]
    counts: WindowCounts
    rates: WindowRates


class VersionFigures(TypedDict):
    """Rows and selection metrics of one model version that scored part of a window."""

    rows: int
    labeled_rows: int
    selection_rate: float
    fairness: dict[str, dict[str, Interval]]


class AuditResult(TypedDict, total=False):
    """A nightly audit as stored (``audits/model=…/date=…/audit.json``) and read by the report and the overview.

    An audit of an empty window has only the identifying keys, ``status``, ``reasons`` and the
    row counts; the SQL audit adds ``measured_in`` and ``not_measured``.
    """

    kind: str
    run_id: str
    date: str
    model_name: str
    window_days: list[str]
    outcomes_fetched: list[str]
    policy_sha256: str
    code_version: str
    status: AuditStatus
    reasons: list[str]
    insufficient: list[str]
    rows: int
    labeled_rows: int
    model_versions: list[str]
    judged_version: str
    per_version: dict[str, VersionFigures]
    selection_rate: float
    accuracy: float | None
    fairness: dict[str, WindowFigures]
    drift: dict[str, float]
    change_since_deployment: dict[str, dict[str, float]]
    review_queue: dict[str, Any] | None
    contests: dict[str, Any] | None
    estimated_performance: dict[str, Sides[estimation.SideEstimate]] | None
    recourse: RecourseAudit
    measured_in: str
    not_measured: list[str]
    report: dict[str, str]
    alerts: Alerts
    subgroups: subgroups.Discovery | None
    channels: dict[str, int]  # decisions in the window per channel: batch scoring, served online
    unlogged_decisions: int  # served decisions answered but not logged (audit.on_log_failure: answer)
    quarantined: list[Quarantined]  # served-log files that failed a check, moved aside (their decisions left out)


def audited(audit: AuditResult, key: str, metric: str) -> float | None:
    """The value of ``metric`` for comparison ``key`` in ``audit`` (None where it was not measured)."""
    figures = (audit.get("fairness") or {}).get(key)
    m = figures["metrics"].get(metric) if figures else None
    return m["value"] if m else None


def window_figures(
    selection: dict[str, GroupFigures], outcome: dict[str, GroupFigures], comps: list[Comparison]
) -> dict[str, WindowFigures]:
    """Each comparison's window figures from :func:`~fairgate.fairness.metrics.measure` of every prediction
    (``selection``) and of the rows with outcomes (``outcome``, empty when none arrived)."""
    out: dict[str, WindowFigures] = {}
    for comp in comps:
        sel, got = selection[comp.key], outcome.get(comp.key)
        metrics = {m: sel["metrics"][m] for m in SELECTION_METRICS}
        if got:
            metrics.update({m: got["metrics"][m] for m in OUTCOME_METRICS})
        out[comp.key] = {
            "metrics": metrics,
            "counts": {
                "all": {
                    "unprivileged": {k: sel["counts"]["unprivileged"][k] for k in ("n", "selected")},
                    "privileged": {k: sel["counts"]["privileged"][k] for k in ("n", "selected")},
                },
                "labeled": got["counts"] if got else None,
            },
            "rates": {
                "selection": {
                    "unprivileged": sel["rates"]["unprivileged"]["selection_rate"],
                    "privileged": sel["rates"]["privileged"]["selection_rate"],
                },
                "outcome": got["rates"] if got else None,
            },
        }
    return out


def psi(expected: np.ndarray, actual: np.ndarray, *, eps: float = 1e-4) -> float:
    """Population stability index of two distributions over the same bins.

    ``PSI = Σ (a_i − e_i) · ln(a_i / e_i)`` over bin shares, with empty bins floored at ``eps``.
    """
    import numpy as np

    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    e = np.clip(e / e.sum(), eps, None)
    a = np.clip(a / a.sum(), eps, None)
    return float(np.sum((a - e) * np.log(a / e)))


def feature_psi(reference: pd.Series, current: pd.Series, *, numeric: bool, bins: int = 10) -> float:
    """PSI of one feature: deciles of the reference for numerics, categories otherwise."""
    import numpy as np

    if numeric:
        edges = np.unique(np.quantile(reference.to_numpy(dtype=float), np.linspace(0, 1, bins + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        e = np.histogram(reference.to_numpy(dtype=float), edges)[0]
        a = np.histogram(current.to_numpy(dtype=float), edges)[0]
        return psi(e, a)

    def counts(s: pd.Series) -> pd.Series:
        # value_counts first, then stringify the few categories (fast on dictionary-encoded columns)
        vc = s.value_counts()
        vc.index = vc.index.astype(str)
        return vc.groupby(level=0).sum()

    ref, cur = counts(reference), counts(current)
    cats = ref.index.union(cur.index)
    return psi(ref.reindex(cats, fill_value=0).to_numpy(), cur.reindex(cats, fill_value=0).to_numpy())


def _per_version(df: pd.DataFrame, policy: Policy, versions: list[str]) -> dict[str, VersionFigures]:
    """Rows and selection metrics of each model version that scored part of the window (not pooled)."""
    import numpy as np

    out: dict[str, VersionFigures] = {}
    for v in versions:
        part = df[df["model_version"] == v].reset_index(drop=True)
        pred = part["decision"].to_numpy(dtype=np.int8)
        measured = measure(
            group_codes(part, policy),
            np.zeros(len(part), dtype=np.int8),
            pred,
            comparisons(policy),
            confidence=policy.fairness.confidence_level,
        )
        out[v] = {
            "rows": len(part),
            "labeled_rows": int(part[LABEL_COLUMN].notna().sum()),
            "selection_rate": float(pred.mean()),
            "fairness": {k: {m: r["metrics"][m] for m in SELECTION_METRICS} for k, r in measured.items()},
        }
    return out


def changes_since(fairness: dict[str, WindowFigures], manifest: Manifest) -> dict[str, dict[str, float]]:
    """Each metric's change from the value the deployment's gate measured on the test split."""
    deployed = manifest.get("fairness") or {}
    changes: dict[str, dict[str, float]] = {}
    for key, res in fairness.items():
        for metric, m in res["metrics"].items():
            at_gate = (deployed.get(key) or {}).get(metric)
            before, now = (at_gate["value"] if at_gate else None), m["value"]
            if before is not None and now is not None:
                changes.setdefault(key, {})[metric] = round(now - before, 6)
    return changes


class AlertTest(TypedDict):
    """One comparison × metric of a night's audit, as the alert decision saw it."""

    comparison: str
    metric: str
    value: float
    ci_low: float | None
    ci_high: float | None
    outside: bool  # the estimate lies outside the bound: the uncorrected view
    p: float | None  # one-sided, of "within the bound" (fairgate.fairness.multiplicity)
    p_adjusted: float | None
    alert: bool


class Alerts(TypedDict):
    correction: str  # audit.alert_correction: none | holm | bh
    alpha: float
    tests: list[AlertTest]


def judge_fairness(fairness: dict[str, WindowFigures], policy: Policy) -> tuple[list[str], list[str], Alerts]:
    """What is out of bounds (``reasons``), what cannot be judged (``insufficient``), and every test of the
    night with the alert decision (``alerts``) in a window's fairness.

    ``fairness`` maps each comparison to its ``metrics`` and ``counts`` (``all`` predictions,
    ``labeled`` rows or None): the Parquet and the SQL audit both judge through here. With
    ``audit.alert_correction: none`` an estimate outside its bound alerts; with ``holm`` (the
    default) or ``bh`` a test alerts when its p-value of having left the bound, adjusted over all
    of the night's tests, is at most ``1 - fairness.confidence_level``; the uncorrected view
    (``outside``) is kept beside it in the record.
    """
    reasons: list[str] = []
    insufficient: list[str] = []
    judged: list[tuple[str, Threshold, float, float | None, float | None]] = []
    for key, res in fairness.items():
        short = short_groups(res["counts"]["all"], policy, unit="predictions", positives=False)
        if short:
            insufficient.extend(f"{key}: {s}" for s in short)
            continue
        labeled = res["counts"]["labeled"]
        lacking = (
            short_groups(labeled, policy, unit="labeled rows")
            if labeled
            else ["no outcomes have arrived: insufficient evidence"]
        )
        for t in policy.fairness.bounds:
            m = res["metrics"].get(t.metric)
            if m is None and not (t.metric in SCORE_METRICS and labeled):
                continue
            if t.metric not in SELECTION_METRICS and lacking:
                insufficient.extend(f"{key}: {t.metric}: {s}" for s in lacking)
                continue
            if m is None:  # a score metric the audit could not measure (the SQL audit reads aggregates)
                insufficient.append(f"{key}: {t.metric}: not measured by this audit: insufficient evidence")
            elif m["value"] is None:
                insufficient.append(f"{key}: {t.metric}: not defined on this window: insufficient evidence")
            else:
                judged.append((key, t, m["value"], m["ci_low"], m["ci_high"]))
    rule, level = policy.audit.alert_correction, policy.fairness.confidence_level
    alpha = 1 - level
    p = [
        exceedance_p(t, value, low, high, level) if low is not None and high is not None else None
        for _, t, value, low, high in judged
    ]
    tested = [i for i, x in enumerate(p) if x is not None]
    adjusted_p: list[float | None] = [None] * len(judged)
    for i, a in zip(tested, adjusted([x for x in p if x is not None], rule), strict=True):
        adjusted_p[i] = a
    tests: list[AlertTest] = []
    for (key, t, value, low, high), p_i, a_i in zip(judged, p, adjusted_p, strict=True):
        outside = not t.contains(value)
        alert = outside if rule == "none" or a_i is None else outside and a_i <= alpha
        if alert:
            _, msg = judge_metric(t, value, low, high, 0.0)
            said = (
                ""
                if rule == "none" or a_i is None
                else f" (p={p_i:.3g}; {rule}-adjusted {a_i:.3g} <= {alpha:g} over {len(tested)} tests)"
            )
            reasons.append(f"{key}: {msg}{said}")
        tests.append(
            {
                "comparison": key,
                "metric": t.metric,
                "value": value,
                "ci_low": low,
                "ci_high": high,
                "outside": outside,
                "p": p_i,
                "p_adjusted": a_i,
                "alert": alert,
            }
        )
    return reasons, insufficient, {"correction": rule, "alpha": round(alpha, 12), "tests": tests}


def measure_window(
    df: pd.DataFrame, versions: list[str], policy: Policy, *, manifest: Manifest, training: pd.DataFrame | None
) -> AuditResult:
    """Fairness, drift and performance of a window of the prediction log, and its status.

    ``versions`` are ordered by the last day each scored (see
    :func:`fairgate.monitoring.prediction_log.read_window`); the last one, in production at the window's end,
    is judged on its own rows, and every version's own figures are reported when there are
    several. ``manifest`` and ``training`` are that version's deployment manifest and training
    snapshot (the drift baseline; None when it cannot be read).
    """
    import numpy as np

    version = versions[-1]  # in production at the window's end (see read_window); the one judged
    per_version = _per_version(df, policy, versions) if len(versions) > 1 else {}
    df = df[df["model_version"] == version].reset_index(drop=True)
    codes = group_codes(df, policy)
    pred = df["decision"].to_numpy(dtype=np.int8)
    labeled = df[LABEL_COLUMN].notna().to_numpy()
    comps = comparisons(policy)
    # Selection metrics need no outcomes: all predictions count.
    selection = measure(
        codes, np.zeros(len(df), dtype=np.int8), pred, comps, confidence=policy.fairness.confidence_level
    )
    outcome = (
        measure(
            codes[labeled].reset_index(drop=True),
            df.loc[labeled, LABEL_COLUMN].to_numpy(dtype=np.int8),
            pred[labeled],
            comps,
            confidence=policy.fairness.confidence_level,
        )
        if labeled.any()
        else {}
    )

    fairness = window_figures(selection, outcome, comps)
    if labeled.any() and "score" in df.columns:  # ranking and calibration of the scores, where outcomes arrived
        scored = score_disparities(
            codes[labeled].reset_index(drop=True),
            df.loc[labeled, LABEL_COLUMN].to_numpy(dtype=float),
            df.loc[labeled, "score"].to_numpy(dtype=float),
            comps,
            confidence=policy.fairness.confidence_level,
        )
        for key, figures in scored.items():
            fairness[key]["metrics"].update(figures["metrics"])
    reasons, insufficient, alerts = judge_fairness(fairness, policy)

    snapshot = training
    drift = {}
    if snapshot is not None and len(df) < policy.audit.min_drift_rows:
        insufficient.append(
            f"drift not judged: the window holds {len(df)} decision(s) (< audit.min_drift_rows "
            f"{policy.audit.min_drift_rows}); the PSI of so few is noise"
        )
    elif snapshot is not None:
        for col in policy.features:
            if col in df.columns and col in snapshot.columns:
                value = feature_psi(snapshot[col], df[col], numeric=col in policy.numeric)
                drift[col] = value
                if value > policy.audit.psi_threshold:
                    reasons.append(f"feature {col!r} drifted: PSI={value:.3f} > {policy.audit.psi_threshold:g}")
        ref_codes = group_codes(snapshot, policy)
        cells = [tuple(zip(codes.columns, v, strict=True)) for v in np.ndindex(*(2,) * len(codes.columns))]
        mix = psi(
            np.array([cell_mask(ref_codes, c).sum() for c in cells]),
            np.array([cell_mask(codes, c).sum() for c in cells]),
        )
        drift["__group_mix__"] = mix
        if mix > policy.audit.group_mix_psi_threshold:
            reasons.append(f"group mix drifted: PSI={mix:.3f} > {policy.audit.group_mix_psi_threshold:g}")
    else:
        insufficient.append("training snapshot of the production model not found: drift not measured")

    changes = changes_since(fairness, manifest)
    found = (
        subgroups.discover(
            df,
            pred,
            policy,
            labels=df[LABEL_COLUMN].to_numpy(dtype=float),
            measured_on=f"{len(df)} decisions of version {version[:12]} in the window",
        )
        if policy.subgroups.enabled
        else None
    )

    status: AuditStatus = "degraded" if reasons else "insufficient_evidence" if insufficient else "healthy"
    labels_rows = int(labeled.sum())
    accuracy = (
        float((pred[labeled] == df.loc[labeled, LABEL_COLUMN].to_numpy(dtype=np.int8)).mean()) if labels_rows else None
    )
    review = review_queue_figures(df, codes, policy) if "review_status" in df.columns else None
    contests = contest_figures(df, codes, policy) if "case_kind" in df.columns else None
    estimated = None
    if "score" in df.columns:  # rates before outcomes arrive, and how far off they were where they have
        estimated = estimation.per_group(
            codes,
            df["score"].to_numpy(dtype=float),
            pred,
            comps,
            outcomes=df[LABEL_COLUMN].to_numpy(dtype=float, na_value=np.nan),
            deployed=manifest.get("calibration"),
        )
    return {
        "review_queue": review,
        "contests": contests,
        "estimated_performance": estimated,
        "status": status,
        "reasons": reasons,
        "insufficient": insufficient,
        "rows": len(df),
        "labeled_rows": labels_rows,
        "model_versions": versions,
        "judged_version": version,
        "per_version": per_version,
        "selection_rate": float(pred.mean()),
        "accuracy": accuracy,
        "fairness": fairness,
        "alerts": alerts,
        "subgroups": found,
        "drift": {k: round(v, 6) for k, v in drift.items()},
        "change_since_deployment": changes,
    }


def with_recourse(result: AuditResult, recourse: RecourseAudit, policy: Policy) -> AuditResult:
    """The audit ``result`` with its recourse figures, judged against ``recourse.max_share_gap`` when set:
    a difference between groups in the share of unfavourable decisions that have recourse, outside the
    bound, degrades the audit like any fairness metric."""
    bound = policy.recourse.max_share_gap
    reasons = list(result["reasons"])
    for key, comp in recourse["comparisons"].items():
        gap = comp["share_gap"]
        if bound is not None and gap is not None and gap["value"] is not None and abs(gap["value"]) > bound:
            reasons.append(
                f"{key}: recourse share gap={gap['value']:.4f} [{gap['ci_low']:.4f}, "
                f"{gap['ci_high']:.4f}] vs |x| <= {bound:g}"
            )
    status: AuditStatus = "degraded" if reasons else result["status"]
    return {**result, "recourse": recourse, "reasons": reasons, "status": status}


def share(k: int, n: int, confidence: float) -> Interval:
    """``k`` of ``n`` as a share with its Wilson interval (all None when ``n`` is 0)."""
    low, high = wilson_interval(k, n, confidence) if n else (None, None)
    return {"value": k / n if n else None, "ci_low": low, "ci_high": high}


def _sides(codes: pd.DataFrame, policy: Policy) -> Iterator[tuple[str, str, np.ndarray]]:
    """Each comparison's key, side (unprivileged, privileged) and the rows of that side."""
    for comp in comparisons(policy):
        for side, cell in (("unprivileged", comp.unprivileged), ("privileged", comp.privileged)):
            yield comp.key, side, cell_mask(codes, cell)


def review_queue_figures(df: pd.DataFrame, codes: pd.DataFrame, policy: Policy) -> dict[str, Any]:
    """Per side of each comparison: decisions, how many went to review (pending) and how many were over the
    daily cap, the share queued, and of the reviews decided so far how many were overturned (the overturn
    rate), each share with its Wilson interval. The window's decisions are the final ones: a review's
    outcome supersedes the automatic decision."""
    import numpy as np

    status = df["review_status"].to_numpy()
    if "case_kind" in df.columns:
        reviewed = ((df["case_kind"] == "review") & df["case_decided"]).to_numpy(dtype=bool)
        overturned = reviewed & df["overturned"].to_numpy(dtype=bool)
    else:
        reviewed = overturned = np.zeros(len(df), dtype=bool)

    level = policy.fairness.confidence_level
    out: dict[str, Any] = {}
    for key, side, mask in _sides(codes, policy):
        n, pending = int(mask.sum()), int((mask & (status == "pending")).sum())
        r, o = int((mask & reviewed).sum()), int((mask & overturned).sum())
        out.setdefault(key, {})[side] = {
            "decisions": n,
            "pending": pending,
            "over_cap": int((mask & (status == "over_cap")).sum()),
            "share_queued": share(pending, n, level),
            "reviewed": r,
            "overturned": o,
            "overturn_rate": share(o, r, level),
        }
    return {
        "pending": int(np.sum(status == "pending")),
        "over_cap": int(np.sum(status == "over_cap")),
        "reviewed": int(reviewed.sum()),
        "overturned": int(overturned.sum()),
        "above_cap": policy.review_triggers.above_cap,
        "comparisons": out,
    }


def contest_figures(df: pd.DataFrame, codes: pd.DataFrame, policy: Policy) -> dict[str, Any]:
    """Per side of each comparison: decisions, contests and overturns, the contest rate (contests per
    decision) and the overturn rate (overturns per contest), each with its Wilson interval. The
    window's decisions are the final ones: an overturned decision counts as the reviewer decided it."""

    contested = (df["case_kind"] == "contest").to_numpy(dtype=bool)
    overturned = df["overturned"].to_numpy(dtype=bool) & contested

    level = policy.fairness.confidence_level
    out: dict[str, Any] = {}
    for key, side, mask in _sides(codes, policy):
        n, c, o = int(mask.sum()), int((mask & contested).sum()), int((mask & overturned).sum())
        out.setdefault(key, {})[side] = {
            "decisions": n,
            "contested": c,
            "overturned": o,
            "contest_rate": share(c, n, level),
            "overturn_rate": share(o, c, level),
        }
    return {"contested": int(contested.sum()), "overturned": int(overturned.sum()), "comparisons": out}
