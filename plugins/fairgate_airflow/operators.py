"""One operator per lifecycle stage, each a thin adapter over one ``fairgate`` domain call.

The DAG wires the data: each stage's input is a templated field holding an upstream task's
``.output`` (an ``XComArg``), e.g. ``TrainModelOperator(bias=check_bias.output)``, so no operator
names another task and the data edges are the task edges. Every ``execute`` resolves its
inputs into typed results (:mod:`fairgate.stages.contracts`), calls one domain function, pushes that
function's small JSON result as its return value, then returns, raises or branches. Branching
operators get their routes from the DAG; the domain returns outcomes. Bad input
(:class:`fairgate.errors.InputError`) raises ``AirflowFailException`` (no retries burnt on it);
storage and network errors raise as they are, so task retries apply.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator, HITLOperator
from airflow.sdk import BaseBranchOperator, BaseOperator, Param
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from airflow.sdk import Context

# The stage's result is its return value, so ``task.output`` in the DAG is that result.
SUMMARY = "return_value"


class _Stage:
    """Plumbing every stage shares: policy, store, run identity, inputs, publishing the result."""

    # The model's policy file, set on every task by fairgate_airflow.models.bind (None: FAIRGATE_POLICY).
    policy_file: str | None = None
    # Whether loading the policy builds the estimator to check `model.params`, which imports
    # scikit-learn (about 0.8 s in a new task process). Off for the lifecycle tasks after
    # collect_data that fit nothing: collect_data checked the same file at the start of the run.
    checks_estimator: bool = True

    def policy(self, context: Context):
        from fairgate.policy.loader import load_policy

        overrides = (context.get("params") or {}).get("threshold_overrides") or {}
        return self.guarded(lambda: load_policy(self.policy_file, check_estimator=self.checks_estimator)
                            .with_threshold_overrides(overrides))

    def store(self):
        from fairgate_airflow.settings import artifact_store

        return artifact_store()

    def run_info(self, context: Context):
        from fairgate.stages.lifecycle import RunInfo

        dag_run = context["dag_run"]
        run_type = getattr(dag_run, "run_type", "manual")
        return RunInfo(
            dag_id=dag_run.dag_id, run_id=dag_run.run_id, run_type=str(getattr(run_type, "value", run_type)),
            interval_start=context.get("data_interval_start"), interval_end=context.get("data_interval_end"),
        )

    def given(self, name: str, cls: type, *, optional: bool = False):
        """The input ``name`` as a typed result; None for an optional input whose stage was skipped."""
        value = getattr(self, name)
        if value is None:
            if optional:
                return None
            task_id = getattr(self, "task_id", "this task")  # _Stage is always mixed into an operator
            raise AirflowFailException(
                f"{task_id}: no {name!r} input (expected a {cls.__name__} result). This usually means the "
                "upstream task did not run, or the DAG does not pass its .output to this operator.")
        if cls in (dict, list):  # a plain JSON value (the search plan)
            return cls(value)
        return self.guarded(cls.from_json, value)

    @staticmethod
    def guarded(fn, *args, **kwargs):
        """Call a domain function, turning bad input and changed artifacts (:data:`fairgate.errors.NOT_RETRIED`)
        into a task failure without retries; anything else (a :class:`~fairgate.errors.TransientError`, a
        network or storage hiccup) propagates, so retries apply."""
        from fairgate.errors import NOT_RETRIED

        try:
            return fn(*args, **kwargs)
        except NOT_RETRIED as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def publish(context: Context, result: Any, *, started: float) -> dict[str, Any]:
        """Push the stage's result as its return value, with the seconds its work took (``compute_s``)."""
        value = {**(result if isinstance(result, dict) else result.to_json()),
                 "compute_s": round(time.perf_counter() - started, 3)}
        context["ti"].xcom_push(key=SUMMARY, value=value)
        return value

    def run_stage(self, context: Context, fn, *inputs: Any, **kw: Any) -> Any:
        """The common stage: ``fn(store, policy, run, *inputs, **kw)``, guarded, its result published."""
        started = time.perf_counter()
        result = self.guarded(fn, self.store(), self.policy(context), self.run_info(context), *inputs, **kw)
        self.publish(context, result, started=started)
        return result


