"""What every Fairgate operator shares: the policy, the store, the run, typed inputs, one way to run a stage.

A stage's ``execute`` (or ``choose_branch``) resolves its inputs into typed results
(:mod:`fairgate.contracts`), calls one domain function through :meth:`Stage.run`, and
returns, raises or branches on what came back. :meth:`Stage.run` loads the policy once per task,
turns bad input and changed artifacts (:data:`fairgate.errors.NOT_RETRIED`) into
``AirflowFailException`` (no retries burnt on them), lets transient errors propagate (task retries
apply), and pushes the result with the seconds its work took (``compute_s``) as the task's return
value, so ``task.output`` in the DAG is that result.

The domain is imported inside the methods that use it: a DAG file imports these operators at parse
time, and the scheduler parses every file often.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseBranchOperator, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from datetime import date

    from airflow.sdk import DAG, Context

    from fairgate.policy.schema import Policy
    from fairgate.stages.lifecycle import RunInfo
    from fairgate.storage.base import ArtifactStore

# The stage's result is its return value, so ``task.output`` in the DAG is that result.
SUMMARY = "return_value"

R = TypeVar("R")


class Stage(BaseOperator):
    """Plumbing every stage shares: policy, store, run identity, inputs, running the domain function.

    Every Fairgate operator takes, besides its own arguments, where its model's settings are; each
    defaults to the environment variable named, so a DAG may leave them all out:

    - ``policy_file``: the model's policy (``FAIRGATE_POLICY``, else the bundled one);
    - ``artifact_root``: the store, a local path or ``s3://bucket/prefix`` (``FAIRGATE_ARTIFACT_ROOT``);
    - ``aws_conn_id``: the Airflow connection an ``s3://`` store is reached through (``FAIRGATE_AWS_CONN_ID``);
    - ``mlflow_conn_id``: the tracking server's connection (``FAIRGATE_MLFLOW_CONN_ID``).
    """

    policy_file: str | None = None
    artifact_root: str | None = None
    aws_conn_id: str | None = None
    mlflow_conn_id: str | None = None

    def __init__(
        self,
        *,
        policy_file: str | None = None,
        artifact_root: str | None = None,
        aws_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.policy_file = policy_file
        self.artifact_root = artifact_root
        self.aws_conn_id = aws_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    # Whether loading the policy builds the estimator to check `model.params`, which imports
    # scikit-learn (about 0.8 s in a new task process). Off for the lifecycle tasks after
    # collect_data that fit nothing: collect_data checked the same file at the start of the run.
    checks_estimator: bool = True
    _policy: Policy | None = None

    def policy(self, context: Context) -> Policy:
        """The task's policy (with the run's threshold overrides), loaded once per task."""
        if self._policy is None:
            from fairgate import load_policy

            params = context.get("params") or {}
            overrides = params.get("threshold_overrides") or {}
            rationale, by = (
                params.get("override_rationale"),
                getattr(context.get("dag_run"), "triggering_user_name", None),
            )
            self._policy = guarded(
                lambda: load_policy(self.policy_file, check_estimator=self.checks_estimator).with_threshold_overrides(
                    overrides, rationale=rationale, by=by
                )
            )
        return self._policy

    def store(self) -> ArtifactStore:
        from fairgate_airflow.settings import artifact_store

        return artifact_store(self.artifact_root, aws_conn_id=self.aws_conn_id)

    def run_info(self, context: Context) -> RunInfo:
        from fairgate.stages.lifecycle import RunInfo

        dag_run = context["dag_run"]
        run_type = getattr(dag_run, "run_type", "manual")
        return RunInfo(
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            run_type=str(getattr(run_type, "value", run_type)),
            interval_start=context.get("data_interval_start"),
            interval_end=context.get("data_interval_end"),
            triggered_by=getattr(dag_run, "triggering_user_name", None),
        )

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Resolve the inputs, except those of stages a branch skipped: they become None without their XCom
        being asked for (the Task SDK logs every XCom it cannot find as an error, though none is one here)."""
        from airflow.sdk.definitions.xcom_arg import PlainXComArg

        inputs = {f: getattr(self, f, None) for f in self.template_fields}
        upstream = {
            arg.operator.task_id
            for value in inputs.values()
            for arg in (value if isinstance(value, list) else [value])
            if isinstance(arg, PlainXComArg)
        }
        if upstream:
            dag_run = context["dag_run"]
            states = context["ti"].get_task_states(dag_run.dag_id, task_ids=sorted(upstream), run_ids=[dag_run.run_id])
            skipped = {t for t, state in (states.get(dag_run.run_id) or {}).items() if state == "skipped"}

            def kept(arg: Any) -> Any:
                return None if isinstance(arg, PlainXComArg) and arg.operator.task_id in skipped else arg

            for name, value in inputs.items():
                setattr(self, name, [kept(a) for a in value] if isinstance(value, list) else kept(value))
        super().render_template_fields(context, jinja_env)

    def given(self, name: str, cls: Any, *, optional: bool = False) -> Any:
        """The input ``name`` as a typed result (``cls.from_json``), or the plain JSON value when ``cls`` is
        ``dict`` or ``list``; None for an optional input whose stage was skipped."""
        value = getattr(self, name)
        if value is None:
            if optional:
                return None
            task_id = getattr(self, "task_id", "this task")  # Stage is always mixed into an operator
            raise AirflowFailException(
                f"{task_id}: no {name!r} input (expected a {cls.__name__} result). This usually means the "
                "upstream task did not run, or the DAG does not pass its .output to this operator."
            )
        if cls is list:  # a plain JSON list, or a mapped stage's results: read in one slice, not item by item
            return list(value[:])
        if cls is dict:  # a plain JSON value (the search plan)
            return dict(value)
        return guarded(cls.from_json, value)

    def latest(self, name: str, cls: Any) -> Any:
        """The input ``name`` given as one result or a list of them (a chain of stages, such as a review
        panel's tasks): the last that ran, as ``cls``; None when none ran."""
        value = getattr(self, name)
        ran = [v for v in (value if isinstance(value, list | tuple) else [value]) if v is not None]
        return guarded(cls.from_json, ran[-1]) if ran else None

    def run(self, context: Context, fn: Callable[..., R], *inputs: Any, with_run: bool = True, **kw: Any) -> R:
        """The one way a stage calls the domain: ``fn(store, policy, [run,] *inputs, **kw)``, guarded, and its
        result (a contract's ``to_json()`` or a plain dict) pushed as the task's return value."""
        started = time.perf_counter()
        try:
            head: tuple[Any, ...] = (self.store(), self.policy(context))
            if with_run:
                head = (*head, self.run_info(context))
            result = guarded(fn, *head, *inputs, **kw)
        except Exception as exc:  # say why for the run's failure record (record_failure), then fail as before
            note_failure(context, exc)
            raise
        publish(context, result, started=started)
        return result


