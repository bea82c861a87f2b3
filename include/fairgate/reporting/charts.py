"""The charts of the run report, the audit report and the Fairness view, drawn server-side.

Each function takes parts of an evidence record and returns PNG bytes, so a report is one HTML
file with its images inline that opens anywhere, offline, and looks the same in a year. matplotlib
runs on its non-interactive Agg backend; nothing here needs a display.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any, TypeGuard

from fairgate.monitoring.audit import audited

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from fairgate.governance.records import JSONObject
    from fairgate.monitoring.audit import AuditResult
    from fairgate.policy.schema import Threshold

PRIVILEGED, UNPRIVILEGED, BAND = "#4c72b0", "#dd8452", "#55a868"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure  # the object API: no pyplot state, safe in threads

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _short(labels: list[str], width: int = 40) -> list[str]:
    """Tick and legend labels cut to ``width`` characters, so long group keys leave room for the plot."""
    return [str(s) if len(str(s)) <= width else str(s)[: width - 1] + "…" for s in labels]


def _finite(x: Any) -> TypeGuard[float]:
    return isinstance(x, (int, float)) and math.isfinite(x)


def base_rates(bias: JSONObject, mitigation: JSONObject | None) -> bytes:
    """Favourable-label rate of each group in the training data, before and (if run) after reweighing."""
    comps = list((bias.get("comparisons") or {}).items())
    after = (mitigation or {}).get("after") or {}
    panels = [("before", dict(comps))] + ([("after reweighing", after)] if after else [])
    fig = _figure(4.2 * len(panels) + 1, 0.55 * len(comps) + 1.6)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (title, data) in zip(axes, panels, strict=True):
        keys = [k for k, _ in comps]
        y = range(len(keys))
        unpriv = [data.get(k, {}).get("base_rate_unprivileged", math.nan) for k in keys]
        priv = [data.get(k, {}).get("base_rate_privileged", math.nan) for k in keys]
        ax.barh([i + 0.2 for i in y], priv, height=0.4, color=PRIVILEGED, label="privileged")
        ax.barh([i - 0.2 for i in y], unpriv, height=0.4, color=UNPRIVILEGED, label="unprivileged")
        ax.set_yticks(list(y), _short(keys))
        ax.invert_yaxis()
        ax.set_title(f"Favourable-label rate, {title}")
        ax.set_xlabel("share of rows with the favourable label")
    axes[0].legend(loc="lower right", fontsize="small")
    return _png(fig)


def fairness_intervals(fairness: dict[str, JSONObject], thresholds: list[Threshold]) -> bytes:
    """Each gated metric per comparison, its interval, and the policy's band of acceptable values."""
    keys = list(fairness)
    fig = _figure(3.3 * len(thresholds) + 1, 0.45 * len(keys) + 1.6)
    axes = fig.subplots(1, len(thresholds), sharey=True, squeeze=False)[0]
    for ax, t in zip(axes, thresholds, strict=True):
        lo, hi = t.band
        ax.axvspan(lo, hi, color=BAND, alpha=0.15, label="accepted by the policy")
        for x in (lo, hi):
            ax.axvline(x, color=BAND, lw=1)
        ax.axvline(1.0 if t.kind == "ratio_band" else 0.0, color="#999", lw=0.8, ls=":")
        for i, key in enumerate(keys):
            m = fairness[key].get(t.metric) or {}
            value, low, high = m.get("value"), m.get("ci_low"), m.get("ci_high")
            if not _finite(value):
                ax.text(lo, i, " not measurable", va="center", fontsize="small", color="#a00")
                continue
            inside = t.contains(value)
            err = [[value - low], [high - value]] if _finite(low) and _finite(high) else None
            ax.errorbar([value], [i], xerr=err, fmt="o", color="#222" if inside else "#c44e52", capsize=3)
        ax.set_yticks(range(len(keys)), _short(keys))
        ax.set_ylim(len(keys) - 0.5, -0.5)
        ax.set_title(f"{t.metric.replace('_', ' ')}\n{t.describe()}", fontsize="medium")
    axes[0].legend(loc="lower left", fontsize="x-small")
    return _png(fig)