class _BranchStage(_Stage, BaseBranchOperator):
    """A branching stage: ``choose_branch`` publishes the result and returns the route.

    The return value stays the stage's result, not the route, so ``.output`` means the same for
    every stage.
    """

    def execute(self, context: Context) -> None:
        self.do_branch(context, self.choose_branch(context))


class CollectDataOperator(_Stage, BaseOperator):
    """Snapshot the policy's data source (the run's interval when partitioned) as Parquet."""

    ui_color = "#e8f4fd"

    def execute(self, context: Context) -> None:
        from fairgate.stages import lifecycle

        snapshot = self.run_stage(context, lifecycle.collect)
        self.log.info("Snapshot of %s rows written to %s (sha256 %s)", snapshot.rows, snapshot.data.uri,
                      snapshot.data.sha256)


class ValidateDataOperator(_BranchStage):
    """Run the policy's quality suite on ``snapshot``; branch through ``routes["passed"]`` / ``["failed"]``."""

    checks_estimator = False

    template_fields: Sequence[str] = ("snapshot",)
    ui_color = "#fdf6e3"

    def __init__(self, *, snapshot: Any = None, routes: Mapping[str, str], **kwargs):
        super().__init__(**kwargs)
        self.snapshot = snapshot
        self.routes = _routes(routes, ("passed", "failed"), self)

    def choose_branch(self, context: Context) -> str:
        from fairgate.stages import lifecycle
        from fairgate.stages.contracts import Snapshot

        quality = self.run_stage(context, lifecycle.validate, self.given("snapshot", Snapshot))
        if quality.passed:
            self.log.info("Routing to %s because all %s quality checks passed", self.routes["passed"], quality.checks)
            return self.routes["passed"]
        self.log.info("Routing to %s because %s of %s checks failed: %s", self.routes["failed"], quality.failed,
                      quality.checks, "; ".join(quality.failures))
        return self.routes["failed"]


class CheckBiasOperator(_BranchStage):
    """Measure disparity in the validated snapshot; branch through ``routes["search"]`` (the mitigation
    search: bias detected, or the policy searches always) or ``routes["train"]`` (train without mitigation)."""

    template_fields: Sequence[str] = ("quality",)
    ui_color = "#fdf6e3"

    def __init__(self, *, quality: Any = None, routes: Mapping[str, str], **kwargs):
        super().__init__(**kwargs)
        self.quality = quality
        self.routes = _routes(routes, ("search", "train"), self)

    def choose_branch(self, context: Context) -> str:
        from fairgate.mitigation.search import route_after_bias
        from fairgate.stages import lifecycle
        from fairgate.stages.contracts import Quality

        bias = self.run_stage(context, lifecycle.check_bias, self.given("quality", Quality))
        for warning in bias.warnings:
            self.log.warning("Proxy check: %s", warning)
        for short in bias.short_of_evidence:
            self.log.warning("Evidence: %s", short)
        route, why = route_after_bias(bias.detected, bias.reasons, self.policy(context))
        self.log.info("Routing to %s because %s", self.routes[route], why)
        return self.routes[route]


