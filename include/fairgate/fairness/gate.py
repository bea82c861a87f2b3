"""The fairness gate: one pure function from measured evidence to pass / fail / review.

Order of the rules matters. Evidence is checked before any metric is read: a group below the
minimum size or with too few positives, a constant predictor, or a metric that is not finite
is *insufficient evidence*, which goes to review and is never a pass. Then each threshold is
compared with the metric's confidence interval:

- interval wholly inside the bound, and the point at least ``review_margin`` inside → pass
- interval wholly outside the bound → fail
- anything in between (the interval straddles the bound, or the point is within the margin) → review

A performance floor and, when a model is in production, a champion comparison can fail the
candidate too. Any fail rejects; otherwise any review asks a human; otherwise the gate passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.contracts import GateOutcome, Review
from fairgate.fairness.metrics import GroupFigures, Sides, both_sides
from fairgate.fairness.subgroups import Discovery, SubgroupFinding
from fairgate.groups import cell_mask, comparisons, group_codes
from fairgate.policy.people import person, same_person
from fairgate.policy.schema import ReviewPolicy, Threshold

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from fairgate.policy.schema import Policy, Threshold


@dataclass(frozen=True)
class Finding:
    """One reason behind the decision."""

    outcome: GateOutcome
    scope: str
    message: str


class FindingJSON(TypedDict):
    outcome: GateOutcome
    scope: str
    message: str


class DecisionJSON(TypedDict):
    outcome: GateOutcome
    reasons: list[str]
    findings: list[FindingJSON]


@dataclass
class GateDecision:
    outcome: GateOutcome
    findings: list[Finding] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        """The findings that drove the outcome (all of them for a pass)."""
        driving = [f for f in self.findings if f.outcome == self.outcome]
        return [f"{f.scope}: {f.message}" for f in driving]

    def as_dict(self) -> DecisionJSON:
        return {
            "outcome": self.outcome,
            "reasons": self.reasons,
            "findings": [{"outcome": f.outcome, "scope": f.scope, "message": f.message} for f in self.findings],
        }


def judge_metric(
    t: Threshold, value: float | None, low: float | None, high: float | None, margin: float
) -> tuple[GateOutcome, str]:
    """Compare one metric and its interval with its threshold."""
    if value is None or low is None or high is None:
        return "review", f"{t.metric} is not finite (value={value}, interval=[{low}, {high}]): insufficient evidence"
    lo_b, hi_b = t.band
    desc = f"{t.metric}={value:.4f} [{low:.4f}, {high:.4f}] vs {t.describe()}"
    if high < lo_b or low > hi_b:
        return "fail", f"{desc}: interval wholly outside the bound"
    if lo_b <= low and high <= hi_b:
        if t.distance_inside(value) >= margin:
            return "pass", f"{desc}: within"
        return "review", f"{desc}: within, but closer than the review margin {margin:g}"
    return "review", f"{desc}: interval straddles the bound"


def decide(
    fairness: dict[str, GroupFigures],
    performance: dict[str, Any],
    policy: Policy,
    *,
    constant_predictor: bool = False,
    champion: dict[str, Any] | None = None,
    subgroups: Discovery | None = None,
    more: Sequence[Finding] = (),
) -> GateDecision:
    """Decide on a candidate model from its held-out evidence: pass, fail or review, with every finding.

    Parameters
    ----------
    fairness
        Per comparison key, the counts and metrics :func:`fairgate.fairness.metrics.measure` returns.
    performance
        The candidate's figures on the test rows (``balanced_accuracy`` is judged against its floor).
    policy
        Its ``fairness`` section holds the bounds, the review margin and the evidence rules.
    constant_predictor
        True when the candidate gives one decision to every test row: its disparities are no evidence.
    champion
        The production model's performance on the same rows, when there is one;
        ``champion["not_comparable"]`` (why it could not be measured, e.g. the policy changed the
        model's inputs) sends the candidate to review.
    subgroups
        The discovered subgroups, judged as ``subgroups.gate`` says.
    more
        Findings the model's own checks made (robustness, recourse: their ``gate_findings``).

    Returns
    -------
    GateDecision
        ``outcome`` (the worst finding's) and the findings, each with its scope and sentence.
    """
    findings: list[Finding] = []
    if constant_predictor:
        findings.append(
            Finding(
                "review",
                "model",
                "predicts a single class on the test set: disparities of a constant predictor are not evidence",
            )
        )
    for key, res in fairness.items():
        short = short_groups(res["counts"], policy)
        if short:
            findings.extend(Finding("review", key, s) for s in short)
            continue
        for t in policy.fairness.bounds:
            m = res["metrics"].get(t.metric)
            value, low, high = (m["value"], m["ci_low"], m["ci_high"]) if m else (None, None, None)
            outcome, msg = judge_metric(t, value, low, high, policy.fairness.review_margin)
            findings.append(Finding(outcome, key, msg))

    ba = performance.get("balanced_accuracy")
    if ba is None:
        findings.append(Finding("review", "performance", "balanced accuracy undefined (one label class in test)"))
    elif ba < policy.fairness.min_balanced_accuracy:
        findings.append(
            Finding(
                "fail",
                "performance",
                f"balanced_accuracy={ba:.4f} below the floor {policy.fairness.min_balanced_accuracy:g}",
            )
        )
    else:
        findings.append(Finding("pass", "performance", f"balanced_accuracy={ba:.4f}"))
    if champion and champion.get("not_comparable"):
        findings.append(
            Finding(
                "review",
                "champion",
                f"production model {champion['version'][:12]} not "
                f"comparable on this snapshot: {champion['not_comparable']}",
            )
        )
    elif champion and champion.get("balanced_accuracy") is not None and ba is not None:
        floor = champion["balanced_accuracy"] - policy.fairness.champion_tolerance
        if ba < floor:
            findings.append(
                Finding(
                    "fail",
                    "champion",
                    f"balanced_accuracy={ba:.4f} is below production "
                    f"{champion['balanced_accuracy']:.4f} minus tolerance "
                    f"{policy.fairness.champion_tolerance:g}",
                )
            )
        else:
            findings.append(
                Finding(
                    "pass", "champion", f"balanced_accuracy={ba:.4f} vs production {champion['balanced_accuracy']:.4f}"
                )
            )

    findings.extend(more)
    if subgroups is not None:
        findings.extend(subgroup_findings(subgroups, policy))
    outcomes = {f.outcome for f in findings}
    decided: GateOutcome = "fail" if "fail" in outcomes else "review" if "review" in outcomes else "pass"
    return GateDecision(outcome=decided, findings=findings)


def subgroups_outside(discovery: Discovery, policy: Policy) -> list[tuple[SubgroupFinding, Threshold, float]]:
    """Discovered subgroups of protected attributes alone whose figure lies outside the policy's band
    for it: each with the band and the figure as that band reads it (see :func:`subgroup_findings`)."""
    bounds = {t.metric: t for t in policy.fairness.bounds}
    # one value of a two-valued attribute against the rest is that attribute's own comparison, judged above
    declared = {a.column for a in policy.protected_attributes if len(a.allowed) == 2}
    out = []
    for found in discovery["protected_only"]:
        if len(found["subgroup"]) == 1 and set(found["subgroup"]) <= declared:
            continue
        for metric, form in SUBGROUP_BANDS.get(found["metric"], ()):
            t = bounds.get(metric)
            if t is None or (form == "ratio" and not found["rest_rate"]):
                continue
            value = found["rate"] / found["rest_rate"] if form == "ratio" else found["gap"]
            if not t.contains(value):
                out.append((found, t, value))
    return out


# The gated metric a subgroup's gap against the rest is read as: (metric, how the figure is formed)
SUBGROUP_BANDS: dict[str, tuple[tuple[str, str], ...]] = {
    "selection_rate": (("statistical_parity_difference", "gap"), ("disparate_impact", "ratio")),
    "true_positive_rate": (("equal_opportunity_difference", "gap"),),
    "false_positive_rate": (("false_positive_rate_difference", "gap"),),
}


def subgroup_findings(discovery: Discovery, policy: Policy) -> list[Finding]:
    """Discovered subgroups of protected attributes alone, judged against the policy's own bands.

    A subgroup (``race=Black & sex=Female``) is compared with the rest of the rows; its gap is read
    as the gated metric of the same kind: a selection-rate gap as the statistical parity difference
    (and the rate over the rest's as the disparate impact), a true-positive-rate gap as the equal
    opportunity difference, a false-positive-rate gap as the false positive rate difference. A
    subgroup the discovery found (Benjamini–Hochberg-adjusted p at most ``subgroups.fdr``) whose
    figure lies outside that band is a finding with the outcome ``subgroups.gate``. Subgroups that
    also name a non-protected input are not judged: a gap there may be that input's own effect;
    nor is one value of a two-valued attribute, which is that attribute's own declared comparison.
    """
    if policy.subgroups.gate == "off":
        return []
    return [
        Finding(
            policy.subgroups.gate,
            "subgroup " + " & ".join(f"{c}={v}" for c, v in found["subgroup"].items()),
            f"{found['metric']} {found['rate']:.4f} vs {found['rest_rate']:.4f} for the rest "
            f"({found['rows']} rows): as {t.metric} {value:.4f} vs {t.describe()}, outside; "
            f"Benjamini-Hochberg-adjusted p {found['p_adjusted']:.3g} <= {discovery['fdr']:g}",
        )
        for found, t, value in subgroups_outside(discovery, policy)
    ]


def short_groups(
    counts: Sides[dict[str, float | None]], policy: Policy, *, unit: str = "rows", positives: bool = True
) -> list[str]:
    """The evidence rules, for the gate and the nightly audit alike: each side of a comparison needs
    ``min_group_size`` rows and (where outcomes are compared) ``min_positives`` favourable outcomes.

    ``counts`` maps ``unprivileged`` / ``privileged`` to ``{"n": ..., "positives": ...}``; ``unit``
    names what ``n`` counts in the message (rows, predictions, labeled rows).
    """
    out = []
    for side, c in both_sides(counts):
        n, favourable = c["n"] or 0.0, c.get("positives") or 0.0  # None: not a finite count
        if n < policy.fairness.min_group_size:
            out.append(
                f"{side} group has {n:g} {unit} (< min_group_size {policy.fairness.min_group_size}): "
                "insufficient evidence"
            )
        elif positives and favourable < policy.fairness.min_positives:
            out.append(
                f"{side} group has {favourable:g} favorable outcomes (< min_positives "
                f"{policy.fairness.min_positives}): insufficient evidence"
            )
    return out


def short_of_evidence(
    df: pd.DataFrame, policy: Policy, *, share: float, split: str = "test"
) -> tuple[list[str], list[str]]:
    """Groups whose rows or favourable outcomes, times ``share`` (the ``split``'s share: test or
    validation), fall short of the gate's evidence rules, each with what would fix it; and a note of
    every group's counts."""
    import numpy as np

    codes = group_codes(df, policy)
    favourable = np.asarray(df[policy.dataset.label] == policy.dataset.favorable_label)
    short: list[str] = []
    notes: list[str] = []
    seen: set[tuple[tuple[str, int], ...]] = set()
    where = f"in the {split} split" if share < 1 else f"in the {split} rows"
    size_key = "model.test_size" if split == "test" else "model.validation_size"
    consequence = (
        "the gate can only ask for review"
        if split == "test"
        else "the mitigation search cannot judge fairness on validation and chooses by balanced accuracy alone"
    )
    for comp in comparisons(policy):
        for cell in (comp.unprivileged, comp.privileged):
            if cell in seen:
                continue
            seen.add(cell)
            mask = cell_mask(codes, cell)
            rows, positives = int(mask.sum()), int((mask & favourable).sum())
            name = " & ".join(f"{c}={'privileged' if v else 'unprivileged'}" for c, v in cell)
            exp_rows, exp_pos = rows * share, positives * share
            about = "about " if share < 1 else ""
            notes.append(
                f"{name}: {rows} rows, {positives} favourable"
                + (f"; about {exp_rows:.0f} and {exp_pos:.0f} {where}" if share < 1 else f" {where}")
            )
            for what, expected, have, need, key in (
                ("rows", exp_rows, rows, policy.fairness.min_group_size, "fairness.min_group_size"),
                ("favourable outcomes", exp_pos, positives, policy.fairness.min_positives, "fairness.min_positives"),
            ):
                if expected >= need:
                    continue
                if share < 1 and have and need / have <= 0.5:
                    fix = f"{size_key} {math.ceil(need / have * 100) / 100:g} would reach it"
                elif expected >= 1:
                    fix = f"lower {key} to {math.floor(expected)}"
                else:
                    fix = "more data for this group"
                short.append(
                    f"Group {name} has {about}{expected:.0f} {what} {where}; '{key}' asks for {need}, so "
                    f"{consequence}: {fix}."
                )
    return short, notes


def panel_decision(
    earlier: Review | None,
    answer: Review,
    rules: ReviewPolicy,
    *,
    triggered_by: str | None,
    second_person: bool = False,
) -> Review:
    """``answer`` (one reviewer's, from :func:`review_decision`) taken with the panel's ``earlier`` answers.

    An approval counts when its rationale is given (``review_decision``), its reviewer is known, is
    among ``review.approvers`` (when listed), has not approved already (a quorum is of different
    people), and is not the user who triggered the run when ``review.separate_from_trigger``, a
    quorum above 1, or ``second_person`` (a threshold override under ``fairness.overrides:
    reviewed``) asks for separation of duties. Approved once ``review.quorum`` approvals count;
    any answer that is not an approval that counts ends the panel unapproved. Names are compared as
    :func:`fairgate.policy.people.person` normalises them (``Alice`` and ``alice `` are one person).
    """
    approvals = earlier.approvals if earlier else ()
    panel = (*(earlier.panel if earlier else ()), answer.to_json())
    refusal = ""
    if answer.approved:
        reviewer = answer.reviewer
        if not person(reviewer):
            refusal = "approval refused: the reviewer is not known"
        elif rules.approvers and person(reviewer) not in {person(a) for a in rules.approvers}:
            refusal = f"approval refused: {reviewer} is not among review.approvers {rules.approvers}"
        elif any(same_person(reviewer, a) for a in approvals):
            refusal = (
                f"approval refused: {reviewer} approved already; a quorum of {rules.quorum} needs different people"
            )
        elif same_person(reviewer, triggered_by) and (rules.separate_from_trigger or rules.quorum > 1 or second_person):
            refusal = f"approval refused: {reviewer} triggered this run and may not approve it (separation of duties)"
    counted = answer.approved and not refusal
    approvals = (*approvals, str(answer.reviewer)) if counted else approvals
    done = counted and len(approvals) >= rules.quorum
    note = refusal or answer.note or (f"{len(approvals)} of {rules.quorum} approvals" if counted and not done else "")
    return Review(
        choice=answer.choice,
        approved=done,
        rationale=answer.rationale,
        reviewer=", ".join(approvals) if done else answer.reviewer,
        timed_out=answer.timed_out,
        note=note,
        responded_at=answer.responded_at,
        approvals=approvals,
        needed=rules.quorum,
        panel=panel,
    )


def review_decision(
    choice: str | None, rationale: str | None, *, reviewer: str | None, timed_out: bool, responded_at: str | None = None
) -> Review:
    """Turn a human reviewer's answer into a decision, refusing approvals without a rationale.

    A timeout, a rejection, or an approval that gives no reason are all not approved.
    """
    rationale = (rationale or "").strip()
    if timed_out:
        approved, note = False, "no answer before the review timed out"
    elif choice == "Approve" and not rationale:
        approved, note = False, "approval refused: a rationale is required"
    else:
        approved, note = choice == "Approve", ""
    return Review(
        choice="Reject" if timed_out else choice,
        approved=approved,
        rationale=rationale,
        reviewer=reviewer,
        timed_out=timed_out,
        note=note,
        responded_at=responded_at,
    )
