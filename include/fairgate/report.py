"""Human-readable views of the evidence: the model card (Markdown) and the run report (HTML).

Both are rendered from the same evidence record, so what a reviewer or auditor reads is what
was recorded. Sections follow Mitchell et al., "Model Cards for Model Reporting" (2019).
"""

from __future__ import annotations

import html
from typing import Any

from fairgate.policy import Policy

METRIC_LABELS = {
    "disparate_impact": "DI",
    "statistical_parity_difference": "SPD",
    "equal_opportunity_difference": "EOD",
    "average_odds_difference": "AOD",
    "false_positive_rate_difference": "FPR diff",
    "false_negative_rate_difference": "FNR diff",
}


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _interval(m: dict[str, Any]) -> str:
    return f"{_fmt(m.get('value'))} [{_fmt(m.get('ci_low'))}, {_fmt(m.get('ci_high'))}]"


def fairness_rows(fairness: dict[str, Any] | None) -> list[list[str]]:
    """One row per comparison: group counts, then each metric with its interval."""
    rows = []
    for key, res in (fairness or {}).items():
        counts = res.get("counts", {})
        u, p = counts.get("unprivileged", {}), counts.get("privileged", {})
        rows.append([key, f"{_fmt(u.get('n'), 0)} / {_fmt(p.get('n'), 0)}"]
                    + [_interval(res.get(m, {})) for m in METRIC_LABELS])
    return rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _worst(values: dict[str, dict[str, Any]], metric: str) -> float | None:
    """The value of ``metric`` furthest from parity across comparisons (|log| for ratios)."""
    import math

    found = [v.get(metric) for v in values.values() if isinstance(v.get(metric), (int, float))
             and math.isfinite(v.get(metric)) and (metric != "disparate_impact" or v.get(metric) > 0)]
    if not found:
        return None
    return max(found, key=lambda x: abs(math.log(x)) if metric == "disparate_impact" else abs(x))


def comparison_rows(comparison: dict[str, Any] | None) -> list[list[str]]:
    """One row per model the run measured: candidate, unmitigated twin, production."""
    rows = []
    for name, pos in (comparison or {}).items():
        fair = pos.get("fairness") or {}
        rows.append([name + (f" ({pos['version'][:12]})" if pos.get("version") else ""),
                     _fmt(pos.get("accuracy")), _fmt(pos.get("balanced_accuracy")), _fmt(pos.get("roc_auc")),
                     _fmt(_worst(fair, "disparate_impact")), _fmt(_worst(fair, "equal_opportunity_difference"))])
    return rows


def tradeoff_points(comparison: dict[str, Any] | None) -> dict[str, tuple[float | None, float | None]]:
    return {name: (_worst(pos.get("fairness") or {}, "disparate_impact"), pos.get("balanced_accuracy"))
            for name, pos in (comparison or {}).items()}


COMPARISON_HEADER = ["model", "accuracy", "balanced accuracy", "ROC AUC", "worst DI", "worst EOD"]


def proxy_rows(proxies: dict[str, Any] | None, top: int = 3) -> list[list[str]]:
    """Per protected attribute: AUC from all inputs together, the strongest single columns, flags."""
    rows = []
    for attr, res in ((proxies or {}).get("attributes") or {}).items():
        if "skipped" in res:
            rows.append([attr, "n/a", res["skipped"], ""])
            continue
        strongest = sorted(res["per_column"].items(), key=lambda kv: -kv[1])[:top]
        rows.append([attr, _fmt(res["all_columns"]), ", ".join(f"{c} {_fmt(a)}" for c, a in strongest),
                     ", ".join(res["flagged"]) or "none"])
    return rows


PROXY_HEADER = ["protected attribute", "AUC, all inputs", "strongest single inputs (AUC)", "flagged"]


def importance_rows(result: dict[str, Any] | None, top: int = 5) -> list[list[str]]:
    overall = (result or {}).get("overall") or {}
    groups = (result or {}).get("by_group") or {}
    rows = []
    for col in sorted(overall, key=lambda c: -overall[c]["mean"])[:top]:
        rows.append([col, _fmt(overall[col]["mean"])] + [_fmt(g[col]["mean"]) for g in groups.values()])
    return rows


def approval_text(record: dict[str, Any]) -> str:
    review = record.get("review")
    if review:
        return (f"Human review: **{review.get('choice')}** by {review.get('reviewer') or 'nobody (timed out)'} "
                f"at {review.get('responded_at')}; rationale: {review.get('rationale') or '(none given)'}")
    if record.get("decision") == "deployed":
        return "Approved automatically: every fairness and performance check passed."
    return f"Not approved (decision: {record.get('decision')})."


