"""The operators of ``fairgate_score``: the day's records scored, and the decisions held for review."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import BaseOperator, Param

from fairgate_airflow.operators.base import Stage, answer_of, day_of, guarded, publish

if TYPE_CHECKING:
    from airflow.sdk import Context


class ScoreOperator(Stage, BaseOperator):
    """Score the day's incoming records with the production model into the prediction log.

    Returns the ids of the cases the review triggers opened (what the review task is mapped over);
    the scoring summary is published before that.
    """

    def execute(self, context: Context) -> list[str]:
        from fairgate.stages import monitoring

        started = time.perf_counter()
        scenario = (context.get("params") or {}).get("scenario") or None
        day = day_of(context)
        summary = guarded(monitoring.score, self.store(), self.policy(context), day, scenario=scenario)
        self.log.info(
            "Scored %s records of %s with model %s; selection rate %.3f",
            summary["rows"],
            day,
            summary["model_version"][:12],
            summary["selection_rate"],
        )
        review_cases: list[str] = summary.pop("review_cases", [])
        publish(context, summary, started=started)
        if review_cases:
            self.log.info("%s decisions wait for review before they take effect", len(review_cases))
        return review_cases


class DecideContestOperator(Stage, HITLOperator):
    """Show a reviewer a contested decision, or one the review triggers held (record, reasons, recourse,
    model version), and record the outcome: Uphold or Overturn, with a rationale. A contest waits for
    its answer; a review before harm that nobody answers within ``review_triggers.timeout_hours`` is
    recorded as upheld (the automatic decision stands) and timed out.

    Used by ``fairgate_score`` (decisions held before they take effect) and ``fairgate_contest``.
    """

    template_fields: Sequence[str] = (*HITLOperator.template_fields, "case_id")

    def __init__(self, *, case_id: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Fairgate: a decision to review")
        kwargs.pop("params", None)
        super().__init__(
            options=["Uphold", "Overturn"],
            defaults=["Uphold"],
            params={
                "rationale": Param(
                    "",
                    type="string",
                    title="Rationale (required)",
                    description="Why you uphold or overturn the decision; recorded in the "
                    "evidence log and shown to the person.",
                ),
                "report_incident": Param(
                    False,
                    type="boolean",
                    title="Report an incident",
                    description="This decision shows an ethical breach by the model: open an incident "
                    "record (its owner and reporting clock from the policy), linked to this case.",
                ),
            },
            **kwargs,
        )
        self.case_id = case_id

    def execute(self, context: Context) -> Any:
        from fairgate.stages import monitoring

        case, request = guarded(monitoring.contest_request, self.store(), self.policy(context), self.case_id)
        self.subject, self.body = request.subject, request.body
        self.response_timeout = None if request.timeout_hours is None else timedelta(hours=request.timeout_hours)
        self.log.info("Case %s of %s (%s) waits for a reviewer", self.case_id, case["row"], case["date"])
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from fairgate.stages import monitoring

        answer = answer_of(event)
        decided = guarded(
            monitoring.decide_contest,
            self.store(),
            self.policy(context),
            self.case_id,
            choice=answer.choice,
            rationale=answer.rationale,
            reviewer=answer.reviewer,
            timed_out=answer.timed_out,
            report_incident=bool((event.get("params_input") or {}).get("report_incident")),
        )
        self.log.info(
            "Case %s: %s by %s (evidence record %s)", self.case_id, decided["choice"], answer.reviewer, decided["seq"]
        )
        if decided["incident"] is not None:
            incident = decided["incident"]
            self.log.info("Incident %s opened by the reviewer, due %s", incident["incident_id"], incident["due"])
        return {k: decided[k] for k in ("case_id", "choice", "final_decision", "seq")}
