"""The verdict in plain words, for the readers who are not data scientists: what was decided, a
sentence per check that failed or asked for a person, what each measure means, the proxy warnings,
and what would change the outcome. The run report, the review request and the model card open with
it; the technical sections follow.

Every sentence is built from the run's evidence record and the policy (the same figures the
technical sections show), with numbers as people write them: two decimals, intervals as
"between … and …", groups by their values.
"""

from __future__ import annotations

from typing import TypedDict

from fairgate.fairness.gate import judge_metric, subgroups_outside
from fairgate.governance.records import LifecycleRecord
from fairgate.monitoring.audit import AuditResult
from fairgate.policy.schema import Policy, Threshold

# What each gated measure is, in words (the unprivileged group against the privileged one).
MEASURES: dict[str, tuple[str, str]] = {
    "disparate_impact": (
        "disparate impact",
        "the share of favourable decisions in the unprivileged group divided by the share in the privileged "
        "group; 1 means equal",
    ),
    "statistical_parity_difference": (
        "statistical parity difference",
        "the share of favourable decisions in the unprivileged group minus the share in the privileged group; "
        "0 means equal",
    ),
    "equal_opportunity_difference": (
        "equal opportunity difference",
        "among people whose real outcome was favourable, the share given a favourable decision in the "
        "unprivileged group minus the share in the privileged group; 0 means equal",
    ),
    "average_odds_difference": (
        "average odds difference",
        "the average of two gaps between the unprivileged and the privileged group: in favourable decisions for "
        "people whose real outcome was favourable, and for people whose real outcome was not; 0 means equal",
    ),
    "false_positive_rate_difference": (
        "false positive rate difference",
        "among people whose real outcome was not favourable, the share given a favourable decision in the "
        "unprivileged group minus the share in the privileged group; 0 means equal",
    ),
    "false_negative_rate_difference": (
        "false negative rate difference",
        "among people whose real outcome was favourable, the share refused in the unprivileged group minus the "
        "share in the privileged group; 0 means equal",
    ),
    "roc_auc_difference": (
        "ranking quality difference (ROC AUC)",
        "how well the scores put people with a favourable real outcome above those without, in the unprivileged "
        "group minus the privileged group (each 0.5 for chance, 1 for perfect); 0 means equal",
    ),
    "calibration_difference": (
        "calibration difference",
        "how far each group's real favourable rate lies above its average score, in the unprivileged group minus "
        "the privileged group; above 0, the scores underrate the unprivileged group; 0 means equal",
    ),
}

HEADLINES = {
    "deployed": "Deployed: this model now makes the decisions.",
    "rejected": "Not deployed: the model already in production, if any, stays.",
    "awaiting_review": "Waiting for a person: the checks could not decide on their own.",
    "quality_failed": "Stopped before training: the data did not pass its quality checks.",
    "approved_not_promoted": "Approved and registered, but not put in production (a backfill run).",
    "failed": "The run failed before it could decide; nothing was deployed.",
}


class Verdict(TypedDict):
    headline: str
    checks: list[str]  # one sentence per check that failed or asked for review
    definitions: list[str]  # what each measure named above means
    proxies: list[str]
    changes: list[str]  # what would change the outcome


def _num(x: float) -> str:
    return f"{x:.2f}"


def _allowed(t: Threshold) -> str:
    if t.kind == "ratio_band":
        return f"between {_num(t.min or 0.0)} and {_num(t.max)}"
    return f"at most {_num(t.max)} either way"


def _privileged(column: str, policy: Policy) -> str:
    shown = policy.attribute(column).privileged_group
    return shown if isinstance(shown, str) else " or ".join(str(v) for v in shown)


def _groups(key: str, policy: Policy) -> str:
    """A comparison in words: ``sex not Male, against sex Male``, cell by cell for an intersection; a key
    the policy does not define (a record of an earlier policy) as it is."""
    try:
        return _in_words(key, policy)
    except (KeyError, ValueError):
        return key


def _in_words(key: str, policy: Policy) -> str:
    if ":" not in key:
        privileged = _privileged(key, policy)
        return f"{key} not {privileged}, against {key} {privileged}"
    cells = [part.split(":") for part in key.split(" & ")]
    these = " and ".join(
        f"{c} {_privileged(c, policy)}" if side == "privileged" else f"{c} not {_privileged(c, policy)}"
        for c, side in cells
    )
    return f"{these}, against {' and '.join(f'{c} {_privileged(c, policy)}' for c, _ in cells)}"