def tradeoff(
    points: dict[str, tuple[float | None, float | None]],
    *,
    label: str = "worst disparate impact",
    band: tuple[float, float] | None = (0.8, 1.25),
    parity: float = 1.0,
) -> bytes:
    """Each model the run measured as one point: (worst fairness value, balanced accuracy)."""
    fig = _figure(5.5, 3.8)
    ax = fig.subplots()
    colors = {"candidate": "#c44e52", "unmitigated": "#8172b2", "production": PRIVILEGED}
    if band:
        ax.axvspan(*band, color=BAND, alpha=0.15, label="accepted by the policy")
    ax.axvline(parity, color="#999", lw=0.8, ls=":")
    for name, (worst, acc) in points.items():
        if _finite(worst) and _finite(acc):
            ax.scatter([worst], [acc], s=80, color=colors.get(name, "#333"), zorder=3)
            ax.annotate(_short([name])[0], (worst, acc), textcoords="offset points", xytext=(8, 4))
    ax.set_xlabel(f"{label} across comparisons")
    ax.set_ylabel("balanced accuracy (held-out test)")
    ax.set_title("Fairness–accuracy position of each model")
    ax.margins(0.3)
    return _png(fig)


def pareto_front(points: list[tuple[str, float, float]]) -> list[str]:
    """The names of the points no other point beats on both closeness to parity (|log x|) and accuracy."""
    ranked = sorted(points, key=lambda p: (abs(math.log(p[1])), -p[2]))
    front, best = [], -math.inf
    for name, _, acc in ranked:
        if acc > best:
            front.append(name)
            best = acc
    return front


def search_front(
    points: list[tuple[str, float | None, float | None]],
    chosen: str | None,
    *,
    band: tuple[float, float] | None = (0.8, 1.25),
) -> bytes:
    """The mitigation search on the validation split: each candidate's (worst DI, balanced accuracy),
    the Pareto front joined, the policy's band shaded, the chosen candidate marked."""
    fig = _figure(6.2, 4.2)
    ax = fig.subplots()
    if band:
        ax.axvspan(*band, color=BAND, alpha=0.15, label="accepted by the policy")
    ax.axvline(1.0, color="#999", lw=0.8, ls=":")
    ok = [(n, x, y) for n, x, y in points if _finite(x) and x > 0 and _finite(y)]
    front = pareto_front(ok)
    on_front = sorted((p for p in ok if p[0] in front), key=lambda p: p[1])
    if len(on_front) > 1:
        ax.plot(
            [p[1] for p in on_front],
            [p[2] for p in on_front],
            color="#333",
            lw=1,
            ls="--",
            label="Pareto front",
            zorder=2,
        )
    for name, x, y in ok:
        mark = name == chosen
        ax.scatter(
            [x],
            [y],
            s=140 if mark else 50,
            color="#c44e52" if mark else "#8172b2",
            marker="*" if mark else "o",
            zorder=3,
            label="chosen" if mark else None,
        )
        ax.annotate(_short([name], 28)[0], (x, y), textcoords="offset points", xytext=(6, 4), fontsize="small")
    ax.set_xlabel("worst disparate impact across comparisons (validation split)")
    ax.set_ylabel("balanced accuracy (validation split)")
    ax.set_title("Mitigation search: fairness–accuracy of each candidate")
    ax.margins(0.25)
    ax.legend(fontsize="x-small", loc="best")
    return _png(fig)


