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


def model_card(record: dict[str, Any], policy: Policy) -> str:
    """The model card of the model trained in ``record``'s run (Markdown)."""
    model = record.get("model") or {}
    data = record.get("data") or {}
    perf = record.get("performance") or {}
    gate = record.get("gate") or {}
    review = record.get("review")
    mitigation = record.get("mitigation") or {}
    insufficient = [r for r in gate.get("reasons", []) if "insufficient evidence" in r]
    fair_table = _md_table(["comparison", "n unpriv / priv"] + list(METRIC_LABELS.values()),
                           fairness_rows(record.get("fairness")))
    protected = ", ".join(f"`{a.column}` (privileged: {list(a.privileged) or f'{a.op} {a.value}'})"
                          for a in policy.protected)
    intersections = ", ".join(" × ".join(c) for c in policy.intersections) or "none"
    if review:
        approval = (f"Human review: **{review.get('choice')}** by {review.get('reviewer') or 'nobody (timed out)'} "
                    f"at {review.get('responded_at')}; rationale: {review.get('rationale') or '(none given)'}")
    elif record.get("decision") == "deployed":
        approval = "Approved automatically: every fairness and performance check passed."
    else:
        approval = f"Not approved (decision: {record.get('decision')})."
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

## Factors
Protected attributes: {protected}. Intersections measured: {intersections}.
Protected attributes are {'used' if policy.use_protected_as_features else 'not used'} as model features.

## Metrics
Performance: accuracy, balanced accuracy, ROC AUC. Fairness (unprivileged minus / over privileged):
disparate impact, statistical parity difference, equal opportunity difference, average odds
difference, FPR and FNR differences, each with a {policy.confidence_level:.0%} confidence interval.
Gate thresholds: {', '.join(f'{t.metric} {t.describe()}' for t in policy.fairness_thresholds)}.

## Evaluation data
Held-out test split of the snapshot ({(model.get('rows') or {}).get('test')} rows), stratified by label and group.

## Training data
Snapshot `{data.get('uri')}`: {data.get('rows')} rows, sha256 `{data.get('sha256')}`, source `{data.get('source')}`.
Mitigation: {mitigation.get('method') if mitigation.get('applied') else 'none (' + str(mitigation.get('reason')) + ')'}.

## Quantitative analyses
Accuracy {_fmt(perf.get('accuracy'))}, balanced accuracy {_fmt(perf.get('balanced_accuracy'))},
ROC AUC {_fmt(perf.get('roc_auc'))}, selection rate {_fmt(perf.get('selection_rate'))}.

{fair_table}

## Ethical considerations and caveats
- Gate outcome: **{gate.get('outcome')}**. Reasons: {'; '.join(gate.get('reasons', [])) or 'none'}.
- Groups with insufficient evidence: {'; '.join(insufficient) or 'none'}.
- Group definitions are binary (privileged vs not); disparities inside the unprivileged group are not shown
  unless an intersection covers them.

## Approval
{approval}
"""


def run_report(record: dict[str, Any], policy: Policy) -> str:
    """A self-contained HTML page of the run's evidence."""
    esc = html.escape

    def table(header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    bias = record.get("bias") or {}
    mitigation = record.get("mitigation") or {}
    bias_rows = []
    for key, m in (bias.get("comparisons") or {}).items():
        after = (mitigation.get("after") or {}).get(key, {})
        bias_rows.append([key, _fmt(m.get("n_unprivileged"), 0), _fmt(m.get("n_privileged"), 0),
                          _fmt(m.get("base_rate_unprivileged")), _fmt(m.get("base_rate_privileged")),
                          _fmt(m.get("disparate_impact")), _fmt(after.get("disparate_impact"))])
    perf = record.get("performance") or {}
    gate = record.get("gate") or {}
    quality = record.get("quality") or {}
    reasons = "".join(f"<li>{esc(r)}</li>" for r in gate.get("reasons", []))
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Fairgate run {esc(str(record.get('run_id')))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}h2{{border-bottom:1px solid #ddd}}</style></head>
<body><h1>{esc(policy.model_name)}: {esc(str(record.get('decision')))}</h1>
<p>Run <code>{esc(str(record.get('run_id')))}</code> of <code>{esc(str(record.get('dag_id')))}</code>.</p>
<h2>Data quality</h2><p>{esc(str(quality.get('rows')))} rows; {esc(str(quality.get('checks')))} checks,
{esc(str(quality.get('failed')))} failed.</p>
<h2>Bias in the training data</h2>
{table(['comparison', 'n unpriv', 'n priv', 'base rate unpriv', 'base rate priv', 'DI', 'DI after reweighing'],
       bias_rows)}
<p>Bias detected: {esc(str(bias.get('detected')))}; mitigation applied: {esc(str(mitigation.get('applied')))}.</p>
<h2>Model performance (held-out test)</h2>
{table(['accuracy', 'balanced accuracy', 'ROC AUC', 'selection rate'],
       [[_fmt(perf.get('accuracy')), _fmt(perf.get('balanced_accuracy')), _fmt(perf.get('roc_auc')),
         _fmt(perf.get('selection_rate'))]])}
<h2>Fairness of the model (value [{policy.confidence_level:.0%} interval])</h2>
{table(['comparison', 'n unpriv / priv'] + list(METRIC_LABELS.values()), fairness_rows(record.get('fairness')))}
<h2>Gate decision: {esc(str(gate.get('outcome')))}</h2><ul>{reasons}</ul>
</body></html>"""
