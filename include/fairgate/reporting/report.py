"""Human-readable views of the evidence: the model card (Markdown) and the run report (HTML).

Both are rendered from the same evidence record, so what a reviewer or auditor reads is what
was recorded. Sections follow Mitchell et al., "Model Cards for Model Reporting" (2019).
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import quote

from fairgate.contracts import Review
from fairgate.fairness.estimation import SideEstimate
from fairgate.fairness.metrics import Interval, Sides, both_sides
from fairgate.fairness.subgroups import Discovery
from fairgate.governance.records import JSONObject, LifecycleRecord
from fairgate.monitoring.audit import AuditResult, audited
from fairgate.pages import Image, fmt, markdown_to_html, render_html, render_markdown, section
from fairgate.policy.schema import Policy
from fairgate.reporting import charts
from fairgate.reporting.verdict import audit_verdict, verdict

if TYPE_CHECKING:
    from fairgate.data.quality import QualityResult
    from fairgate.reporting.overview import Overview

METRIC_LABELS = {
    "disparate_impact": "DI",
    "statistical_parity_difference": "SPD",
    "equal_opportunity_difference": "EOD",
    "average_odds_difference": "AOD",
    "false_positive_rate_difference": "FPR diff",
    "false_negative_rate_difference": "FNR diff",
}


def _interval(m: Interval | JSONObject) -> str:
    return f"{fmt(m.get('value'))} [{fmt(m.get('ci_low'))}, {fmt(m.get('ci_high'))}]"


def fairness_rows(fairness: JSONObject | None) -> list[list[str]]:
    """One row per comparison: group counts, then each metric with its interval."""
    rows = []
    for key, res in (fairness or {}).items():
        counts = res.get("counts", {})
        u, p = counts.get("unprivileged", {}), counts.get("privileged", {})
        rows.append(
            [key, f"{fmt(u.get('n'), 0)} / {fmt(p.get('n'), 0)}"] + [_interval(res.get(m, {})) for m in METRIC_LABELS]
        )
    return rows


def _worst(values: dict[str, JSONObject], metric: str) -> float | None:
    """The value of ``metric`` furthest from parity across comparisons (|log| for ratios)."""
    found = [
        float(x)
        for x in (v.get(metric) for v in values.values())
        if isinstance(x, (int, float)) and math.isfinite(x) and (metric != "disparate_impact" or x > 0)
    ]
    if not found:
        return None
    return max(found, key=lambda x: abs(math.log(x)) if metric == "disparate_impact" else abs(x))


def comparison_rows(comparison: JSONObject | None) -> list[list[str]]:
    """One row per model the run measured: candidate, unmitigated twin, production."""
    rows = []
    for name, pos in (comparison or {}).items():
        fair = pos.get("fairness") or {}
        rows.append(
            [
                name + (f" ({pos['version'][:12]})" if pos.get("version") else ""),
                fmt(pos.get("accuracy")),
                fmt(pos.get("balanced_accuracy")),
                fmt(pos.get("roc_auc")),
                fmt(_worst(fair, "disparate_impact")),
                fmt(_worst(fair, "equal_opportunity_difference")),
            ]
        )
    return rows


def compared_with(comparison: JSONObject | None) -> str | None:
    """The sentence that introduces the comparison table, naming only the models that were measured."""
    others = [
        {"unmitigated": "the same pipeline trained without mitigation", "production": "the model in production"}[name]
        for name in (comparison or {})
        if name != "candidate"
    ]
    return f"Compared with {' and with '.join(others)}:" if others else None


def tradeoff_points(comparison: JSONObject | None) -> dict[str, tuple[float | None, float | None]]:
    return {
        name: (_worst(pos.get("fairness") or {}, "disparate_impact"), pos.get("balanced_accuracy"))
        for name, pos in (comparison or {}).items()
    }


SEARCH_HEADER = ["candidate", "method", "status", "balanced accuracy", "worst DI", "band gap", "inside bands", "fit s"]


def _worst_of(metrics: JSONObject | None, metric: str) -> float | None:
    return _worst({k: {m: (v or {}).get("value") for m, v in r.items()} for k, r in (metrics or {}).items()}, metric)


def search_rows(search: JSONObject | None) -> list[list[str]]:
    """One row per candidate of the mitigation search, with its validation figures (failed ones too)."""
    rows = []
    for c in (search or {}).get("candidates", []):
        val = c.get("validation") or {}
        method = c["method"] + (f" {c['params']}" if c.get("params") else "")
        status = ("chosen" if c.get("chosen") else c["status"]) if c["status"] == "fitted" else f"failed: {c['error']}"
        rows.append(
            [
                c["id"],
                method,
                status,
                fmt((val.get("performance") or {}).get("balanced_accuracy")),
                fmt(_worst_of(val.get("fairness"), "disparate_impact")),
                "n/a" if c.get("band_gap") is None else fmt(c["band_gap"]),
                "yes" if c.get("within_bands") else "no",
                fmt(c.get("fit_s"), 1),
            ]
        )
    return rows


def search_summary(search: JSONObject | None) -> str | None:
    """One sentence: how many candidates, how many inside the bands on validation, which was chosen and why."""
    if not search:
        return None
    cands = search.get("candidates", [])
    failed = sum(c["status"] == "failed" for c in cands)
    return (
        f"Mitigation search: {len(cands)} candidates"
        + (f" ({failed} failed)" if failed else "")
        + f", {len(search.get('within_bands') or [])} inside every band on the validation split; chosen: "
        f"{search.get('chosen') or 'none'} ({search.get('note')}). That is the validation split: the gate judges "
        "the chosen candidate once more, on the test split it alone sees, and may still fail or ask for review."
    )


def search_points(search: JSONObject | None) -> list[tuple[str, float | None, float | None]]:
    return [
        (
            c["id"],
            _worst_of((c.get("validation") or {}).get("fairness"), "disparate_impact"),
            ((c.get("validation") or {}).get("performance") or {}).get("balanced_accuracy"),
        )
        for c in (search or {}).get("candidates", [])
        if c["status"] == "fitted"
    ]


COMPARISON_HEADER = ["model", "accuracy", "balanced accuracy", "ROC AUC", "worst DI", "worst EOD"]


def proxy_rows(proxies: JSONObject | None, top: int = 3) -> list[list[str]]:
    """Per protected attribute: AUC from all inputs together, the strongest single columns, flags."""
    rows = []
    for attr, res in ((proxies or {}).get("attributes") or {}).items():
        if "skipped" in res:
            rows.append([attr, "n/a", res["skipped"], ""])
            continue
        strongest = sorted(res["per_column"].items(), key=lambda kv: -kv[1])[:top]
        intervals = res.get("per_column_interval") or {}
        rows.append(
            [
                attr,
                fmt(res["all_columns"]),
                ", ".join(
                    f"{c} {fmt(a)}" + (f" [{fmt(intervals[c][0])}, {fmt(intervals[c][1])}]" if c in intervals else "")
                    for c, a in strongest
                ),
                ", ".join(res["flagged"]) or "none",
            ]
        )
    return rows


PROXY_HEADER = ["protected attribute", "AUC, all inputs", "strongest single inputs (AUC [interval])", "flagged"]


def importance_rows(result: JSONObject | None, top: int = 5) -> list[list[str]]:
    overall = (result or {}).get("overall") or {}
    groups = (result or {}).get("by_group") or {}
    rows = []
    for col in sorted(overall, key=lambda c: -overall[c]["mean"])[:top]:
        rows.append([col, fmt(overall[col]["mean"])] + [fmt(g[col]["mean"]) for g in groups.values()])
    return rows


FAIRNESS_HEADER = ["comparison", "n unpriv / priv", *METRIC_LABELS.values()]
BIAS_HEADER = ["comparison", "n unpriv", "n priv", "base rate unpriv", "base rate priv", "DI", "DI after reweighing"]


class Approval(TypedDict, total=False):
    """Who approved the model and how, as the Approval sections of the card and the report show it."""

    kind: str  # review, automatic or not_approved
    choice: str | None
    reviewer: str | None
    responded_at: str | None
    rationale: str | None
    decision: str
    override: str | None  # the run's exception to the policy's thresholds, in one sentence
    panel: list[str]  # each answer of a review panel, in one line (when review.quorum asked for several)
    note: str | None  # why an answer did not approve (a refused approval, a quorum not met)


def override_sentence(overrides: JSONObject | None) -> str | None:
    """A run's threshold override in one sentence: what changed, from what, why and at whose request."""
    if not overrides:
        return None
    before = overrides.get("policy_thresholds") or {}
    changes = []
    for key, value in (overrides.get("overrides") or {}).items():
        metric, _, bound = key.rpartition("_")
        was = (before.get(metric) or {}).get(bound)
        changes.append(
            f"{metric} {bound} {float(value):g} (policy: {f'{float(was):g}' if was is not None else 'none'})"
        )
    who = overrides.get("requested_by") or "a user the run does not name (not triggered by a signed-in user)"
    return (
        f"Thresholds overridden for this run, an exception to the policy: {'; '.join(changes)}. "
        f"Requested by {who}; rationale: {overrides.get('rationale')}"
    )