def model_card(record: dict[str, Any], policy: Policy) -> str:
    """The model card of the model trained in ``record``'s run (Markdown)."""
    model = record.get("model") or {}
    data = record.get("data") or {}
    perf = record.get("performance") or {}
    gate = record.get("gate") or {}
    mitigation = record.get("mitigation") or {}
    bias = record.get("bias") or {}
    insufficient = [r for r in gate.get("reasons", []) if "insufficient evidence" in r]
    fair_table = _md_table(["comparison", "n unpriv / priv"] + list(METRIC_LABELS.values()),
                           fairness_rows(record.get("fairness")))
    protected = ", ".join(f"`{a.column}` (privileged: {list(a.privileged) or f'{a.op} {a.value}'})"
                          for a in policy.protected)
    intersections = ", ".join(" × ".join(c) for c in policy.intersections) or "none"
    importance = (record.get("importance") or {}).get("candidate")
    imp_table = _md_table(["input", "overall"] + list((importance or {}).get("by_group") or {}),
                          importance_rows(importance)) if importance else "Not measured."
    period = " to ".join(data.get("period") or []) or "the whole source (not partitioned by date)"
    proxies = bias.get("proxies")
    return f"""# Model card: {policy.model_name} ({(model.get('sha256') or '')[:12]})

## Model details
- Estimator: scikit-learn `{model.get('estimator')}` with parameters `{policy.estimator_params}`, seed {policy.seed}
- Trained by the `{record.get('dag_id')}` run `{record.get('run_id')}`; model sha256 `{model.get('sha256')}`
- Training used reweighing weights: {model.get('weighted')}
- Decision threshold: {policy.decision_threshold}; code version {record.get('code_version')}
- Policy sha256 `{(record.get('policy') or {}).get('sha256')}`

## Intended use
Binary decision support predicting `{policy.label}` = `{policy.favorable_label}`. Outputs are meant to be
reviewed within the organisation's process, not to be the sole basis of a decision about a person.
Each scored record is stored with up to three plain-language reasons (`fairgate explain`).

## Factors
Protected attributes: {protected}. Intersections measured: {intersections}.
Protected attributes are {'used' if policy.use_protected_as_features else 'not used'} as model features.
How well the model's inputs predict each protected attribute (cross-validated ROC AUC; warning at
{policy.proxy_auc_warning:g}):

{_md_table(PROXY_HEADER, proxy_rows(proxies)) if proxies else 'Not measured.'}

## Metrics
Performance: accuracy, balanced accuracy, ROC AUC. Fairness (unprivileged minus / over privileged):
disparate impact, statistical parity difference, equal opportunity difference, average odds
difference, FPR and FNR differences, each with a {policy.confidence_level:.0%} confidence interval.
Gate thresholds: {', '.join(f'{t.metric} {t.describe()}' for t in policy.fairness_thresholds)}.

## Evaluation data
Held-out test split of the snapshot ({(model.get('rows') or {}).get('test')} rows), stratified by label and group.

## Training data
Snapshot `{data.get('uri')}`: {data.get('rows')} rows, sha256 `{data.get('sha256')}`, source `{data.get('source')}`,
period: {period}.
Mitigation: {mitigation.get('method') if mitigation.get('applied') else 'none (' + str(mitigation.get('reason')) + ')'}.

## Quantitative analyses
Accuracy {_fmt(perf.get('accuracy'))}, balanced accuracy {_fmt(perf.get('balanced_accuracy'))},
ROC AUC {_fmt(perf.get('roc_auc'))}, selection rate {_fmt(perf.get('selection_rate'))}.

{fair_table}

Compared with the same pipeline trained without reweighing, and with the model in production:

{_md_table(COMPARISON_HEADER, comparison_rows(record.get('comparison')))}

Most important inputs (permutation importance, drop in ROC AUC on the test rows, overall and per group):

{imp_table}

## Ethical considerations and caveats
- Gate outcome: **{gate.get('outcome')}**. Reasons: {'; '.join(gate.get('reasons', [])) or 'none'}.
- Groups with insufficient evidence: {'; '.join(insufficient) or 'none'}.
- Proxy warnings: {'; '.join(bias.get('warnings') or []) or 'none at the policy threshold'}.
- Group definitions are binary (privileged vs not); disparities inside the unprivileged group are not shown
  unless an intersection covers them.
- Reweighing changes the weights of training rows, not the features: inputs that stand in for a protected
  attribute (see Factors) still carry it into the model.
- Reason codes give the effect of one input at a time against a typical training record; for a linear model
  they are exact, for a model whose inputs interact they can miss a joint effect.

## Approval
{approval_text(record)}
"""


