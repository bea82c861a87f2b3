"""Review as a gate: a panel of different people (``review.quorum``), who may approve
(``review.approvers``), separation of duties from the run's trigger, and what a promotion needs
with ``review.required: always`` (a person's approval, an answered impact assessment and owners).
Every answer is built by hand; the rules are read off the policy keys' documented meaning."""

from __future__ import annotations

import re

import pytest
import yaml
from tests.support.fixtures import ANSWERED
from tests.support.policies import synthetic_credit_policy

from fairgate.errors import PolicyError
from fairgate.fairness.gate import panel_decision, review_decision
from fairgate.governance import evidence, registry
from fairgate.policy.loader import load_policy, parse_policy
from fairgate.policy.schema import ReviewPolicy
from fairgate.stages import lifecycle
from fairgate.stages.lifecycle import RunInfo, promotion_refusal
from fairgate.storage.local import LocalStore


def _answer(choice, reviewer, rationale="checked the report"):
    return review_decision(choice, rationale, reviewer=reviewer, timed_out=False, responded_at="2026-12-04T10:00:00")


def _panel(rules, answers, triggered_by=None):
    review = None
    for a in answers:
        review = panel_decision(review, a, rules, triggered_by=triggered_by)
    return review


def test_a_quorum_of_two_needs_two_different_people():
    rules = ReviewPolicy(quorum=2)
    first = _panel(rules, [_answer("Approve", "alice")])
    assert not first.approved and first.approvals == ("alice",) and first.note == "1 of 2 approvals"
    both = _panel(rules, [_answer("Approve", "alice"), _answer("Approve", "bob")])
    assert both.approved and both.approvals == ("alice", "bob") and both.reviewer == "alice, bob"
    assert [a["reviewer"] for a in both.panel] == ["alice", "bob"]  # every answer kept, in order
    twice = _panel(rules, [_answer("Approve", "alice"), _answer("Approve", "alice")])
    assert not twice.approved and twice.approvals == ("alice",)
    assert twice.note == "approval refused: alice approved already; a quorum of 2 needs different people"
    vetoed = _panel(rules, [_answer("Approve", "alice"), _answer("Reject", "bob", "the EOD interval is too wide")])
    assert not vetoed.approved and vetoed.choice == "Reject" and len(vetoed.panel) == 2


def test_the_runs_trigger_cannot_approve_with_a_quorum_or_when_separated():
    self_approved = _panel(ReviewPolicy(quorum=2), [_answer("Approve", "ana")], triggered_by="ana")
    assert self_approved.approvals == () and not self_approved.approved
    assert "ana triggered this run and may not approve it (separation of duties)" in self_approved.note
    assert _panel(ReviewPolicy(quorum=1), [_answer("Approve", "ana")], triggered_by="ana").approved  # default: allowed
    separated = _panel(ReviewPolicy(separate_from_trigger=True), [_answer("Approve", "ana")], triggered_by="ana")
    assert not separated.approved
    two = _panel(ReviewPolicy(quorum=2), [_answer("Approve", "bob"), _answer("Approve", "carol")], triggered_by="ana")
    assert two.approved  # neither approver triggered the run


def test_only_listed_approvers_and_known_people_count():
    rules = ReviewPolicy(approvers=["alice", "bob"])
    assert _panel(rules, [_answer("Approve", "bob")]).approved
    outsider = _panel(rules, [_answer("Approve", "mallory")])
    assert not outsider.approved and "mallory is not among review.approvers ['alice', 'bob']" in outsider.note
    assert not _panel(ReviewPolicy(), [_answer("Approve", None)]).approved  # nobody known approved
    no_reason = _panel(ReviewPolicy(), [_answer("Approve", "alice", rationale="  ")])
    assert not no_reason.approved and no_reason.note == "approval refused: a rationale is required"