def approval(record: LifecycleRecord) -> Approval:
    """Who approved the model and how, for the Approval sections of the card and the report."""
    override = override_sentence(record.overrides)
    if record.review:
        review = record.review
        panel = review.get("panel") or []
        return {
            "kind": "review",
            "choice": review.get("choice"),
            "reviewer": review.get("reviewer"),
            "responded_at": review.get("responded_at"),
            "rationale": review.get("rationale"),
            "override": override,
            "panel": [
                f"{a.get('choice')} by {a.get('reviewer') or 'nobody (timed out)'} at {a.get('responded_at')}; "
                f"rationale: {a.get('rationale') or '(none given)'}"
                for a in panel
            ]
            if len(panel) > 1
            else [],
            "note": review.get("note") or None,
        }
    if record.decision == "deployed":
        return {"kind": "automatic", "override": override}
    return {"kind": "not_approved", "decision": record.decision, "override": override}


def _json(part: Any) -> JSONObject:
    """A typed section as the dict a template reads (``{}`` for a section the run did not reach)."""
    return part.to_json() if part is not None else {}


def _importance_header(result: JSONObject) -> list[str]:
    return ["input", "overall", *(result.get("by_group") or {})]


IMPACT_QUESTIONS = {
    "impact_assessment.affected_groups": "Who could be adversely affected",
    "impact_assessment.misuse": "How the system might be misused",
    "impact_assessment.redress": "The plan for redress",
    "impact_assessment.severity": "Severity of a wrong decision",
    "impact_assessment.mitigations": "Mitigations",
    "owners.retraining": "Owner: retraining",
    "owners.monitoring": "Owner: monitoring",
    "owners.complaints": "Owner: complaints",
}