def importance(result: JSONObject, top: int = 10) -> bytes:
    """Permutation importance per input column: overall bars, with each group's value as a marker."""
    overall = result.get("overall") or {}
    cols = sorted(overall, key=lambda c: -overall[c]["mean"])[:top]
    fig = _figure(6.5, 0.35 * len(cols) + 1.6)
    ax = fig.subplots()
    ax.barh(
        range(len(cols)),
        [overall[c]["mean"] for c in cols],
        xerr=[overall[c]["std"] for c in cols],
        color="#ccc",
        label="all test rows",
    )
    markers = ["o", "s", "^", "v", "D", "P", "X", "*"]
    for i, (group, values) in enumerate((result.get("by_group") or {}).items()):
        ax.scatter(
            [values[c]["mean"] for c in cols],
            range(len(cols)),
            marker=markers[i % len(markers)],
            s=22,
            label=_short([group])[0],
            zorder=3,
        )
    ax.set_yticks(range(len(cols)), _short(cols))
    ax.invert_yaxis()
    ax.axvline(0, color="#999", lw=0.8)
    ax.set_xlabel(result.get("metric", "importance"))
    ax.legend(fontsize="x-small", loc="lower right")
    return _png(fig)


def shapley_summary(summary: JSONObject, top: int = 10) -> bytes:
    """Mean absolute Shapley value per input: one bar per protected group side, inputs by overall weight."""
    overall = summary.get("overall") or {}
    cols = sorted(overall, key=lambda c: -overall[c])[:top]
    groups = list((summary.get("by_group") or {}).items())
    fig = _figure(6.5, 0.32 * len(cols) * max(1, len(groups)) ** 0.5 + 1.6)
    ax = fig.subplots()
    height = 0.8 / max(1, len(groups))
    for i, (group, values) in enumerate(groups):
        ax.barh(
            [k - 0.4 + height * (i + 0.5) for k in range(len(cols))],
            [values.get(c, 0.0) for c in cols],
            height=height,
            label=_short([group])[0],
        )
    ax.scatter(
        [overall[c] for c in cols], range(len(cols)), marker="|", s=200, color="black", label="all rows", zorder=3
    )
    ax.set_yticks(range(len(cols)), _short(cols))
    ax.invert_yaxis()
    ax.set_xlabel(f"mean |Shapley value| ({summary.get('output', '')})")
    ax.legend(fontsize="x-small", loc="lower right")
    return _png(fig)


def audit_trend(history: list[AuditResult], thresholds: list[Threshold] | None = None) -> bytes:
    """One panel per gated metric, one line per comparison across the audits in ``history`` (oldest first).

    The policy's band is shaded; the y-axis follows the data, so a wide band does not flatten the lines.
    """
    metrics = [t.metric for t in thresholds] if thresholds else ["disparate_impact"]
    bands = {t.metric: t.band for t in thresholds or []}
    dates = [h["date"] for h in history]
    keys = sorted({k for h in history for k in (h.get("fairness") or {})})
    fig = _figure(4.0 * min(len(metrics), 2) + 1.5, 3.0 * math.ceil(len(metrics) / 2) + 0.6)
    axes = fig.subplots(math.ceil(len(metrics) / 2), min(len(metrics), 2), squeeze=False, sharex=True).ravel()
    step = max(1, len(dates) // 6)
    degraded = [i for i, h in enumerate(history) if h.get("status") == "degraded"]
    for ax, metric in zip(axes, metrics, strict=False):
        seen: list[float] = []
        for key in keys:
            raw = [audited(h, key, metric) for h in history]
            values = [v if _finite(v) else math.nan for v in raw]
            seen += [v for v in values if not math.isnan(v)]
            ax.plot(range(len(dates)), values, marker="o", ms=3, label=_short([key])[0])
        if seen:
            pad = max(0.05, 0.15 * (max(seen) - min(seen)))
            ax.set_ylim(min(seen) - pad, max(seen) + pad)
        if metric in bands:
            ax.axhspan(*bands[metric], color=BAND, alpha=0.15)
            for edge in bands[metric]:
                ax.axhline(edge, color=BAND, lw=1)
        for i in degraded:
            ax.axvline(i, color="#c44e52", lw=0.8, ls="--")
        ax.set_title(metric.replace("_", " "), fontsize="medium")
        ax.set_xticks(range(0, len(dates), step), dates[::step], rotation=30, ha="right", fontsize="small")
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels) or 1), fontsize="x-small")
    fig.suptitle("Nightly audits (shaded: accepted by the policy; dashed: degraded audit)", fontsize="medium")
    return _png(fig)