def verdict(record: LifecycleRecord, policy: Policy) -> Verdict:
    """The plain-words verdict of one lifecycle run."""
    level = f"{policy.fairness.confidence_level:.0%}"
    fails: list[str] = []
    close: dict[str, list[str]] = {}
    named: list[str] = []
    for key, figures in (record.fairness or {}).items():
        for t in policy.fairness.bounds:
            m = figures.get(t.metric) if isinstance(figures, dict) else None
            if not isinstance(m, dict):
                continue
            outcome, _ = judge_metric(
                t, m.get("value"), m.get("ci_low"), m.get("ci_high"), policy.fairness.review_margin
            )
            if outcome == "pass":
                continue
            words = MEASURES.get(t.metric, (t.metric.replace("_", " "), ""))[0]
            if t.metric not in named:
                named.append(t.metric)
            value, low, high = m.get("value"), m.get("ci_low"), m.get("ci_high")
            if outcome == "fail" and value is not None and low is not None and high is not None:
                fails.append(
                    f"For {_groups(key, policy)}, the {words} is {_num(value)} (we are {level} sure it lies between "
                    f"{_num(low)} and {_num(high)}); the policy allows {_allowed(t)}. It is clearly outside: "
                    "this check failed."
                )
            else:
                close.setdefault(_groups(key, policy), []).append(words)
    checks = fails + [
        f"Too close to call, for a person to judge: for {who}, the {' and the '.join(words)}."
        for who, words in close.items()
    ]
    checks += _subgroup_sentences(record, policy)
    failed = bool(fails)
    measured = {f"{k}" for k in (record.fairness or {})}
    others = [
        r
        for r in (record.gate.reasons if record.gate else [])
        if not any(r.startswith((f"{k}:", f"{k} ", "subgroup ")) for k in measured)
    ]
    checks += [f"Also: {r.replace('_', ' ').rstrip('.')}." for r in others]
    bias = record.bias or {}
    proxies = [str(w) for w in (bias.get("warnings") or [])]
    changes = []
    if record.decision in ("rejected", "awaiting_review"):
        if failed:
            changes.append(
                "A retrained model whose measures all fall inside the policy's bounds (the mitigation search tries "
                "reweighing and other methods), or a change of the policy by the people who own it, recorded."
            )
        if close:
            changes.append("More data for the groups too close to call, so that the checks can decide on their own.")
    return {
        "headline": HEADLINES.get(record.decision, f"Decision: {record.decision}."),
        "checks": checks,
        "definitions": [f"{MEASURES[m][0].capitalize()}: {MEASURES[m][1]}." for m in named if m in MEASURES],
        "proxies": proxies,
        "changes": changes,
    }


RATES = {
    "selection_rate": "favourable decisions",
    "true_positive_rate": "favourable decisions among people whose real outcome was favourable",
    "false_positive_rate": "favourable decisions among people whose real outcome was not",
}


def _subgroup_sentences(record: LifecycleRecord, policy: Policy) -> list[str]:
    """A sentence per discovered subgroup the gate judged outside a band (``subgroups.gate``)."""
    found = record.subgroups
    if not found or policy.subgroups.gate == "off" or not isinstance(found.get("protected_only"), list):
        return []
    out = []
    for f, t, value in subgroups_outside(found, policy):  # type: ignore[arg-type]  # a stored Discovery
        who = " and ".join(f"{c} {v}" for c, v in f["subgroup"].items())
        words = MEASURES.get(t.metric, (t.metric.replace("_", " "), ""))[0]
        out.append(
            f"A subgroup no comparison names, {who} ({f['rows']} rows): {f['rate']:.0%} "
            f"{RATES.get(f['metric'], f['metric'])}, against {f['rest_rate']:.0%} for everyone else. Read as the "
            f"{words}, {_num(value)} is outside what the policy allows ({_allowed(t)}), and among the "
            f"{found['tests']} subgroup tests a gap this size is unlikely to be chance."
        )
    return out


AUDIT_HEADLINES = {
    "healthy": "Healthy: the deployed model's decisions in this window stay within the policy.",
    "degraded": "Degraded: the deployed model's decisions left the policy's bounds; retraining was requested.",
    "insufficient_evidence": "Not enough evidence yet to judge this window (small groups, or outcomes not arrived).",
}


class AuditVerdict(TypedDict):
    headline: str
    checks: list[str]
    definitions: list[str]


def audit_verdict(result: AuditResult) -> AuditVerdict:
    """A nightly audit in plain words: its status, a sentence per fairness test that alerted, the other
    reasons (drift) as they are, and what the measures named mean."""
    alerts = result.get("alerts")
    tests = alerts["tests"] if alerts else []
    checks, named = [], []
    for t in tests:
        if not t["alert"]:
            continue
        words = MEASURES.get(t["metric"], (t["metric"].replace("_", " "), ""))[0]
        if t["metric"] not in named:
            named.append(t["metric"])
        between = (
            f" (between {_num(t['ci_low'])} and {_num(t['ci_high'])})"
            if t["ci_low"] is not None and t["ci_high"] is not None
            else ""
        )
        checks.append(f"For {t['comparison']}, the {words} was {_num(t['value'])}{between}: outside its bound.")
    alerting = tuple(f"{t['comparison']}: " for t in tests if t["alert"])
    checks += [f"{r.replace('_', ' ').rstrip('.')}." for r in result.get("reasons", []) if not r.startswith(alerting)]
    return {
        "headline": AUDIT_HEADLINES.get(str(result.get("status")), f"Status: {result.get('status')}."),
        "checks": checks,
        "definitions": [f"{MEASURES[m][0].capitalize()}: {MEASURES[m][1]}." for m in named if m in MEASURES],
    }