def impact_rows(policy: Policy) -> list[tuple[str, str]]:
    """The impact assessment and owners as (question, answer) pairs; an unanswered one says so."""
    answers = {
        **{f"impact_assessment.{k}": v for k, v in policy.impact_assessment},
        **{f"owners.{k}": v for k, v in policy.owners},
    }
    out = []
    for key, question in IMPACT_QUESTIONS.items():
        value = answers[key]
        text = "; ".join(value) if isinstance(value, list) else value
        out.append((question, text or "unanswered"))
    return out


def model_card(record: LifecycleRecord, policy: Policy) -> str:
    """The model card of the model trained in ``record``'s run (Markdown)."""
    model, data, mitigation = section(_json(record.model)), section(_json(record.data)), record.mitigation or {}
    gate, bias = section(_json(record.gate)), record.bias or {}
    importance = (record.importance or {}).get("candidate")
    proxies = bias.get("proxies")
    return render_markdown(
        "model_card.md.j2",
        verdict=verdict(record, policy),
        record=section(record.to_json()),
        model=model,
        data=data,
        gate=gate,
        performance=section(record.performance),
        model_name=policy.model_name,
        estimator_params=policy.model.params,
        seed=policy.model.seed,
        decision_threshold=policy.model.decision_threshold,
        policy_sha256=record.policy.sha256,
        label=policy.dataset.label,
        favorable_label=policy.dataset.favorable_label,
        protected=[{"column": a.column, "privileged": a.privileged_group} for a in policy.protected_attributes],
        intersections=", ".join(" × ".join(c) for c in policy.intersections) or "none",
        use_protected=policy.use_protected_as_features,
        proxy_auc_warning=f"{policy.bias.proxy_auc_warning:g}",
        proxy_header=PROXY_HEADER,
        proxy_rows=proxy_rows(proxies) if proxies else None,
        proxy_measured_on=(proxies or {}).get("measured_on") or "training rows",
        confidence=f"{policy.fairness.confidence_level:.0%}",
        thresholds=", ".join(f"{t.metric} {t.describe()}" for t in policy.fairness.bounds),
        period=" to ".join(data["period"] or []) or "the whole source (not partitioned by date)",
        mitigation_text=mitigation.get("method") if mitigation.get("applied") else f"none ({mitigation.get('reason')})",
        fairness_header=FAIRNESS_HEADER,
        fairness_rows=fairness_rows(record.fairness),
        comparison_header=COMPARISON_HEADER,
        comparison_rows=comparison_rows(record.comparison),
        compared_with=compared_with(record.comparison),
        weighted=bool(model.get("weighted")),
        importance_header=_importance_header(importance) if importance else None,
        importance_rows=importance_rows(importance) if importance else None,
        insufficient=[r for r in gate["reasons"] or [] if "insufficient evidence" in r],
        proxy_warnings=bias.get("warnings") or [],
        short_of_evidence=bias.get("short_of_evidence") or [],
        approval=approval(record),
        search_summary=search_summary(record.search),
        search_header=SEARCH_HEADER,
        search_rows=search_rows(record.search),
        group_aware=model.get("group_aware") or [],
        impact=impact_rows(policy),
        review_required=policy.review.required,
    )