@pytest.fixture(scope="module")
def credit(tmp_path_factory):
    import yaml

    tmp = tmp_path_factory.mktemp("panel")
    path, _ = synthetic_credit_policy(tmp, 2000, seed=61)
    return {"raw": yaml.safe_load(path.read_text()), "tmp": tmp, "path": path}


def test_what_a_promotion_needs_under_each_rule(credit):
    base = credit["raw"]
    passed = type("Gate", (), {"outcome": "pass"})()
    review = type("Gate", (), {"outcome": "review"})()
    uncertain = parse_policy(base)
    assert promotion_refusal(uncertain, passed, None) is None  # today's behaviour: a pass deploys
    assert "said 'review' and nobody approved" in promotion_refusal(uncertain, review, None)

    always = parse_policy({**base, "review": {"required": "always"}})
    assert promotion_refusal(always, passed, None) == (
        "Policy key 'review.required' is 'always': a person must approve every promotion, and nobody did."
    )
    approved = _panel(always.review, [_answer("Approve", "alice")])
    assert promotion_refusal(always, passed, approved) == (
        "Policy key 'review.required' is 'always', and the impact assessment and owners leave 8 question(s) "
        "unanswered: impact_assessment.affected_groups, impact_assessment.misuse, impact_assessment.redress, "
        "impact_assessment.severity, impact_assessment.mitigations, owners.retraining, owners.monitoring, "
        "owners.complaints."
    )
    partly = parse_policy(
        {**base, **ANSWERED, "owners": {"retraining": "credit-ml team"}, "review": {"required": "always"}}
    )
    assert promotion_refusal(partly, passed, approved).endswith("unanswered: owners.monitoring, owners.complaints.")
    answered = parse_policy({**base, **ANSWERED, "review": {"required": "always"}})
    assert promotion_refusal(answered, passed, approved) is None

    panel = parse_policy({**base, **ANSWERED, "review": {"required": "always", "quorum": 2}})
    one = _panel(panel.review, [_answer("Approve", "alice")])
    assert "does not approve this model: 1 of 2 approvals" in promotion_refusal(panel, passed, one)
    forged = one.__class__(**{**one.__dict__, "approved": True})  # a review claiming approval with one approver
    assert promotion_refusal(panel, passed, forged) == (
        "Policy key 'review.quorum' asks for 2 approvals by different people; 1 counted (alice)."
    )


def test_with_review_always_nothing_is_deployed_without_a_person(credit, tmp_path):
    """The same synthetic credit data and gate: deployed under `when_uncertain`, not under `always` (nobody
    is asked in process, as an unanswered review in the DAG), and deploy() refuses it outright."""
    store = LocalStore(tmp_path / "store")
    (tmp_path / "answered.yaml").write_text(yaml.safe_dump({**credit["raw"], **ANSWERED}))
    policy = load_policy(tmp_path / "answered.yaml")
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="nb", run_id="r1")).decision == "deployed"
    before = registry.production_version(store, "credit")
    manifest = registry.read_manifest(store, "credit", before)  # the answers travel with the release
    assert manifest["impact_assessment"] == ANSWERED["impact_assessment"] and manifest["owners"] == ANSWERED["owners"]
    assert manifest["review_rules"] == {
        "required": "when_uncertain",
        "approvers": [],
        "quorum": 1,
        "separate_from_trigger": False,
    }
    card = store.get(f"{registry.version_prefix('credit', before)}/model_card.md").decode()
    assert "- Mitigations: reweighing; nightly fairness audit" in card and "- Owner: complaints: customer care" in card
    assert "Review of a promotion: when the fairness gate asks for it." in card
    (tmp_path / "always.yaml").write_text(
        yaml.safe_dump({**credit["raw"], **ANSWERED, "review": {"required": "always"}})
    )
    always = load_policy(tmp_path / "always.yaml")
    recorded = lifecycle.run_in_process(store, always, RunInfo(dag_id="nb", run_id="r2"))
    assert recorded.decision == "rejected"
    assert evidence.find(store, "credit", "r2")["record"]["gate"]["outcome"] == "pass"  # the gate alone would deploy
    assert registry.production_version(store, "credit") == before  # nothing already deployed is touched


