"""The operators of ``fairgate_lifecycle``: one per stage, collect to record.

Each is a thin adapter over one function of :mod:`fairgate.stages.lifecycle`; the branching ones
return the route the DAG gave for the outcome the domain returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator
from airflow.sdk import BaseOperator, Param
from airflow.sdk.exceptions import AirflowFailException

from fairgate_airflow.operators.base import FAILURE, BranchStage, Stage, answer_of, guarded, publish, routes_of

if TYPE_CHECKING:
    from airflow.sdk import Context

    from fairgate.stages.lifecycle import PlannedCandidate


class CollectDataOperator(Stage, BaseOperator):
    """Snapshot the policy's data source (the run's interval when partitioned) as Parquet."""

    ui_color = "#e8f4fd"

    def execute(self, context: Context) -> None:
        from fairgate.stages import lifecycle

        snapshot = self.run(context, lifecycle.collect)
        self.log.info(
            "Snapshot of %s rows written to %s (sha256 %s)", snapshot.rows, snapshot.data.uri, snapshot.data.sha256
        )


class ValidateDataOperator(BranchStage):
    """Run the policy's quality suite on ``snapshot``; branch through ``routes["passed"]`` / ``["failed"]``."""

    checks_estimator = False

    template_fields: Sequence[str] = ("snapshot",)
    ui_color = "#fdf6e3"

    def __init__(self, *, snapshot: Any = None, routes: Mapping[str, str | list[str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.routes = routes_of(routes, ("passed", "failed"), self)

    def choose_branch(self, context: Context) -> str | list[str]:
        from fairgate.contracts import Snapshot
        from fairgate.stages import lifecycle

        quality = self.run(context, lifecycle.validate, self.given("snapshot", Snapshot))
        if quality.passed:
            self.log.info("Routing to %s because all %s quality checks passed", self.routes["passed"], quality.checks)
            passed: str | list[str] = self.routes["passed"]  # with the lifecycle's record_failure, kept ready
            return passed
        self.log.info(
            "Routing to %s because %s of %s checks failed: %s",
            self.routes["failed"],
            quality.failed,
            quality.checks,
            "; ".join(quality.failures),
        )
        return str(self.routes["failed"])


class CheckBiasOperator(BranchStage):
    """Measure disparity in the validated snapshot; branch through ``routes["search"]`` (the mitigation
    search: bias detected, or the policy searches always) or ``routes["train"]`` (train without mitigation)."""

    template_fields: Sequence[str] = ("quality",)
    ui_color = "#fdf6e3"

    def __init__(self, *, quality: Any = None, routes: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quality = quality
        self.routes = routes_of(routes, ("search", "train"), self)

    def choose_branch(self, context: Context) -> str:
        from fairgate.contracts import Quality
        from fairgate.stages import lifecycle

        bias = self.run(context, lifecycle.check_bias, self.given("quality", Quality))
        for warning in bias.warnings:
            self.log.warning("Proxy check: %s", warning)
        for short in bias.short_of_evidence:
            self.log.warning("Evidence: %s", short)
        route, why = lifecycle.bias_route(bias, self.policy(context))
        self.log.info("Routing to %s because %s", self.routes[route], why)
        return str(self.routes[route])


class PlanSearchOperator(Stage, BaseOperator):
    """List the mitigation search's candidates; its result is what the candidate task is mapped over."""

    checks_estimator = False

    template_fields: Sequence[str] = ("bias",)

    def __init__(self, *, bias: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bias = bias

    def execute(self, context: Context) -> list[PlannedCandidate]:
        from fairgate.contracts import Bias
        from fairgate.stages import lifecycle

        specs = self.run(context, lifecycle.search_plan, self.given("bias", Bias))
        self.log.info(
            "%s candidates: %s",
            len(specs),
            ", ".join(f"{s['candidate']['name']}.{s['candidate']['estimator']}" for s in specs),
        )
        return specs


class FitCandidateOperator(Stage, BaseOperator):
    """Fit one candidate (mapped over the plan: one task instance per candidate) and measure it on
    the validation split. ``planned`` is one item of the plan: the candidate and its bias result."""

    template_fields: Sequence[str] = ("planned",)

    def __init__(self, *, planned: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", "{{ candidate_id }}")
        super().__init__(**kwargs)  # policy_file and the rest: through the mapped task's partial kwargs
        self.planned = planned

    def execute(self, context: Context) -> None:
        from fairgate.contracts import Bias
        from fairgate.stages import lifecycle

        planned = self.given("planned", dict)
        spec = planned["candidate"]
        context["candidate_id"] = f"{spec['name']}.{spec['estimator']}"  # type: ignore[typeddict-unknown-key]  # read by map_index_template
        result = self.run(context, lifecycle.fit_candidate, guarded(Bias.from_json, planned["bias"]), dict(spec))
        if result.status == "failed":
            self.log.warning("Candidate %s failed and is left out of the choice: %s", result.id, result.error)
        else:
            self.log.info(
                "Candidate %s: validation balanced accuracy %.4f, band gap %s (fit %.1f s)",
                result.id,
                result.balanced_accuracy or float("nan"),
                result.band_gap,
                result.fit_s,
            )


class SelectCandidateOperator(Stage, BaseOperator):
    """Choose the candidate by the policy's rule on validation figures; record the whole search.

    ``plan`` is the plan's result (every planned candidate must have a result), ``candidates``
    the mapped task's results.
    """

    template_fields: Sequence[str] = ("plan", "candidates")

    def __init__(self, *, plan: Any = None, candidates: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan
        self.candidates = candidates

    def execute(self, context: Context) -> None:
        from fairgate.contracts import Bias, CandidateResult
        from fairgate.stages import lifecycle

        plan = list(self.given("plan", list))
        results = [guarded(CandidateResult.from_json, c) for c in self.given("candidates", list, optional=True) or []]
        planned = {f"{p['candidate']['name']}.{p['candidate']['estimator']}" for p in plan}
        missing = sorted(planned - {r.id for r in results})
        if not plan or missing:
            raise AirflowFailException(
                f"{self.task_id}: the search planned {sorted(planned)} but has no result for "
                f"{missing}; the DAG must pass the candidate task's .output."
            )
        trained = self.run(context, lifecycle.select_candidate, guarded(Bias.from_json, plan[0]["bias"]), results)
        self.log.info(
            "Chose %s (%s) of %s candidates",
            trained.mitigation.method or "no mitigation",
            trained.mitigation.reason,
            len(results),
        )


class TrainModelOperator(Stage, BaseOperator):
    """Fit the policy's pipeline without mitigation (the bias check found nothing to mitigate)."""

    template_fields: Sequence[str] = ("bias",)

    def __init__(self, *, bias: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bias = bias

    def execute(self, context: Context) -> None:
        from fairgate.contracts import Bias
        from fairgate.stages import lifecycle

        trained = self.run(context, lifecycle.train, self.given("bias", Bias))
        self.log.info(
            "Model %s trained on %s rows; validation %s",
            trained.model.sha256[:12],
            trained.rows["train"],
            trained.validation,
        )


class FairnessGateOperator(BranchStage):
    """Evaluate the trained model on the test split; branch by the gate's outcome through ``routes``.

    ``trained`` is a list of the upstream results that may hold the model (the search's choice,
    the unmitigated training); exactly one of them ran.
    """

    template_fields: Sequence[str] = ("trained",)
    ui_color = "#fde8e8"

    def __init__(self, *, trained: Any = None, routes: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trained = trained
        self.routes = routes_of(routes, ("pass", "fail", "review"), self)

    def choose_branch(self, context: Context) -> str:
        from fairgate.contracts import TrainedModel
        from fairgate.stages import lifecycle

        ran = [t for t in (self.trained if isinstance(self.trained, list | tuple) else [self.trained]) if t is not None]
        if len(ran) != 1:
            raise AirflowFailException(
                f"{self.task_id}: no 'trained' input from exactly one training route (got {len(ran)} results; "
                "expected the search's choice or the model trained without mitigation). This usually means the "
                "upstream task did not run, or the DAG does not pass its .output to this operator."
            )
        gate = self.run(context, lifecycle.evaluate, guarded(TrainedModel.from_json, ran[0]))
        needs_a_person = self.policy(context).promotion_needs_a_person  # then a pass goes to review too
        route = str(self.routes["review" if needs_a_person and gate.outcome == "pass" else gate.outcome])
        self.log.info(
            "Routing to %s because the gate says %s: %s",
            route,
            gate.outcome,
            "; ".join(gate.reasons) or "all checks passed",
        )
        return route


class HumanReviewOperator(Stage, HITLBranchOperator):
    """Ask a person to approve or reject a candidate, with the gate's evidence attached.

    The reviewer must give a rationale; an approval without one, a rejection, or no answer
    before the policy's ``review_timeout_hours`` all lead to ``routes["rejected"]``. One task per
    approval the policy's ``review.quorum`` needs: ``earlier`` is the previous review of the panel
    (None for the first), and an approval that counts but does not complete the quorum leads to
    ``routes["approved"]``, the next review (see :func:`fairgate.fairness.gate.panel_decision`).
    """

    checks_estimator = False

    template_fields: Sequence[str] = (*HITLBranchOperator.template_fields, "gate", "earlier")

    def __init__(
        self,
        *,
        gate: Any = None,
        earlier: Any = None,
        position: tuple[int, int] = (1, 1),
        routes: Mapping[str, str],
        **kwargs: Any,
    ) -> None:
        routes = routes_of(routes, ("approved", "rejected"), kwargs.get("task_id"))
        kwargs.setdefault(
            "subject",
            "Fairgate: review a model before it is deployed"
            + (f" (approval {position[0]} of {position[1]})" if position[1] > 1 else ""),
        )
        kwargs.pop("params", None)  # DAG-level params do not belong in the review form
        super().__init__(
            options=["Approve", "Reject"],
            defaults=["Reject"],
            options_mapping={"Approve": routes["approved"], "Reject": routes["rejected"]},
            params={
                "rationale": Param(
                    "",
                    type="string",
                    title="Rationale (required)",
                    description="Why you approve or reject this model; recorded in the evidence and the model card.",
                )
            },
            **kwargs,
        )
        self.gate = gate
        self.earlier = earlier
        self.position = position
        self.routes = routes

    def execute(self, context: Context) -> Any:
        from fairgate.contracts import GateResult, Review
        from fairgate.stages import lifecycle
        from fairgate_airflow.review import report_url

        policy, run = self.policy(context), self.run_info(context)
        self.response_timeout = timedelta(hours=policy.fairness.review_timeout_hours)
        if policy.review.approvers:  # Airflow lets only these users answer
            self.assigned_users = [{"id": user, "name": user} for user in policy.review.approvers]
        self.body, report = guarded(
            lifecycle.request_review,
            self.store(),
            policy,
            run,
            self.given("gate", GateResult),
            report_url=report_url(run.dag_id, run.run_id),
            earlier=self.given("earlier", Review, optional=True),
        )
        self.log.info("Review requested; the report as it stands is at %s", report.uri)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        import time

        from fairgate.contracts import GateResult, Review
        from fairgate.stages import lifecycle

        started = time.perf_counter()
        answer = answer_of(event)
        review, decided = lifecycle.decide_review(
            self.policy(context),
            self.run_info(context),
            self.latest("gate", GateResult),
            self.given("earlier", Review, optional=True),
            choice=answer.choice,
            rationale=answer.rationale,
            reviewer=answer.reviewer,
            timed_out=answer.timed_out,
            responded_at=answer.responded_at,
        )
        publish(context, review, started=started)
        route = self.routes[decided]
        self.log.info("Routing to %s: reviewer %s chose %s %s", route, answer.reviewer, review.choice, review.note)
        self.do_branch(context=context, branches_to_execute=[route])


class DeployModelOperator(Stage, BaseOperator):
    """Register the approved model and move the production pointer (not from backfills)."""

    checks_estimator = False

    template_fields: Sequence[str] = ("gate", "review")
    ui_color = "#e6f4ea"

    def __init__(self, *, gate: Any = None, review: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.review = review

    def execute(self, context: Context) -> None:
        from fairgate.contracts import GateResult, Review
        from fairgate.stages import lifecycle

        deployment = self.run(context, lifecycle.deploy, self.given("gate", GateResult), self.latest("review", Review))
        self.log.info(
            "Version %s registered; production pointer moved: %s (previous %s)",
            (deployment.version or "")[:12],
            deployment.promoted,
            deployment.previous,
        )


class RejectModelOperator(Stage, BaseOperator):
    """Record that the candidate is not deployed; production is left as it was."""

    checks_estimator = False

    template_fields: Sequence[str] = ("gate", "review")
    ui_color = "#f4f4f4"

    def __init__(self, *, gate: Any = None, review: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.review = review

    def execute(self, context: Context) -> None:
        from fairgate.contracts import GateResult, Review
        from fairgate.stages import lifecycle

        rejection = self.run(
            context,
            lifecycle.reject,
            self.given("gate", GateResult),
            self.latest("review", Review),
            with_run=False,
        )
        self.log.info("Candidate rejected; production stays at %s", rejection.previous)


class RecordEvidenceOperator(Stage, BaseOperator):
    """Conclude the run, append its evidence record to the hash-chained log, write its report and card.

    Takes the deployment decision (``deployment`` from the deploy stage, or ``rejection`` from the
    reject stage: the one that ran) or, for a run stopped by the quality gate, ``quality``. A run
    that concludes ``quality_failed`` fails after recording, so the evidence of why is kept.
    """

    checks_estimator = False

    template_fields: Sequence[str] = ("quality", "deployment", "rejection")

    def __init__(self, *, quality: Any = None, deployment: Any = None, rejection: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.quality = quality
        self.deployment = deployment
        self.rejection = rejection

    def execute(self, context: Context) -> None:
        from fairgate.contracts import Deployment, Quality
        from fairgate.stages import lifecycle

        decided = self.given("deployment", Deployment, optional=True) or self.given(
            "rejection", Deployment, optional=True
        )
        recorded = self.run(
            context, lifecycle.record, quality=self.given("quality", Quality, optional=True), deployment=decided
        )
        self._recorded = (self.policy(context).model_name, recorded)  # for the OpenLineage provider, below
        self.log.info(
            "Evidence record %s (%s) appended; report at %s", recorded.seq, recorded.decision, recorded.report.uri
        )
        if recorded.decision == "quality_failed":
            quality = self.given("quality", Quality)
            raise AirflowFailException(
                f"Data quality failed: {quality.failed} of {quality.checks} checks ({'; '.join(quality.failures)}). "
                f"Evidence recorded as seq {recorded.seq}."
            )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """For Airflow's OpenLineage provider: the run's snapshot in, its model and pages out, each output
        with the fairness facet (decision, gate, key metrics, evidence hash)."""
        from fairgate.stages import lifecycle
        from fairgate_airflow.lineage import on_complete

        if not hasattr(self, "_recorded"):
            return None
        model, recorded = self._recorded
        record = lifecycle.recorded_entry(self.store(), model, task_instance.run_id, recorded.seq)
        return None if record is None else on_complete(record, seq=recorded.seq, entry_hash=recorded.hash)


class RecordFailureOperator(Stage, BaseOperator):
    """When a stage after the quality gate fails, append the run's record anyway: ``decision: failed``,
    each failed stage with what it raised (left by :func:`~fairgate_airflow.operators.base.note_failure`),
    and the data and quality the run had. Runs on ``one_failed``; the run stays failed."""

    checks_estimator = False
    template_fields: Sequence[str] = ("quality",)

    def __init__(self, *, quality: Any = None, stages: Sequence[str] = (), **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "one_failed")
        super().__init__(**kwargs)
        self.quality = quality
        self.stages = list(stages)

    def execute(self, context: Context) -> None:
        from fairgate.contracts import Quality
        from fairgate.stages import lifecycle

        ti = context["ti"]
        failures: list[dict[str, str]] = []
        for task_id in self.stages:
            noted = ti.xcom_pull(task_ids=task_id, key=FAILURE)
            for note in noted if isinstance(noted, list) else [noted]:  # a mapped stage: one per instance
                if isinstance(note, dict):
                    failures.append(note)
        if not failures:
            failures = [{"task": "unknown", "error": "a stage failed without saying why; see the run's task logs"}]
        recorded = self.run(
            context, lifecycle.record_failure, quality=self.given("quality", Quality, optional=True), failures=failures
        )
        self.log.info("Failure record %s appended: %s", recorded.seq, "; ".join(f["task"] for f in failures))