class ImportanceSection(TypedDict, total=False):
    """One model's permutation importance as the run report shows it (or why it was skipped)."""

    name: str
    skipped: str | None
    metric: str
    repeats: int | None
    rows: int | None
    measured_on: str
    header: list[str]
    rows_: list[list[str]]
    chart: Image


def _importance_sections(record: LifecycleRecord) -> list[ImportanceSection]:
    out: list[ImportanceSection] = []
    for name, result in (record.importance or {}).items():
        if not result.get("overall"):
            skipped = "; ".join(f"{k}: {v}" for k, v in (result.get("skipped") or {}).items())
            out.append({"name": name, "skipped": skipped})
            continue
        out.append(
            {
                "name": name,
                "skipped": None,
                "metric": result.get("metric", ""),
                "repeats": result.get("repeats"),
                "rows": result.get("rows"),
                "measured_on": result.get("measured_on") or f"{result.get('rows')} test rows",
                "header": _importance_header(result),
                "rows_": importance_rows(result),
                "chart": Image(charts.importance(result), f"permutation importance of the {name} model"),
            }
        )
    return out


def run_report(record: LifecycleRecord, policy: Policy) -> str:
    """A self-contained HTML page of the run's evidence: tables, charts (inline PNG) and the model card."""
    bias, mitigation = record.bias or {}, record.mitigation or {}
    fairness = record.fairness or {}
    images: dict[str, Image] = {}
    bias_rows = []
    if bias:
        for key, m in (bias.get("comparisons") or {}).items():
            after = (mitigation.get("after") or {}).get(key, {})
            bias_rows.append(
                [
                    key,
                    fmt(m.get("n_unprivileged"), 0),
                    fmt(m.get("n_privileged"), 0),
                    fmt(m.get("base_rate_unprivileged")),
                    fmt(m.get("base_rate_privileged")),
                    fmt(m.get("disparate_impact")),
                    fmt(after.get("disparate_impact")),
                ]
            )
        images["base_rates"] = Image(
            charts.base_rates(bias, mitigation if mitigation.get("applied") else None),
            "favourable-label rate per group before and after reweighing",
        )
    if record.performance:
        images["tradeoff"] = Image(charts.tradeoff(tradeoff_points(record.comparison)), "fairness-accuracy position")
    search = record.search
    if search:
        ratio = [t for t in policy.fairness.bounds if t.metric == "disparate_impact"]
        images["search"] = Image(
            charts.search_front(
                search_points(search),
                search.get("chosen"),
                band=(ratio[0].min, ratio[0].max) if ratio and ratio[0].min is not None else None,
            ),
            "fairness-accuracy of each candidate of the mitigation search (validation split)",
        )
    if fairness:
        metrics = {k: {m: v for m, v in r.items() if m != "counts"} for k, r in fairness.items()}
        images["fairness"] = Image(
            charts.fairness_intervals(metrics, list(policy.fairness.bounds)),
            "fairness metrics with intervals against the policy thresholds",
        )
    gate = section(_json(record.gate))
    gate["reasons"] = gate["reasons"] or []
    quality = section(_json(record.quality))
    quality["failures"] = quality["failures"] or []
    return render_html(
        "run_report.html.j2",
        record=section(record.to_json()),
        verdict=verdict(record, policy),
        model_name=policy.model_name,
        gate=gate,
        quality=quality,
        bias=section(bias) if bias else None,
        mitigation=section(mitigation),
        bias_header=BIAS_HEADER,
        bias_rows=bias_rows,
        proxy_auc_warning=f"{policy.bias.proxy_auc_warning:g}",
        proxy_header=PROXY_HEADER,
        proxy_rows=proxy_rows(bias.get("proxies")),
        proxy_measured_on=(bias.get("proxies") or {}).get("measured_on") or "training rows",
        performance=record.performance,
        comparison_header=COMPARISON_HEADER,
        comparison_rows=comparison_rows(record.comparison),
        fairness=fairness,
        confidence=f"{policy.fairness.confidence_level:.0%}",
        fairness_header=FAIRNESS_HEADER,
        fairness_rows=fairness_rows(fairness),
        charts=images,
        importance=_importance_sections(record),
        approval=approval(record),
        search=search,
        search_summary=search_summary(search),
        search_header=SEARCH_HEADER,
        search_rows=search_rows(search),
        card_html=markdown_to_html(model_card(record, policy)) if record.model else None,
        robustness_header=ROBUSTNESS_HEADER,
        robustness_rows=robustness_rows(record.robustness),
        subgroups=record.subgroups,
        subgroup_rows=subgroup_rows(record.subgroups),
        shapley=record.shapley,
        shapley_header=["input", "all rows", *((record.shapley or {}).get("by_group") or {})],
        shapley_rows=shapley_rows(record.shapley),
        shapley_chart=Image(charts.shapley_summary(record.shapley), "mean absolute Shapley value per input and group")
        if record.shapley
        else None,
    )