class PlanSearchOperator(_Stage, BaseOperator):
    """List the mitigation search's candidates; its result is what the candidate task is mapped over."""

    checks_estimator = False

    template_fields: Sequence[str] = ("bias",)

    def __init__(self, *, bias: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.bias = bias

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from fairgate.stages import lifecycle
        from fairgate.stages.contracts import Bias

        specs = self.guarded(lifecycle.search_plan, self.store(), self.policy(context), self.run_info(context),
                             self.given("bias", Bias))
        self.log.info("%s candidates: %s", len(specs),
                      ", ".join(f"{s['candidate']['name']}.{s['candidate']['estimator']}" for s in specs))
        return specs


class FitCandidateOperator(_Stage, BaseOperator):
    """Fit one candidate (mapped over the plan: one task instance per candidate) and measure it on
    the validation split. ``planned`` is one item of the plan: the candidate and its bias result."""

    template_fields: Sequence[str] = ("planned",)

    def __init__(self, *, planned: Any = None, policy_file: str | None = None, **kwargs):
        kwargs.setdefault("map_index_template", "{{ candidate_id }}")
        super().__init__(**kwargs)
        self.planned = planned
        self.policy_file = policy_file  # set through the mapped task's partial kwargs (models.bind)

    def execute(self, context: Context) -> None:
        from fairgate.stages import lifecycle
        from fairgate.stages.contracts import Bias

        planned = self.given("planned", dict)
        spec = planned["candidate"]
        context["candidate_id"] = f"{spec['name']}.{spec['estimator']}"  # type: ignore[typeddict-unknown-key]  # read by map_index_template
        result = self.run_stage(context, lifecycle.fit_candidate, self.guarded(Bias.from_json, planned["bias"]),
                                dict(spec))
        if result.status == "failed":
            self.log.warning("Candidate %s failed and is left out of the choice: %s", result.id, result.error)
        else:
            self.log.info("Candidate %s: validation balanced accuracy %.4f, band gap %s (fit %.1f s)", result.id,
                          result.balanced_accuracy or float("nan"), result.band_gap, result.fit_s)


class SelectCandidateOperator(_Stage, BaseOperator):
    """Choose the candidate by the policy's rule on validation figures; record the whole search.

    ``plan`` is the plan's result (every planned candidate must have a result), ``candidates``
    the mapped task's results.
    """

    template_fields: Sequence[str] = ("plan", "candidates")

    def __init__(self, *, plan: Any = None, candidates: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.plan = plan
        self.candidates = candidates

    def execute(self, context: Context) -> None:
        from fairgate.stages import lifecycle
        from fairgate.stages.contracts import Bias, CandidateResult

        plan = list(self.given("plan", list))
        results = [self.guarded(CandidateResult.from_json, c) for c in (self.candidates or [])]
        planned = {f"{p['candidate']['name']}.{p['candidate']['estimator']}" for p in plan}
        missing = sorted(planned - {r.id for r in results})
        if not plan or missing:
            raise AirflowFailException(f"{self.task_id}: the search planned {sorted(planned)} but has no result for "
                                       f"{missing}; the DAG must pass the candidate task's .output.")
        trained = self.run_stage(context, lifecycle.select_candidate, self.guarded(Bias.from_json, plan[0]["bias"]),
                                 results)
        self.log.info("Chose %s (%s) of %s candidates", trained.mitigation.method or "no mitigation",
                      trained.mitigation.reason, len(results))


class TrainModelOperator(_Stage, BaseOperator):
    """Fit the policy's pipeline without mitigation (the bias check found nothing to mitigate)."""

    template_fields: Sequence[str] = ("bias",)

    def __init__(self, *, bias: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.bias = bias

    def execute(self, context: Context) -> None:
        from fairgate.stages import lifecycle
        from fairgate.stages.contracts import Bias

        trained = self.run_stage(context, lifecycle.train, self.given("bias", Bias))
        self.log.info("Model %s trained on %s rows; validation %s", trained.model.sha256[:12],
                      trained.rows["train"], trained.validation)


class FairnessGateOperator(_BranchStage):
    """Evaluate the trained model on the test split; branch by the gate's outcome through ``routes``.

    ``trained`` is a list of the upstream results that may hold the model (the search's choice,
    the unmitigated training); exactly one of them ran.
    """

    template_fields: Sequence[str] = ("trained",)
    ui_color = "#fde8e8"

    def __init__(self, *, trained: Any = None, routes: Mapping[str, str], **kwargs):
        super().__init__(**kwargs)
        self.trained = trained
        self.routes = _routes(routes, ("pass", "fail", "review"), self)

    def choose_branch(self, context: Context) -> str:
        from fairgate.stages import lifecycle
        from fairgate.stages.contracts import TrainedModel

        ran = [t for t in (self.trained if isinstance(self.trained, (list, tuple)) else [self.trained])
               if t is not None]
        if len(ran) != 1:
            raise AirflowFailException(
                f"{self.task_id}: no 'trained' input from exactly one training route (got {len(ran)} results; "
                "expected the search's choice or the model trained without mitigation). This usually means the "
                "upstream task did not run, or the DAG does not pass its .output to this operator.")
        gate = self.run_stage(context, lifecycle.evaluate, self.guarded(TrainedModel.from_json, ran[0]))
        route = self.routes[gate.outcome]
        self.log.info("Routing to %s because the gate says %s: %s", route, gate.outcome,
                      "; ".join(gate.reasons) or "all checks passed")
        return route


class HumanReviewOperator(_Stage, HITLBranchOperator):
    """Ask a person to approve or reject a borderline candidate, with the gate's evidence attached.

    The reviewer must give a rationale; an approval without one, a rejection, or no answer
    before the policy's ``review_timeout_hours`` all lead to ``routes["rejected"]``.
    """

    checks_estimator = False

    template_fields: Sequence[str] = (*HITLBranchOperator.template_fields, "gate")

    def __init__(self, *, gate: Any = None, routes: Mapping[str, str], **kwargs):
        routes = _routes(routes, ("approved", "rejected"), kwargs.get("task_id"))
        kwargs.setdefault("subject", "Fairgate: review a model the fairness gate could not decide")
        kwargs.pop("params", None)  # DAG-level params do not belong in the review form
        super().__init__(
            options=["Approve", "Reject"], defaults=["Reject"],
            options_mapping={"Approve": routes["approved"], "Reject": routes["rejected"]},
            params={"rationale": Param("", type="string", title="Rationale (required)",
                                       description="Why you approve or reject this model; recorded in the "
                                                   "evidence and the model card.")},
            **kwargs,
        )
        self.gate = gate
        self.routes = routes

    def execute(self, context: Context):
        from fairgate.stages import lifecycle
        from fairgate.stages.contracts import GateResult
        from fairgate_airflow.review import report_url

        policy, run = self.policy(context), self.run_info(context)
        self.response_timeout = timedelta(hours=policy.review_timeout_hours)
        self.body, report = self.guarded(lifecycle.request_review, self.store(), policy, run,
                                         self.given("gate", GateResult),
                                         report_url=report_url(run.dag_id, run.run_id))
        self.log.info("Review requested; the report as it stands is at %s", report.uri)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from fairgate.fairness.gate import review_decision

        started = time.perf_counter()
        timed_out = bool(event.get("timedout")) or event.get("error_type") == "timeout"
        chosen = event.get("chosen_options") or []
        user = event.get("responded_by_user") or {}
        responded_at = event.get("responded_at")
        review = review_decision(
            chosen[0] if chosen else None, (event.get("params_input") or {}).get("rationale"),
            reviewer=(user.get("name") or user.get("id")) if isinstance(user, dict) else str(user),
            timed_out=timed_out,
            responded_at=responded_at.isoformat() if hasattr(responded_at, "isoformat") else responded_at)
        self.publish(context, review, started=started)
        route = self.routes["approved" if review.approved else "rejected"]
        self.log.info("Routing to %s: reviewer %s chose %s %s", route, review.reviewer, review.choice, review.note)
        self.do_branch(context=context, branches_to_execute=[route])


class DeployModelOperator(_Stage, BaseOperator):
    """Register the approved model and move the production pointer (not from backfills)."""

    checks_estimator = False

    template_fields: Sequence[str] = ("gate", "review")
    ui_color = "#e6f4ea"

    def __init__(self, *, gate: Any = None, review: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.gate = gate
        self.review = review

    def execute(self, context: Context) -> None:
        from fairgate.stages import lifecycle
        from fairgate.stages.contracts import GateResult, Review

        deployment = self.run_stage(context, lifecycle.deploy, self.given("gate", GateResult),
                                    self.given("review", Review, optional=True))
        self.log.info("Version %s registered; production pointer moved: %s (previous %s)",
                      deployment.version[:12], deployment.promoted, deployment.previous)


class RejectModelOperator(_Stage, BaseOperator):
    """Record that the candidate is not deployed; production is left as it was."""

    checks_estimator = False

    template_fields: Sequence[str] = ("gate", "review")
    ui_color = "#f4f4f4"

    def __init__(self, *, gate: Any = None, review: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.gate = gate
        self.review = review

    def execute(self, context: Context) -> None:
        from fairgate.stages import lifecycle
        from fairgate.stages.contracts import GateResult, Review

        started = time.perf_counter()
        rejection = self.guarded(lifecycle.reject, self.store(), self.policy(context), self.given("gate", GateResult),
                                 self.given("review", Review, optional=True))
        self.publish(context, rejection, started=started)
        self.log.info("Candidate rejected; production stays at %s", rejection.previous)


class RecordEvidenceOperator(_Stage, BaseOperator):
    """Conclude the run, append its evidence record to the hash-chained log, write its report and card.

    Takes the deployment decision (``deployment`` from the deploy stage, or ``rejection`` from the
    reject stage: the one that ran) or, for a run stopped by the quality gate, ``quality``. A run
    that concludes ``quality_failed`` fails after recording, so the evidence of why is kept.
    """

    checks_estimator = False

    template_fields: Sequence[str] = ("quality", "deployment", "rejection")

    def __init__(self, *, quality: Any = None, deployment: Any = None, rejection: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.quality = quality
        self.deployment = deployment
        self.rejection = rejection

    def execute(self, context: Context) -> None:
        from fairgate.stages import lifecycle
        from fairgate.stages.contracts import Deployment, Quality

        decided = self.given("deployment", Deployment, optional=True) or \
            self.given("rejection", Deployment, optional=True)
        recorded = self.run_stage(context, lifecycle.record, quality=self.given("quality", Quality, optional=True),
                                  deployment=decided)
        self._recorded = (self.policy(context).model_name, recorded)  # for the OpenLineage provider, below
        self.log.info("Evidence record %s (%s) appended; report at %s", recorded.seq, recorded.decision,
                      recorded.report.uri)
        if recorded.decision == "quality_failed":
            quality = self.given("quality", Quality)
            raise AirflowFailException(
                f"Data quality failed: {quality.failed} of {quality.checks} checks ({'; '.join(quality.failures)}). "
                f"Evidence recorded as seq {recorded.seq}.")


    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """For Airflow's OpenLineage provider: the run's snapshot in, its model and pages out, each output
        with the fairness facet (decision, gate, key metrics, evidence hash)."""
        from fairgate.governance import evidence
        from fairgate_airflow.lineage import on_complete

        if not hasattr(self, "_recorded"):
            return None
        model, recorded = self._recorded
        entry = evidence.find(self.store(), model, task_instance.run_id)
        if entry is None or entry["seq"] != recorded.seq:
            return None
        return on_complete(entry["record"], seq=recorded.seq, entry_hash=recorded.hash)


class TrackMlflowOperator(_Stage, BaseOperator):
    """Bring MLflow up to date with the evidence log: this run (``lifecycle_runs``), the audits, the alias.

    MLflow is a view; the evidence log is the record. A server that stays down through the task's
    retries does not fail the run: the last try records ``not_logged`` in the evidence and the task
    succeeds with a warning (``fairgate mlflow-sync`` logs it later). ``FAIRGATE_MLFLOW=off`` skips it.
    """

    checks_estimator = False

    ui_color = "#d9ecf7"

    def __init__(self, *, lifecycle_runs: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.lifecycle_runs = lifecycle_runs

    def execute(self, context: Context) -> None:
        from fairgate.integrations import tracking
        from fairgate_airflow import settings

        started = time.perf_counter()
        if not settings.tracking_enabled():
            self.log.info("FAIRGATE_MLFLOW is off: nothing sent to MLflow.")
            return
        run = self.run_info(context)
        ti = context["ti"]
        result = self.guarded(
            tracking.track, self.store(), self.policy(context), uri=settings.mlflow_tracking_uri(),
            run_id=run.run_id if self.lifecycle_runs else None, lifecycle_runs=self.lifecycle_runs,
            run_url=settings.airflow_run_url(run.dag_id, run.run_id), last_try=ti.try_number > self.retries)
        if result["logged"]:
            self.log.info("MLflow: runs %s, versions %s, %s audit(s), production alias -> %s", result["runs"],
                          result["versions"], result["audits"], result["alias"])
        else:
            self.log.warning("MLflow was not reached after %s tries; recorded as not logged in the evidence "
                             "(run `fairgate mlflow-sync` later): %s", ti.try_number, result["error"])
        self.publish(context, result, started=started)


class DecideContestOperator(_Stage, HITLOperator):
    """Show a reviewer a contested decision, or one the review triggers held (record, reasons, recourse,
    model version), and record the outcome: Uphold or Overturn, with a rationale. A contest waits for
    its answer; a review before harm that nobody answers within ``review_triggers.timeout_hours`` is
    recorded as upheld (the automatic decision stands) and timed out."""

    template_fields: Sequence[str] = (*HITLOperator.template_fields, "case_id")

    def __init__(self, *, case_id: str = "", **kwargs):
        kwargs.setdefault("subject", "Fairgate: a decision to review")
        kwargs.pop("params", None)
        super().__init__(
            options=["Uphold", "Overturn"], defaults=["Uphold"],
            params={"rationale": Param("", type="string", title="Rationale (required)",
                                       description="Why you uphold or overturn the decision; recorded in the "
                                                   "evidence log and shown to the person.")},
            **kwargs)
        self.case_id = case_id

    def execute(self, context: Context):
        from fairgate.governance import cases

        policy = self.policy(context)
        case = self.guarded(cases.read, self.store(), policy.model_name, self.case_id)
        if case["outcome"] is not None:
            raise AirflowFailException(f"Case {self.case_id} was already decided ({case['outcome']['choice']}).")
        self.body = cases.review_body(case, policy)
        if case["kind"] == "review":
            self.subject = "Fairgate: review a decision before it takes effect"
            self.response_timeout = timedelta(hours=policy.review_triggers["timeout_hours"])
        else:
            self.subject = "Fairgate: a person contests a decision"
            self.response_timeout = None  # a contest waits for its answer
        self.log.info("Case %s of %s (%s) waits for a reviewer", self.case_id, case["row"], case["date"])
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from fairgate.governance import cases

        timed_out = bool(event.get("timedout")) or event.get("error_type") == "timeout"
        chosen = event.get("chosen_options") or []
        user = event.get("responded_by_user") or {}
        reviewer = (user.get("name") or user.get("id")) if isinstance(user, dict) else str(user)
        rationale = (event.get("params_input") or {}).get("rationale")
        if timed_out:
            chosen, reviewer = ["Uphold"], None
            rationale = "no answer before the review timed out: the automatic decision stands"
        outcome = self.guarded(cases.decide, self.store(), self.policy(context), self.case_id,
                               choice=chosen[0] if chosen else None, rationale=rationale, reviewer=reviewer,
                               timed_out=timed_out)
        self.log.info("Case %s: %s by %s (evidence record %s)", self.case_id, outcome["choice"], reviewer,
                      outcome["seq"])
        return {k: outcome[k] for k in ("case_id", "choice", "final_decision", "seq")}


class RollbackOperator(_Stage, BaseOperator):
    """Point production back to an earlier approved version and record who, when and why."""

    template_fields: Sequence[str] = ("version", "reason")
    ui_color = "#fff3cd"

    def __init__(self, *, version: str = "", reason: str = "", **kwargs):
        super().__init__(**kwargs)
        self.version = version
        self.reason = reason

    def execute(self, context: Context) -> None:
        from fairgate.stages import lifecycle

        started = time.perf_counter()
        policy, run = self.policy(context), self.run_info(context)
        actor = getattr(context["dag_run"], "triggering_user_name", None) or "unknown"
        moved = self.guarded(lifecycle.rollback, self.store(), policy, to_version=self.version or None, actor=actor,
                             reason=self.reason, run_id=run.run_id, dag_id=run.dag_id)
        self.log.info("Production moved from %s back to %s (evidence record %s)", moved["from_version"][:12],
                      moved["to_version"][:12], moved["seq"])
        self.publish(context, moved, started=started)


def _day(context: Context):
    """The calendar day a daily run covers: the start of its data interval (its logical date otherwise)."""
    start = context.get("data_interval_start") or context.get("logical_date")
    if start is None:
        raise AirflowFailException("This DAG needs a logical date: trigger it with one, or let it be scheduled.")
    return start.date()


class ScoreOperator(_Stage, BaseOperator):
    """Score the day's incoming records with the production model into the prediction log."""

    def execute(self, context: Context) -> list[str]:
        from fairgate.stages import monitoring

        started = time.perf_counter()
        scenario = (context.get("params") or {}).get("scenario") or None
        day = _day(context)
        summary = self.guarded(monitoring.score, self.store(), self.policy(context), day, scenario=scenario)
        self.log.info("Scored %s records of %s with model %s; selection rate %.3f", summary["rows"], day,
                      summary["model_version"][:12], summary["selection_rate"])
        review_cases = summary.pop("review_cases", [])
        self.publish(context, summary, started=started)
        if review_cases:
            self.log.info("%s decisions wait for review before they take effect", len(review_cases))
        return review_cases  # what the review task is mapped over


class AuditOperator(_BranchStage):
    """Audit the window ending on the run's day, store the result, then branch on its status through ``routes``."""

    def __init__(self, *, routes: Mapping[str, Sequence[str]], **kwargs):
        super().__init__(**kwargs)
        self.routes = _routes(routes, ("healthy", "degraded", "insufficient_evidence"), self)

    def choose_branch(self, context: Context) -> list[str]:
        from fairgate.stages import monitoring

        started = time.perf_counter()
        run, day = self.run_info(context), _day(context)
        result = self.guarded(monitoring.audit, self.store(), self.policy(context), day, run_id=run.run_id,
                              run_type=run.run_type)
        self.publish(context, result, started=started)
        self.log.info("Audit of %s: %s (%s predictions, %s with outcomes). %s", day, result.status, result.rows,
                      result.labeled_rows, "; ".join(result.reasons[:5]))
        return list(self.routes[result.status])


class AlertOperator(_Stage, BaseOperator):
    """Send the audit's alert through each notifier (default: task log + alerts file in the store)."""

    template_fields: Sequence[str] = ("audit",)

    def __init__(self, *, audit: Any = None, notifiers: Sequence[Any] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.audit = audit
        self.notifiers = notifiers

    def execute(self, context: Context) -> None:
        from fairgate.stages.contracts import Audit
        from fairgate_airflow.notifiers import ArtifactStoreAlertNotifier

        audit = self.given("audit", Audit)
        severity = "critical" if audit.status == "degraded" else "info"
        message = (f"Fairgate audit {audit.date}: {audit.status}. "
                   + "; ".join(audit.reasons or audit.insufficient)[:1000] + f" Report: {audit.report.uri}")
        model = self.policy(context).model_name
        for notifier in self.notifiers or [ArtifactStoreAlertNotifier()]:
            notifier.message, notifier.severity = f"[{model}] {message}", severity
            notifier.payload = {"model": model, "date": audit.date, "status": audit.status,
                                "audit_uri": audit.result.uri}
            notifier.notify(context)


class RequestRetrainingOperator(_Stage, BaseOperator):
    """Update the retraining-request asset (``fairgate_lifecycle`` is scheduled on it) with the reason.

    Backfill runs rebuild audit history; they do not request retraining.
    """

    template_fields: Sequence[str] = ("audit",)

    def __init__(self, *, audit: Any = None, **kwargs):
        super().__init__(**kwargs)
        self.audit = audit

    def execute(self, context: Context) -> None:
        from fairgate.stages.contracts import Audit

        audit = self.given("audit", Audit)
        if audit.run_type == "backfill":
            self.log.info("Backfill run: retraining not requested for %s", audit.date)
            return
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {
                "reason": "; ".join(audit.reasons)[:1000], "audit_date": audit.date, "audit_uri": audit.result.uri}
        self.log.info("Retraining requested: %s", "; ".join(audit.reasons)[:500])


def _routes(routes: Mapping[str, Any], outcomes: Sequence[str], task: Any) -> dict[str, Any]:
    """A branching operator's routes: exactly one entry per outcome the domain can return."""
    given = dict(routes)
    if set(given) != set(outcomes):
        name = getattr(task, "task_id", task)
        raise ValueError(f"{name}: routes must name a task for each outcome {list(outcomes)}; got {sorted(given)}.")
    return given


def check_routes(dag: Any) -> Any:
    """Fail at parse time when a branching operator routes to a task that is not directly downstream of it.

    Call at the end of a DAG file: renaming a task then breaks the parse, not a run.
    """
    for task in dag.tasks:
        routes = getattr(task, "routes", None)
        if not isinstance(routes, dict):
            continue
        named = {t for target in routes.values() for t in ([target] if isinstance(target, str) else target)}
        unknown = sorted(named - set(task.downstream_task_ids))
        if unknown:
            raise ValueError(f"{dag.dag_id}.{task.task_id} routes to {unknown}, which are not directly downstream "
                             f"of it (downstream: {sorted(task.downstream_task_ids)}).")
    return dag


__all__: Sequence[str] = (
    "CheckBiasOperator", "CollectDataOperator", "DeployModelOperator", "FairnessGateOperator",
    "HumanReviewOperator", "RecordEvidenceOperator", "RejectModelOperator", "RollbackOperator",
    "TrainModelOperator", "ValidateDataOperator", "PlanSearchOperator", "FitCandidateOperator",
    "SelectCandidateOperator", "ScoreOperator", "AuditOperator", "AlertOperator",
    "RequestRetrainingOperator", "check_routes",
)