def test_an_override_under_reviewed_needs_a_second_person(credit):
    """`fairness.overrides: reviewed`: a run that loosens a threshold goes to review even when the gate
    passes, and the approval of the user who asked for the exception does not count."""
    fairness = {**credit["raw"]["fairness"], "overrides": "reviewed", "override_requesters": ["ana"]}
    base = {**credit["raw"], "fairness": fairness}
    plain = parse_policy(base)
    assert not plain.promotion_needs_a_person  # no override: today's behaviour
    loosened = plain.with_threshold_overrides({"disparate_impact_min": 0.5}, rationale="pilot", by="ana")
    assert loosened.promotion_needs_a_person and loosened.override_needs_a_second_person
    passed = type("Gate", (), {"outcome": "pass"})()
    assert promotion_refusal(loosened, passed, None) == (
        "This run overrides gate thresholds and policy key 'fairness.overrides' is 'reviewed': a second "
        "person must approve the exception, and nobody did."
    )
    own = panel_decision(None, _answer("Approve", "ana"), loosened.review, triggered_by="ana", second_person=True)
    assert not own.approved and "ana triggered this run and may not approve it" in own.note
    other = panel_decision(None, _answer("Approve", "bob"), loosened.review, triggered_by="ana", second_person=True)
    assert other.approved and promotion_refusal(loosened, passed, other) is None
    allowed = parse_policy(credit["raw"]).with_threshold_overrides({"disparate_impact_min": 0.5}, rationale="pilot")
    assert not allowed.promotion_needs_a_person  # `allowed`: recorded, not reviewed


def test_one_person_is_one_person_whatever_the_case_or_spaces():
    """Before: `alice` and `Alice ` counted as two approvals of a quorum of two."""
    twice = _panel(ReviewPolicy(quorum=2), [_answer("Approve", "alice"), _answer("Approve", "Alice ")])
    assert not twice.approved and "approved already" in twice.note
    listed = _panel(ReviewPolicy(approvers=["Bob"]), [_answer("Approve", " bob")])
    assert listed.approved
    own = _panel(ReviewPolicy(separate_from_trigger=True), [_answer("Approve", "ANA")], triggered_by="ana")
    assert not own.approved and "triggered this run" in own.note


@pytest.mark.parametrize("requester", [None, "deploy", "  "])
def test_an_override_needing_a_second_person_needs_a_requester_the_policy_names(credit, requester):
    """Before: a run triggered from a shell carried the OS account ('deploy') as its requester, so its
    requester (signed in to Airflow as 'ana') approved his own exception; a scheduled run carries none."""
    fairness = {**credit["raw"]["fairness"], "overrides": "reviewed", "override_requesters": ["ana", "bob"]}
    policy = parse_policy({**credit["raw"], "fairness": fairness})
    with pytest.raises(PolicyError, match=r"requester .* is not among 'fairness.override_requesters'"):
        policy.with_threshold_overrides({"disparate_impact_min": 0.5}, rationale="pilot", by=requester)
    assert policy.with_threshold_overrides({"disparate_impact_min": 0.5}, rationale="pilot", by="Ana").override


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"review": {"quorum": 2, "approvers": ["ana", "Ana"]}}, "'review.approvers' names 1 different people"),
        ({"audit": {"retention_days": 1}}, "'audit.retention_days' is 1, shorter than the audit window"),
        ({"fairness": {"review_timeout_hours": 0}}, "review_timeout_hours"),
        ({"impact_assessment": {"misuse": "   "}}, "impact_assessment.misuse"),
    ],
)
def test_governance_settings_that_could_not_do_what_they_say_are_refused(credit, changes, said):
    raw = {**credit["raw"]}
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values}
    with pytest.raises(PolicyError, match=re.escape(said)):
        parse_policy(raw)