def shapley_rows(summary: JSONObject | None) -> list[list[str]]:
    """Each input's mean |Shapley value|, over all rows and per group side, largest first."""
    if not summary:
        return []
    overall, groups = summary.get("overall") or {}, list((summary.get("by_group") or {}).values())
    return [
        [col, fmt(overall[col]), *(fmt(g.get(col)) for g in groups)]
        for col in sorted(overall, key=lambda c: -overall[c])
    ]


ROBUSTNESS_HEADER = ["check", "rows", "changed", "share [interval]", "note"]


def robustness_rows(robustness: JSONObject | None) -> list[list[str]]:
    """One row per group of the stability check and per attribute of the counterfactual check."""
    if not robustness:
        return []
    rows = [
        [f"stability {group}", fmt(s["n"], 0), fmt(s["changed"], 0), _interval(s), ""]
        for group, s in robustness["stability"]["groups"].items()
    ]
    for column, c in robustness["counterfactual"].items():
        if "overall" not in c:
            rows.append([f"counterfactual {column}", "", "", "n/a", c.get("note") or ""])
            continue
        flipped = " + ".join(c["columns"])
        rows.append(
            [
                f"counterfactual {flipped}",
                fmt(c["overall"]["n"], 0),
                fmt(c["overall"]["changed"], 0),
                _interval(c["overall"]),
                c.get("note") or "",
            ]
        )
    return rows