def run_report(record: dict[str, Any], policy: Policy) -> str:
    """A self-contained HTML page of the run's evidence: tables, charts (inline PNG) and the model card."""
    from markdown_it import MarkdownIt

    from fairgate import charts

    esc = html.escape

    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    bias = record.get("bias") or {}
    mitigation = record.get("mitigation") or {}
    gate = record.get("gate") or {}
    quality = record.get("quality") or {}
    fairness = record.get("fairness") or {}
    sections = [f"""<h1>{esc(policy.model_name)}: {esc(str(record.get('decision')))}</h1>
<p>Run <code>{esc(str(record.get('run_id')))}</code> of <code>{esc(str(record.get('dag_id')))}</code>.
Everything below is drawn from the run's evidence record.</p>
<p class="decision">Gate: <b>{esc(str(gate.get('outcome')))}</b>. {esc('; '.join(gate.get('reasons', [])[:3]))}</p>""",
                f"""<h2>Data quality</h2><p>{esc(str(quality.get('rows')))} rows; {esc(str(quality.get('checks')))}
checks, {esc(str(quality.get('failed')))} failed. {esc('; '.join(quality.get('failures') or []))}</p>"""]
    if bias:
        rows = []
        for key, m in (bias.get("comparisons") or {}).items():
            after = (mitigation.get("after") or {}).get(key, {})
            rows.append([key, _fmt(m.get("n_unprivileged"), 0), _fmt(m.get("n_privileged"), 0),
                         _fmt(m.get("base_rate_unprivileged")), _fmt(m.get("base_rate_privileged")),
                         _fmt(m.get("disparate_impact")), _fmt(after.get("disparate_impact"))])
        sections.append(
            "<h2>Bias in the training data</h2>"
            + table(["comparison", "n unpriv", "n priv", "base rate unpriv", "base rate priv", "DI",
                     "DI after reweighing"], rows)
            + charts.inline_png(charts.base_rates(bias, mitigation if mitigation.get("applied") else None),
                   "favourable-label rate per group before and after reweighing")
            + f"<p>Bias detected: {esc(str(bias.get('detected')))}; mitigation applied: "
              f"{esc(str(mitigation.get('applied')))}.</p>"
            + f"<h3>Proxy check (warning at AUC {policy.proxy_auc_warning:g})</h3>"
            + table(PROXY_HEADER, proxy_rows(bias.get("proxies"))))
    if record.get("performance"):
        sections.append("<h2>Model performance and comparison (held-out test)</h2>"
                        + table(COMPARISON_HEADER, comparison_rows(record.get("comparison")))
                        + charts.inline_png(charts.tradeoff(tradeoff_points(record.get("comparison"))),
                               "fairness-accuracy position"))
    if fairness:
        metrics = {k: {m: v for m, v in r.items() if m != "counts"} for k, r in fairness.items()}
        sections.append(
            f"<h2>Fairness of the model (value [{policy.confidence_level:.0%} interval])</h2>"
            + table(["comparison", "n unpriv / priv"] + list(METRIC_LABELS.values()), fairness_rows(fairness))
            + charts.inline_png(charts.fairness_intervals(metrics, list(policy.fairness_thresholds)),
                   "fairness metrics with intervals against the policy thresholds"))
    for name, result in (record.get("importance") or {}).items():
        if not result.get("overall"):
            sections.append(f"<h2>What the {esc(name)} model relies on</h2><p>Not measured: "
                            f"{esc('; '.join(f'{k}: {v}' for k, v in result.get('skipped', {}).items()))}</p>")
            continue
        sections.append(f"<h2>What the {esc(name)} model relies on</h2>"
                        f"<p>Permutation importance: {esc(result.get('metric', ''))} when one input is shuffled, "
                        f"{result.get('repeats')} repeats on {result.get('rows')} test rows.</p>"
                        + table(["input", "overall"] + list(result.get("by_group") or {}), importance_rows(result))
                        + charts.inline_png(charts.importance(result), f"permutation importance of the {name} model"))
    reasons = "".join(f"<li>{esc(r)}</li>" for r in gate.get("reasons", [])) or "<li>all checks passed</li>"
    sections.append(f"<h2>Gate decision: {esc(str(gate.get('outcome')))}</h2><ul>{reasons}</ul>"
                    f"<p>{MarkdownIt().renderInline(approval_text(record))}</p>")
    if record.get("model"):
        card = MarkdownIt("commonmark", {"html": False}).enable("table").render(model_card(record, policy))
        sections.append(f'<section class="card">{card}</section>')
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Fairgate run {esc(str(record.get('run_id')))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:75em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}h2{{border-bottom:1px solid #ddd}}
img{{max-width:100%;display:block;margin:1em 0}}.card{{background:#fafafa;padding:0 1em;border:1px solid #ddd}}
.decision{{font-size:1.1em}}</style></head><body>
{''.join(sections)}
</body></html>"""