class BranchStage(Stage, BaseBranchOperator):
    """A branching stage: ``choose_branch`` runs the stage and returns the route.

    The return value stays the stage's result, not the route, so ``.output`` means the same for
    every stage.
    """

    def execute(self, context: Context) -> None:
        self.do_branch(context, self.choose_branch(context))


FAILURE = "failure"  # the XCom key a failed stage leaves its cause under


def note_failure(context: Context, exc: BaseException) -> None:
    """Push what a failing stage raised (the next try, if any, clears it), for the run's failure record."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    task = ti.task_id + (f"[{map_index}]" if isinstance(map_index, int) and map_index >= 0 else "")
    error = str(exc) if isinstance(exc, AirflowFailException) else f"{type(exc).__name__}: {exc}"
    try:
        ti.xcom_push(key=FAILURE, value={"task": task, "error": error[:2000]})
    except Exception:  # noqa: S110  (the failure itself is what matters; it is raised by the caller)
        pass


def guarded(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Call a domain function, turning bad input and changed artifacts (:data:`fairgate.errors.NOT_RETRIED`)
    into a task failure without retries; anything else (a :class:`~fairgate.errors.TransientError`, a
    network or storage hiccup) propagates, so retries apply."""
    from fairgate.errors import NOT_RETRIED

    try:
        return fn(*args, **kwargs)
    except NOT_RETRIED as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def publish(context: Context, result: Any, *, started: float) -> Any:
    """Push a result as the task's return value: a contract or dict with the seconds its work took
    (``compute_s``), a list (what a mapped task expands over) as it is."""
    if isinstance(result, list):
        value: Any = list(result)
    else:
        value = {
            **(result if isinstance(result, dict) else result.to_json()),
            "compute_s": round(time.perf_counter() - started, 3),
        }
    context["ti"].xcom_push(key=SUMMARY, value=value)
    return value


def day_of(context: Context) -> date:
    """The calendar day a daily run covers: the start of its data interval (its logical date otherwise;
    for a run an asset started, which has neither, the day it was started)."""
    start = context.get("data_interval_start") or context.get("logical_date")
    if start is None and context.get("dag_run") is not None:
        start = getattr(context["dag_run"], "run_after", None)
    if start is None:
        raise AirflowFailException("This DAG needs a logical date: trigger it with one, or let it be scheduled.")
    return start.date()


@dataclass(frozen=True)
class Answer:
    """What a person answered in a HITL form, read once from the trigger's event."""

    choice: str | None
    rationale: str | None
    reviewer: str | None
    timed_out: bool
    responded_at: str | None


def answer_of(event: Mapping[str, Any]) -> Answer:
    """The answer in a HITL operator's completion ``event`` (the same for reviews and contests)."""
    chosen = event.get("chosen_options") or []
    user = event.get("responded_by_user") or {}
    responded_at = event.get("responded_at")
    return Answer(
        choice=chosen[0] if chosen else None,
        rationale=(event.get("params_input") or {}).get("rationale"),
        reviewer=(user.get("name") or user.get("id")) if isinstance(user, dict) else (str(user) if user else None),
        timed_out=bool(event.get("timedout")) or event.get("error_type") == "timeout",
        responded_at=responded_at.isoformat() if isinstance(responded_at, datetime) else responded_at,
    )


def routes_of(routes: Mapping[str, Any], outcomes: Sequence[str], task: Any) -> dict[str, Any]:
    """A branching operator's routes: exactly one entry per outcome the domain can return."""
    given = dict(routes)
    if set(given) != set(outcomes):
        name = getattr(task, "task_id", task)
        raise ValueError(f"{name}: routes must name a task for each outcome {list(outcomes)}; got {sorted(given)}.")
    return given


def check_routes(dag: DAG) -> DAG:
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
            raise ValueError(
                f"{dag.dag_id}.{task.task_id} routes to {unknown}, which are not directly downstream "
                f"of it (downstream: {sorted(task.downstream_task_ids)})."
            )
    return dag