def review_body(
    record: LifecycleRecord,
    policy: Policy | None = None,
    *,
    report_url: str,
    stored_uri: str,
    earlier: Review | None = None,
) -> str:
    """Markdown body of the review request: why a person is asked, the figures, where the report is;
    with the ``policy``, its review rules, impact assessment and owners (and what is unanswered)."""
    mitigation = record.mitigation or {}
    rules = policy.review if policy else None
    return render_markdown(
        "review_request.md.j2",
        verdict=verdict(record, policy) if policy else None,
        gate_passed=bool(record.gate and record.gate.outcome == "pass"),
        second_person=bool(policy and policy.override_needs_a_second_person),
        position=(len(earlier.approvals) + 1 if earlier else 1, rules.quorum if rules else 1),
        approved_by=list(earlier.approvals) if earlier else [],
        approvers=list(rules.approvers) if rules else [],
        separate=bool(rules and (rules.separate_from_trigger or rules.quorum > 1)),
        impact=impact_rows(policy) if policy else None,
        unanswered=policy.unanswered() if policy and policy.review.required == "always" else [],
        reasons=record.gate.reasons if record.gate else [],
        performance=section(record.performance),
        mitigated=f"yes ({mitigation.get('method')})" if mitigation.get("applied") else "no",
        search_summary=search_summary(record.search),
        fairness_header=FAIRNESS_HEADER,
        fairness_rows=fairness_rows(record.fairness),
        report_url=report_url,
        stored_uri=stored_uri,
        gate_uri=record.gate.uri if record.gate else None,
        override=override_sentence(record.overrides),
    )


def _v(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


def audit_report(result: AuditResult, history: list[AuditResult], thresholds: list[Any] | None = None) -> str:
    """HTML page: per-group rates with intervals, the trend of each metric (chart and table), the drift table."""
    metric_rows = []
    for key, res in (result.get("fairness") or {}).items():
        sel = res["rates"]["selection"]
        for m, v in res["metrics"].items():
            metric_rows.append(
                [
                    key,
                    m,
                    _v(v.get("value")),
                    f"[{_v(v.get('ci_low'))}, {_v(v.get('ci_high'))}]",
                    f"{_v(sel['unprivileged'].get('value'))} / {_v(sel['privileged'].get('value'))}",
                ]
            )
    trend_keys = sorted({(k, m) for h in history for k, r in (h.get("fairness") or {}).items() for m in r["metrics"]})
    trend_rows = [
        [
            k,
            m,
            *(_v(audited(h, k, m)) for h in history),
        ]
        for k, m in trend_keys
    ]
    return render_html(
        "audit_report.html.j2",
        result=result,
        window_days=len(result.get("window_days", [])),
        judged=(result.get("judged_version") or "")[:12],
        per_version_rows=[
            [
                v[:12],
                p["rows"],
                p["labeled_rows"],
                _v(p["selection_rate"]),
                "; ".join(f"{k}: DI {_v(m['disparate_impact']['value'])}" for k, m in p["fairness"].items()),
            ]
            for v, p in (result.get("per_version") or {}).items()
        ],
        reasons=result.get("reasons", []) + result.get("insufficient", []),
        metric_rows=metric_rows,
        trend_dates=history,
        trend_rows=trend_rows,
        trend_chart=Image(charts.audit_trend(history, thresholds), "trend of the audited fairness metrics")
        if history
        else None,
        drift_rows=[[k, _v(v)] for k, v in (result.get("drift") or {}).items()],
        estimate_rows=_estimate_rows(result.get("estimated_performance") or {}),
        verdict=audit_verdict(result),
        subgroups=result.get("subgroups"),
        subgroup_rows=subgroup_rows(result.get("subgroups")),
    )


def subgroup_rows(found: Discovery | JSONObject | None) -> list[list[Any]]:
    """The top subgroups of a discovery as table rows (the run report's and the audit page's)."""
    return [
        [
            " & ".join(f"{c}={v}" for c, v in f["subgroup"].items()),
            f["metric"],
            f["rows"],
            f"{f['rate']:.3f} / {f['rest_rate']:.3f}",
            f"{f['gap']:+.3f} [{_v(f['ci_low'])}, {_v(f['ci_high'])}]",
            f"{f['p_adjusted']:.3g}",
            "yes" if f["discovered"] else "no",
        ]
        for f in (found or {}).get("top", [])
    ]


def _estimate_rows(estimated: dict[str, Sides[SideEstimate]]) -> list[list[Any]]:
    rows = []
    for key, sides in estimated.items():
        for side, e in both_sides(sides):
            est, real = e.get("estimated") or {}, e.get("realised") or {}
            reliable = e.get("reliable")
            rows.append(
                [
                    key,
                    side,
                    e["rows_without_outcome"],
                    *(
                        x
                        for r in ("true_positive_rate", "false_positive_rate", "accuracy")
                        for x in (_v(est.get(r)), _v(real.get(r)))
                    ),
                    _v(e.get("calibration_error", e.get("test_calibration_error"))),
                    "unknown" if reliable is None else "yes" if reliable else "no",
                ]
            )
    return rows


@functools.lru_cache(maxsize=256)
def _trend_png(history_json: str, thresholds: tuple[Any, ...]) -> bytes:
    """A trend chart, drawn once per process for the same audits and bands (drawing is most of a page's time)."""
    import json

    return charts.audit_trend(json.loads(history_json), list(thresholds) or None)


def overview_html(data: Overview, *, user: str, thresholds: dict[str, list[Any]] | None = None) -> str:
    """The page itself; links are relative to the view's own URL. ``thresholds``: per model, for the trends."""
    import json

    trends = {
        m["name"]: Image(
            _trend_png(
                json.dumps(m["audits"], sort_keys=True, default=str), tuple((thresholds or {}).get(m["name"]) or ())
            ),
            f"trend of the audited fairness metrics of {m['name']}",
            "trend",
        )
        for m in data["models"]
        if m["audits"]
    }
    return render_html(
        "overview.html.j2",
        user=user,
        models=data["models"],
        trends=trends,
        report_path=run_report_path,
        audit_path=audit_report_path,
    )


def quality_report(result: QualityResult, *, title: str) -> str:
    """The quality stage's page (the run's data docs): every check with its counts."""
    return render_html("quality.html.j2", result=result, title=title)


def run_report_path(dag_id: str, run_id: str) -> str:
    return f"report/run/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


def audit_report_path(model: str, day: str) -> str:
    return f"report/audit/{quote(model, safe='')}/{quote(day, safe='')}"
