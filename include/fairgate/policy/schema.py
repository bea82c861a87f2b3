"""The policy file's schema: every key, its type, its range and its default, in one place.

pydantic models with ``extra="forbid"`` at every level and strict types, so a typo
(``min_row``), a singular (``intersection``), a wrong type (``"yes"`` for a boolean) or a value
out of range is refused at load, never silently defaulted. The defaults here are the only ones:
the policy reference table (docs/policy.md) is generated from this module (``fairgate policy schema --markdown``)
and a test checks the two agree; ``fairgate policy schema`` prints the JSON Schema for editors.

This model *is* the policy the code reads: :class:`Policy` is what
:func:`fairgate.policy.loader.load_policy` returns, typed sections all the way down. Defaults that
follow from other keys (the simulated feed of the bundled data, the outcomes table beside the log
table, the search's estimators) are filled in by one ``before`` validator; the rules that relate
several keys (an intersection names declared attributes, the label is not a feature, ...) are
one ``after`` validator, each naming the keys involved.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from fairgate.errors import PolicyError
from fairgate.policy import rules
from fairgate.policy.bundled import ADULT_COLUMNS, SIMULATED_FEED
from fairgate.policy.people import person

Estimator = Literal["logistic_regression", "hist_gradient_boosting", "random_forest"]
DataMetric = Literal["disparate_impact", "statistical_parity_difference"]
Metric = Literal[
    "disparate_impact",
    "statistical_parity_difference",
    "equal_opportunity_difference",
    "average_odds_difference",
    "false_positive_rate_difference",
    "false_negative_rate_difference",
    "roc_auc_difference",
    "calibration_difference",
]
Scenario = Literal["stable", "group_mix_shift", "label_shift", "proxy_drift"]
SCENARIOS: tuple[str, ...] = get_args(Scenario)  # the simulated feed's scenarios
ThresholdKind = Literal["ratio_band", "abs_difference"]
Comparison = Literal[">=", ">", "<=", "<"]
FilterOp = Literal["==", "!=", ">=", ">", "<=", "<", "in", "not_in", "not_null"]
Scalar = str | int | float | bool
Name = Annotated[str, Field(min_length=1)]


def _fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be a number between 0 and 1")
    return value


def _open_fraction(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise ValueError("must be a number strictly between 0 and 1")
    return value


# Checked by a function so the message says the whole range; the JSON Schema still carries it.
Fraction = Annotated[float, AfterValidator(_fraction), WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})]
OpenFraction = Annotated[
    float,
    AfterValidator(_open_fraction),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}),
]
NonNegative = Annotated[float, Field(ge=0.0)]


# A model's name: its registry and store namespace and the suffix of its DAG ids (the one pattern for it).
MODEL_NAME = r"[A-Za-z0-9_-]{1,64}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Features(_Section):
    categorical: list[Name] = Field(default_factory=list, description="categorical model inputs")
    numeric: list[Name] = Field(default_factory=list, description="numeric model inputs")


class RowFilter(_Section):
    """Keep only rows where ``column op value`` holds (a declarative filter: nothing is evaluated)."""

    column: Name
    op: FilterOp
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> RowFilter:
        if self.op == "not_null":
            if self.value is not None:
                raise ValueError("op 'not_null' takes no value")
        elif self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"op {self.op!r} needs a non-empty list as value")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs one value (a string or number)")
        return self


class Dataset(_Section):
    source: Name = Field(
        description="`bundled://adult`; a local or `s3://` CSV/Parquet file or folder of "
        "`date=YYYY-MM-DD` partitions; or `sql://<airflow connection id>` with `query`"
    )
    format: Literal["csv", "parquet"] = Field("csv", description="file format of a file source")
    partitioned: bool = Field(
        False, description="read only the `date=YYYY-MM-DD` folders inside the run's data interval"
    )
    query: Name | None = Field(
        None,
        description="SQL for a `sql://` source; may use the bound parameters `:interval_start` and `:interval_end`",
    )
    filters: list[RowFilter] = Field(
        default_factory=list,
        description="rows kept: each `{column, op, value}`, op one of `== != >= > <= < in not_in not_null`",
    )
    label: Name = Field(description="label column")
    favorable_label: Scalar = Field(description="the label's favourable value, of the column's type")
    row_key: Name | None = Field(None, description="unique row identifier (checked for uniqueness)")
    missing: Literal["refuse", "impute"] = Field(
        "refuse",
        description="missing feature values a quality gate let through: `refuse` (the run stops naming the column "
        "and the count) or `impute` (median for numbers, most frequent for categories, inside the model, so "
        "scoring treats them the same)",
    )
    features: Features = Field(description="model inputs: `categorical` and `numeric` column lists")
    feature_labels: dict[str, Name] = Field(
        default_factory=dict, description="plain names of inputs for reason codes (default: the column name)"
    )
    value_labels: dict[str, dict[str, Name]] = Field(
        default_factory=dict, description="plain names of category values for reason codes, per column"
    )

    @model_validator(mode="after")
    def _query_only_for_sql(self) -> Dataset:
        if self.source.startswith("sql://") and not self.query:
            raise ValueError("a sql:// source needs 'query'")
        if self.query and not self.source.startswith("sql://"):
            raise ValueError("'query' applies only to a sql://<connection id> source")
        return self


class PrivilegedIf(_Section):
    op: Comparison
    value: float


class ProtectedAttribute(_Section):
    column: Name
    privileged: list[Scalar] | None = Field(None, min_length=1)
    allowed: list[Scalar] = Field(default_factory=list)
    privileged_if: PrivilegedIf | None = None

    @model_validator(mode="after")
    def _one_definition(self) -> ProtectedAttribute:
        if (self.privileged is None) == (self.privileged_if is None):
            raise ValueError("give either 'privileged' (values) or 'privileged_if' (a comparison), not both or neither")
        return self

    @property
    def is_threshold(self) -> bool:
        """A continuous column split at a value (``privileged_if``), not a list of values."""
        return self.privileged_if is not None

    @property
    def op(self) -> str | None:
        return self.privileged_if.op if self.privileged_if else None

    @property
    def value(self) -> float | None:
        return self.privileged_if.value if self.privileged_if else None

    @property
    def privileged_values(self) -> list[Scalar]:
        """The privileged values (empty for a ``privileged_if`` column)."""
        return list(self.privileged or [])

    @property
    def privileged_group(self) -> list[Scalar] | str:
        """How the privileged group is shown in every page: its values, or the comparison (``>= 25``)."""
        return f"{self.op} {self.value:g}" if self.privileged_if else self.privileged_values


class ThresholdSpec(_Section):
    kind: ThresholdKind
    min: float | None = None  # ratio_band only; checked with the kind in Policy._keys_agree
    max: NonNegative


@dataclass(frozen=True)
class Threshold:
    """One bound on a metric. ``ratio_band``: min <= value <= max; ``abs_difference``: |value| <= max."""

    metric: str
    kind: ThresholdKind
    max: float
    min: float | None = None

    @property
    def band(self) -> tuple[float, float]:
        """The allowed interval, the one place it is computed: [min, max], or [-max, max] for a difference."""
        if self.kind == "ratio_band":
            return (self.min if self.min is not None else -self.max, self.max)  # the policy gives a band a min
        return (-self.max, self.max)

    def contains(self, value: float) -> bool:
        low, high = self.band
        return low <= value <= high

    def distance_inside(self, value: float) -> float:
        """How far ``value`` lies inside the bound, from the nearest edge (0 outside)."""
        low, high = self.band
        return min(value - low, high - value) if low <= value <= high else 0.0

    def describe(self) -> str:
        if self.kind == "ratio_band":
            return f"[{self.min:g}, {self.max:g}]"
        return f"|x| <= {self.max:g}"


def _bounds(specs: dict[Any, ThresholdSpec]) -> tuple[Threshold, ...]:
    return tuple(Threshold(metric=str(m), kind=t.kind, max=t.max, min=t.min) for m, t in specs.items())


def _threshold(kind: str, max_: float, min_: float | None = None) -> ThresholdSpec:
    return ThresholdSpec(kind=kind, max=max_, min=min_)  # type: ignore[arg-type]  # kind is one of the two literals


def _data_thresholds() -> dict[DataMetric, ThresholdSpec]:
    return {
        "disparate_impact": _threshold("ratio_band", 1.25, 0.8),
        "statistical_parity_difference": _threshold("abs_difference", 0.1),
    }


def _gate_thresholds() -> dict[Metric, ThresholdSpec]:
    return {
        "disparate_impact": _threshold("ratio_band", 1.25, 0.8),
        "statistical_parity_difference": _threshold("abs_difference", 0.1),
        "equal_opportunity_difference": _threshold("abs_difference", 0.1),
        "average_odds_difference": _threshold("abs_difference", 0.1),
    }


class Range(_Section):
    min: float | None = None
    max: float | None = None


class QualityRules(_Section):
    min_rows: int = Field(1000, ge=1, description="fewest rows a snapshot may have")
    max_null_fraction: Fraction = Field(0.0, description="per feature, label and protected column")
    max_duplicate_fraction: Fraction = Field(0.05, description="whole-row duplicates")
    ranges: dict[str, Range] = Field(default_factory=dict, description="per-column `{min, max}`")
    allowed_values: dict[str, Annotated[list[Scalar], Field(min_length=1)]] = Field(
        default_factory=dict, description="per-column allowed sets"
    )


class BiasCheck(_Section):
    thresholds: dict[DataMetric, ThresholdSpec] = Field(
        default_factory=_data_thresholds, min_length=1, description="data-stage bounds; outside → the mitigation search"
    )
    proxy_auc_warning: Fraction = Field(
        0.9, description="warn when one input predicts a protected attribute with this cross-validated ROC AUC"
    )

    @property
    def bounds(self) -> tuple[Threshold, ...]:
        return _bounds(dict(self.thresholds))


class Fairness(_Section):
    thresholds: dict[Metric, ThresholdSpec] = Field(
        default_factory=_gate_thresholds,
        min_length=1,
        description="gate bounds, each `kind: ratio_band` (min, max) or `abs_difference` (max of \\|x\\|)",
    )
    min_group_size: int = Field(50, ge=1, description="rows per group in the test split")
    min_positives: int = Field(10, ge=1, description="favourable outcomes per group in the test split")
    confidence_level: OpenFraction = Field(0.95, description="level of every interval")
    review_margin: NonNegative = Field(0.02, description="closeness to a bound that asks for review")
    champion_tolerance: NonNegative = Field(
        0.02, description="balanced accuracy the candidate may lose against production"
    )
    min_balanced_accuracy: Fraction = Field(0.6, description="performance floor")
    review_timeout_hours: Annotated[float, Field(gt=0.0)] = Field(
        24.0, description="human review deadline (then Reject); more than 0"
    )
    overrides: Literal["allowed", "reviewed", "forbidden"] = Field(
        "allowed",
        description="a manual run's `threshold_overrides`: allowed with a rationale (recorded); `reviewed`: "
        "also approved by a second person (the run goes to review even on a pass, and its trigger's "
        "approval does not count); or forbidden",
    )
    override_requesters: list[Name] = Field(
        default_factory=list,
        description="with `overrides: reviewed`, the Airflow users who may ask for an exception; a run triggered "
        "by anyone else (a shell's OS account, a schedule) carries none",
    )

    @property
    def bounds(self) -> tuple[Threshold, ...]:
        return _bounds(dict(self.thresholds))


class Model(_Section):
    estimator: Estimator = Field(
        "logistic_regression", description="`logistic_regression`, `hist_gradient_boosting` or `random_forest`"
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="the estimator's parameters (checked against its signature)"
    )
    seed: int = Field(42, ge=0, description="random seed for split and estimator")
    test_size: OpenFraction = Field(0.2, description="held-out test share (stratified by label × group cell)")
    validation_size: OpenFraction = Field(0.1, description="validation share")
    decision_threshold: OpenFraction = Field(0.5, description="score cut-off for the favourable decision")
    selection: Literal["threshold", "top_k", "top_fraction"] = Field(
        "threshold",
        description="how decisions are made: `threshold` (a score at or above `decision_threshold`), `top_k` (the "
        "`top_k` highest scores of each scored day) or `top_fraction` (the highest `top_fraction` of each day's "
        "scores); the gate measures the selection made at the same share of the test split",
    )
    top_k: int | None = Field(None, ge=1, description="with `selection: top_k`, favourable decisions per scored day")
    top_fraction: OpenFraction | None = Field(
        None, description="with `selection: top_fraction`, the share of each day's records decided favourably"
    )
    expected_daily_rows: int | None = Field(
        None,
        ge=1,
        description="with `selection: top_k`, the records a day usually holds: the gate selects the share "
        "`top_k / expected_daily_rows` of the test split",
    )

    @model_validator(mode="after")
    def _selection_complete(self) -> Model:
        if self.selection == "top_fraction" and self.top_fraction is None:
            raise ValueError("'selection: top_fraction' needs 'top_fraction' (the share decided favourably)")
        if self.selection == "top_k" and (self.top_k is None or self.expected_daily_rows is None):
            raise ValueError(
                "'selection: top_k' needs 'top_k' (favourable decisions per day) and 'expected_daily_rows' "
                "(the records a day usually holds, for the gate's share of the test split)"
            )
        return self


MitigationMethod = Literal[
    "none", "reweighing", "disparate_impact_remover", "exponentiated_gradient", "threshold_optimizer"
]


class Candidate(_Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=48)] = Field(
        description="the candidate's name in the evidence and the report"
    )
    method: MitigationMethod = Field(
        description="`reweighing` (AIF360), `disparate_impact_remover` (AIF360, "
        "`repair_level`; group-aware), `exponentiated_gradient` "
        "(fairlearn, `constraint`, `eps`, `max_iter`), "
        "`threshold_optimizer` (fairlearn, `constraint`, `objective`; "
        "group-aware)"
    )
    params: dict[str, Scalar] = Field(default_factory=dict, description="the method's parameters")


def _default_candidates() -> list[Candidate]:
    return [Candidate(name="reweighing", method="reweighing")]


class MitigationSearch(_Section):
    search: Literal["when_biased", "always"] = Field(
        "when_biased",
        description="`when_biased`: the search runs only when the bias check finds disparity "
        "(else the model is trained without mitigation); `always`",
    )
    candidates: list[Candidate] = Field(
        default_factory=_default_candidates,
        description="methods tried (each crossed with `estimators`); `none`, the unmitigated baseline, is always added",
    )
    estimators: list[Estimator] = Field(
        default_factory=list, description="estimators crossed with the candidates (default: `model.estimator` alone)"
    )
    selection: Literal["balanced_accuracy_within_bands", "closest_to_bands"] = Field(
        "balanced_accuracy_within_bands",
        description="rule applied on the validation split: the best balanced accuracy among candidates whose "
        "intervals lie inside every band (none inside: the closest, flagged), or the closest to "
        "the bands",
    )
    allow_group_aware_decisions: bool = Field(
        False,
        description="allow methods that use the protected attribute when deciding "
        "(`disparate_impact_remover`, `threshold_optimizer`); unlawful for many uses",
    )


class SqlSources(_Section):
    timeout_seconds: int = Field(
        600, ge=1, le=86_400, description="statement timeout of a `sql://` query: the database stops it after this"
    )
    max_rows: int = Field(
        10_000_000, ge=1, description="rows a `sql://` query may return; a query returning more is refused, not cut"
    )
    allow_privileged_role: bool = Field(
        False,
        description="read with a role that is a superuser or may read or write the server's files, run programs on "
        "it or end other sessions (refused by default: create a role that can only SELECT)",
    )


class AuditPolicy(_Section):
    window_days: int = Field(7, ge=1, description="days of predictions the nightly audit reads")
    label_lag_days: int = Field(3, ge=0, description="days until outcomes arrive")
    retention_days: int = Field(
        183,
        ge=1,
        description="days the prediction log keeps each scored day's decisions and reasons (EU AI Act Art. 19: "
        "at least six months); older days are removed by the audit's retention task, never one inside the "
        "audit window or with an open contest",
    )
    incoming: Name | None = Field(
        None,
        description="records to score: a folder of `date=YYYY-MM-DD` partitions "
        "(local or `s3://`) or `sql://<connection id>` with "
        "`incoming_query`; needed to score (bundled Adult: a simulated "
        "feed)",
    )
    incoming_query: Name | None = Field(
        None, description="SQL for a `sql://` feed, with the bound parameters `:interval_start` and `:interval_end`"
    )
    outcomes: Name | None = Field(
        None,
        description="where outcomes arrive when the feed does not carry the label: "
        "a folder (local or `s3://`) of `date=` partitions of the "
        "predictions' day, or `sql://<connection id>` with "
        "`outcomes_query`; each row the row key and the label",
    )
    outcomes_query: Name | None = Field(
        None,
        description="SQL for a `sql://` outcomes source, with the "
        "prediction day as `:interval_start` and `:interval_end`",
    )
    scenario: Scenario = Field("stable", description="simulated feed only")
    daily_rows: int = Field(600, ge=1, description="simulated feed only")
    alert_correction: Literal["none", "holm", "bh"] = Field(
        "holm",
        description="how the audit decides an alert over all comparisons × metrics of a night: `holm` "
        "(family-wise error at 1 - confidence level), `bh` (false discovery rate), or `none` (an estimate "
        "outside its bound alerts)",
    )
    psi_threshold: NonNegative = Field(0.25, description="per-feature PSI that counts as drift")
    group_mix_psi_threshold: NonNegative = Field(0.1, description="PSI of the group mix that counts as drift")
    min_drift_rows: int = Field(
        100, ge=1, description="decisions a window needs before its drift is judged (PSI of a handful is noise)"
    )
    log_table: Name | None = Field(
        None,
        description="`sql://<connection id>/<table>`: scoring (and the model server, for served decisions) "
        "also writes the prediction log there and the audit's fairness figures are "
        "one `GROUP BY` in that database",
    )
    outcomes_table: Name | None = Field(
        None, description="table of arrived outcomes beside `log_table` (default: `<table>_outcomes`)"
    )
    on_log_failure: Literal["refuse", "answer"] = Field(
        "refuse",
        description="a served decision that cannot be written to the prediction log: `refuse` answers the "
        "request with HTTP 503 (nothing decided goes unlogged), `answer` answers it and counts the loss, which "
        "the audit reports",
    )
    min_new_decisions: int = Field(
        1000,
        ge=1,
        description="served decisions that, once ingested since the last trigger, update the model's "
        "served-decisions asset, which starts an audit before the nightly one",
    )

    @model_validator(mode="after")
    def _log_table_is_a_connection_and_table(self) -> AuditPolicy:
        if self.log_table is not None:
            conn, _, table = self.log_table.removeprefix("sql://").partition("/")
            if not self.log_table.startswith("sql://") or not conn or not table or "/" in table:
                raise ValueError(f"'log_table' must be sql://<connection id>/<table>; got {self.log_table!r}")
        if self.outcomes_table is not None and self.log_table is None:
            raise ValueError("'outcomes_table' applies only with 'log_table'")
        return self


class Schedule(_Section):
    lifecycle: Name = Field("0 3 * * 1", description="cron of the retraining run (also on a retraining request)")
    score: Name = Field("0 1 * * *", description="cron of the daily scoring run")
    audit: Name = Field("0 3 * * *", description="cron of the nightly audit")
    ingest: Name = Field(
        "*/15 * * * *", description="cron of the ingestion of served decisions (compaction, reviews, audit trigger)"
    )

    @field_validator("lifecycle", "score", "audit", "ingest")
    @classmethod
    def _a_cron(cls, value: str, info: ValidationInfo) -> str:
        """A cron Airflow can run (five fields, each valid): else the DAG would never be scheduled."""
        from croniter import croniter  # type: ignore[import-untyped]  # croniter ships no type hints

        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise PolicyError(
                f"Policy key 'schedule.{info.field_name}' is {value!r}, which is not a cron expression of five "
                "fields (minute hour day-of-month month day-of-week), e.g. '0 3 * * 1'."
            )
        from datetime import UTC, datetime

        from croniter import CroniterBadDateError

        try:  # a valid cron can still name no day that exists ('0 0 31 2 *'): the DAG would never run
            croniter(value, datetime.now(UTC), max_years_between_matches=1).get_next(datetime)
        except CroniterBadDateError:
            raise PolicyError(
                f"Policy key 'schedule.{info.field_name}' is {value!r}, which never fires within a year (a day that "
                "does not exist, such as 31 February?); the DAG would never run."
            ) from None
        return value


class RobustnessChecks(_Section):
    enabled: bool = Field(
        False, description="measure and gate decision stability and counterfactual flips on the test split"
    )
    perturbation_scale: Annotated[float, Field(gt=0.0)] = Field(
        0.1, description="noise on each numeric input, as a share of its standard deviation"
    )
    repeats: int = Field(3, ge=1, le=50, description="noise draws per row; a row flips if any draw flips it")
    max_flip_rate: Fraction = Field(
        0.05, description="per protected group: share of decisions that may flip under the noise"
    )
    max_counterfactual_rate: Fraction = Field(
        0.02, description="per protected attribute: share of decisions that may change when the attribute is flipped"
    )
    flip_proxies: bool = Field(True, description="flip the inputs the proxy check flagged together with the attribute")


class Actionable(_Section):
    direction: Literal["increase", "decrease", "any"] = Field(
        "any", description="numbers: which way the input may move"
    )
    min: float | None = Field(None, description="numbers: the lowest value a change may reach")
    max: float | None = Field(None, description="numbers: the highest value a change may reach")
    step: Annotated[float, Field(gt=0.0)] | None = Field(
        None, description="numbers: changes in whole steps (1 for whole hours)"
    )
    values: list[Scalar] | None = Field(None, description="categories: the values a change may choose")


class RecoursePolicy(_Section):
    actionable: dict[str, Actionable] = Field(
        default_factory=dict,
        description="inputs a person can change (every other input is immutable; protected attributes always are)",
    )
    categorical_cost: Annotated[float, Field(gt=0.0)] = Field(
        1.0, description="cost of changing one category (a number costs its change in standard deviations)"
    )
    search_steps: int = Field(10, ge=2, le=100, description="values tried per number for non-linear models")
    audit_sample: int = Field(
        2000,
        ge=1,
        description="unfavourable decisions per nightly audit whose recourse is computed (a uniform sample above this)",
    )
    max_share_gap: Fraction | None = Field(
        None,
        description="audit: the largest difference between groups in the share of unfavourable decisions with recourse",
    )


class ReviewTriggers(_Section):
    score_margin: Fraction | None = Field(
        None, description="review a decision whose score is within this of the threshold"
    )
    protected_margin: Fraction | None = Field(None, description="a wider margin for members of an unprivileged group")
    outside_training: bool = Field(
        False, description="review a record with a number outside the training range or a category unseen in training"
    )
    daily_cap: int = Field(
        50, ge=0, description="at most this many decisions queued for review a day (the most borderline first)"
    )
    above_cap: Literal["decide", "hold"] = Field(
        "decide",
        description="beyond the cap: `decide` (the automatic "
        "decision stands, marked over_cap) or "
        "`hold` (queued too, marked over_cap)",
    )
    timeout_hours: NonNegative = Field(
        24.0, description="a review not answered in time: the automatic decision stands (recorded as timed out)"
    )


Answer = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] | None  # blank is no answer


class Sampling(_Section):
    max_rows: int = Field(
        100_000,
        ge=0,
        description="above this many rows, the proxy check, permutation "
        "importance and exponentiated gradient's fit use a "
        "stratified sample of this size (said in the evidence); "
        "0: never sample",
    )


class Datasheet(_Section):
    """The datasheet questions only the team can answer (Gebru et al.); an empty one shows as missing."""

    motivation: Answer = Field(None, description="why the dataset was created")
    creators: Answer = Field(None, description="who created it, for which entity, funded by whom")
    confidential_data: Answer = Field(
        None, description="confidential or sensitive data beyond the protected attributes"
    )
    collection_process: Answer = Field(None, description="how, when and by whom the data was collected")
    consent: Answer = Field(None, description="whether people were told and consented, and how to revoke")
    sampling: Answer = Field(None, description="whether and how the data is a sample")
    preprocessing: Answer = Field(
        None, description="what was done before the data reached the source; how labels were assigned"
    )
    intended_uses: Answer = Field(None, description="other tasks the data may serve")
    out_of_scope_uses: Answer = Field(None, description="uses to avoid")
    distribution: Answer = Field(None, description="who may receive it, under which terms")
    maintainer: Answer = Field(None, description="who maintains it and how to reach them")
    maintenance: Answer = Field(None, description="updates, error reports and corrections")


class ReviewPolicy(_Section):
    """Who must approve a promotion, and how many (the human review of the lifecycle)."""

    required: Literal["when_uncertain", "always"] = Field(
        "when_uncertain",
        description="`when_uncertain`: a person reviews when the fairness gate asks for review; "
        "`always`: every promotion needs a person's approval, a gate pass too (and an answered "
        "`impact_assessment` and `owners`)",
    )
    approvers: list[Name] = Field(
        default_factory=list,
        description="Airflow users (ids) who may answer the review; empty: any user allowed to reach the form",
    )
    quorum: int = Field(
        1,
        ge=1,
        le=5,
        description="approvals needed, each by a different person (one review task each); with 2 or more, "
        "an approval by the user who triggered the run does not count (separation of duties)",
    )
    separate_from_trigger: bool = Field(
        False, description="the user who triggered the run may not approve it (separation of duties)"
    )


class ImpactAssessment(_Section):
    """What deploying this model could do to people, answered by the team (required with `review.required: always`)."""

    affected_groups: Answer = Field(None, description="who could be adversely affected, and how")
    misuse: Answer = Field(None, description="how the system might be misused, and what prevents it")
    redress: Answer = Field(None, description="the plan for redress: how a person harmed is heard and made whole")
    severity: Literal["low", "medium", "high"] | None = Field(
        None, description="how severe the harm of a wrong decision can be"
    )
    mitigations: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="what is done to lower the risks named above"
    )


class Owners(_Section):
    """Who answers for the model once it is deployed (required with `review.required: always`)."""

    retraining: Answer = Field(None, description="who answers for retraining (a person or team, and how to reach them)")
    monitoring: Answer = Field(None, description="who watches the nightly audit and acts on a degraded one")
    complaints: Answer = Field(None, description="who handles complaints and contested decisions")


class Subgroups(_Section):
    """Subgroup discovery in the fairness gate and the nightly audit (fairgate.fairness.subgroups)."""

    enabled: bool = Field(True, description="search subgroups for the largest gaps against the rest")
    max_attributes: int = Field(2, ge=1, le=3, description="attributes defining a subgroup (one is protected)")
    min_size: int = Field(50, ge=10, description="rows a subgroup (and the rest) needs to be tested")
    fdr: Fraction = Field(0.05, description="false discovery rate over every subgroup test (Benjamini–Hochberg)")
    gate: Literal["off", "review", "fail"] = Field(
        "review",
        description="what a discovered subgroup of protected attributes alone (an intersection or value the "
        "comparisons do not name) whose gap lies outside the band `fairness.thresholds` sets for its metric makes "
        "of the gate; subgroups that also name a non-protected input are reported, never gated",
    )


class ShapleyValues(_Section):
    """Shapley values of the inputs in the run report (fairgate.models.shapley)."""

    enabled: bool = Field(
        True, description="measure each input's mean absolute Shapley value on the test split, overall and per group"
    )


class Incidents(_Section):
    """What opens an incident record, and which reporting clock it starts (EU AI Act Art. 73)."""

    open_on_degraded_audit: bool = Field(True, description="a degraded nightly audit opens an incident")
    max_overturn_rate: Fraction | None = Field(
        None, description="an incident opens when reviewers overturn more than this share of reviewed decisions"
    )
    clock: Literal["serious", "widespread", "death"] = Field(
        "serious",
        description="the reporting clock an incident starts: `serious` 15 days, `widespread` (a widespread "
        "infringement) 2 days, `death` 10 days",
    )


class ThresholdOverride(BaseModel):
    """A run's exception to the policy's gate thresholds, as the evidence records it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    overrides: dict[str, float]  # ``<metric>_min`` / ``<metric>_max`` → the value the run used
    policy_thresholds: dict[str, dict[str, Any]]  # the policy file's own thresholds, for comparison
    rationale: str
    requested_by: str | None  # the Airflow user who triggered the run (None: not known, e.g. airflow dags test)


class Policy(_Section):
    """One model's policy file, validated: every section typed, with its defaults (docs/policy.md)."""

    model_name: Annotated[str, Field(pattern=f"^{MODEL_NAME}$")] = Field(
        description="the model's name: registry and store namespace, and the suffix of its DAG ids"
    )
    dataset: Dataset
    protected_attributes: list[ProtectedAttribute] = Field(
        min_length=1, description="`column`, `privileged` and `allowed` values, or `privileged_if: {op, value}`"
    )
    intersections: list[Annotated[list[Name], Field(min_length=2)]] = Field(
        default_factory=list, description="attribute combinations measured cell by cell"
    )
    use_protected_as_features: bool = Field(False, description="let the model see protected columns")
    quality: QualityRules = QualityRules()
    bias: BiasCheck = BiasCheck()
    fairness: Fairness = Fairness()
    model: Model = Model()
    mitigation: MitigationSearch = MitigationSearch()
    audit: AuditPolicy = AuditPolicy()
    sql: SqlSources = SqlSources()
    schedule: Schedule = Schedule()
    robustness: RobustnessChecks = RobustnessChecks()
    recourse: RecoursePolicy = RecoursePolicy()
    review_triggers: ReviewTriggers = ReviewTriggers()
    sampling: Sampling = Sampling()
    datasheet: Datasheet = Datasheet()
    review: ReviewPolicy = ReviewPolicy()
    impact_assessment: ImpactAssessment = ImpactAssessment()
    owners: Owners = Owners()
    incidents: Incidents = Incidents()
    subgroups: Subgroups = Subgroups()
    shapley: ShapleyValues = ShapleyValues()

    # Where the policy was read from (set by fairgate.policy.loader.load_policy; not policy keys).
    _sha256: str = PrivateAttr("")
    _path: str = PrivateAttr("")
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)
    _text: bytes = PrivateAttr(b"")  # the file's bytes as read: what a run keeps and a release binds
    _override: ThresholdOverride | None = PrivateAttr(None)  # set by with_threshold_overrides

    @property
    def override(self) -> ThresholdOverride | None:
        """The run's threshold override (what changed, why, who asked), None when the policy's own apply."""
        return self._override

    @property
    def sha256(self) -> str:
        """sha256 of the policy file's bytes ("" for a policy built from a mapping)."""
        return self._sha256

    @property
    def path(self) -> str:
        return self._path

    @property
    def text(self) -> bytes:
        """The policy file's bytes as read (b"" for a policy built from a mapping)."""
        return self._text

    @property
    def raw(self) -> dict[str, Any]:
        """The mapping as read from YAML, before validation."""
        return self._raw

    @property
    def features(self) -> tuple[str, ...]:
        """The model's inputs: the declared features, plus the protected columns if the policy lets it see them."""
        cols = (*self.dataset.features.categorical, *self.dataset.features.numeric)
        if self.use_protected_as_features:
            cols += tuple(c for c in self.protected_columns if c not in cols)
        return cols

    @property
    def categorical(self) -> list[str]:
        return self.dataset.features.categorical

    @property
    def numeric(self) -> list[str]:
        return self.dataset.features.numeric

    @property
    def protected_columns(self) -> tuple[str, ...]:
        return tuple(p.column for p in self.protected_attributes)

    @property
    def promotion_needs_a_person(self) -> bool:
        """Whether a gate pass alone cannot deploy: ``review.required: always``, or this run overrides
        thresholds under ``fairness.overrides: reviewed`` (a second person approves the exception)."""
        return self.review.required == "always" or self.override_needs_a_second_person

    @property
    def override_needs_a_second_person(self) -> bool:
        return self._override is not None and self.fairness.overrides == "reviewed"

    def unanswered(self) -> list[str]:
        """The impact assessment's and owners' keys left unanswered (what blocks a promotion with
        ``review.required: always``)."""
        sections = {"impact_assessment": self.impact_assessment, "owners": self.owners}
        return [
            f"{name}.{key}" for name, section in sections.items() for key, value in section if value in (None, [], "")
        ]

    @property
    def reviews_before_harm(self) -> bool:
        """Whether any review trigger is set."""
        t = self.review_triggers
        return t.score_margin is not None or t.protected_margin is not None or t.outside_training

    def attribute(self, column: str) -> ProtectedAttribute:
        for p in self.protected_attributes:
            if p.column == column:
                return p
        raise KeyError(column)

    def with_threshold_overrides(
        self, overrides: dict[str, float], *, rationale: str | None = None, by: str | None = None
    ) -> Policy:
        """A copy with gate thresholds replaced, e.g. from a manual run's ``Param``s.

        Keys are ``<metric>_min`` / ``<metric>_max``; values must keep each threshold's kind. An
        override is an exception to the policy: refused when ``fairness.overrides`` is
        ``forbidden`` or without a ``rationale``; the copy's :attr:`override` says what changed,
        from what, why and at whose request (``by``: the user who triggered the run), for the
        evidence record, the manifest, the model card and the report.
        """
        if not overrides:
            return self
        if self.fairness.overrides == "forbidden":
            raise PolicyError(
                f"This run asks to override gate thresholds ({sorted(overrides)}), and policy key "
                "'fairness.overrides' is 'forbidden': change the policy file instead (it is versioned)."
            )
        if self.fairness.overrides == "reviewed":
            listed = {person(r) for r in self.fairness.override_requesters}
            if not person(by) or person(by) not in listed:
                raise PolicyError(
                    f"This run asks to override gate thresholds ({sorted(overrides)}) under 'fairness.overrides: "
                    f"reviewed', and its requester {by!r} is not among 'fairness.override_requesters' "
                    f"{self.fairness.override_requesters}: a second person can only be told apart from a requester "
                    "the policy names (a run triggered from a shell carries the OS account, a scheduled run none). "
                    "Trigger it as a listed Airflow user, in the UI or through the REST API."
                )
        why = (rationale or "").strip()
        if not why:
            raise PolicyError(
                f"This run overrides gate thresholds ({sorted(overrides)}) without a rationale: an override is an "
                "exception to the policy and is recorded with its reason. Give it as the run's "
                "'override_rationale' param, beside 'threshold_overrides'."
            )
        specs = dict(self.fairness.thresholds)
        before = {k: v.model_dump(exclude_none=True) for k, v in specs.items()}
        for key, value in overrides.items():
            metric, _, bound = key.rpartition("_")
            if metric not in specs or bound not in ("min", "max"):
                allowed = sorted(f"{m}_{b}" for m in specs for b in ("min", "max"))
                raise PolicyError(f"Policy key 'override {key}' must be one of {allowed}. Got {key!r} instead.")
            if bound == "min" and specs[metric].kind != "ratio_band":
                raise PolicyError(f"Override '{key}': {metric} is an abs_difference bound and has no min.")
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise PolicyError(f"Override '{key}' must be a finite number. Got {value!r}.")
            specs[metric] = specs[metric].model_copy(update={bound: float(value)})
        copy = self.model_copy(update={"fairness": self.fairness.model_copy(update={"thresholds": specs})})
        copy._sha256, copy._path, copy._raw, copy._text = self._sha256, self._path, self._raw, self._text
        copy._override = ThresholdOverride(
            overrides={k: float(v) for k, v in sorted(overrides.items())},
            policy_thresholds=before,
            rationale=why[:2000],
            requested_by=by,
        )
        return copy

    @model_validator(mode="before")
    @classmethod
    def _derived_defaults(cls, raw: Any) -> Any:
        """Defaults that follow from other keys, filled in before validation (so they are validated too)."""
        if not isinstance(raw, dict):
            return raw
        dataset, audit, model, mitigation = (raw.get(k) for k in ("dataset", "audit", "model", "mitigation"))
        audit = {} if audit is None else dict(audit) if isinstance(audit, dict) else audit
        if isinstance(audit, dict):
            source = dataset.get("source") if isinstance(dataset, dict) else None
            if (
                audit.get("incoming") is None
                and isinstance(source, str)
                and source.startswith("bundled://")
                and _named_columns(dataset) <= set(ADULT_COLUMNS)
            ):
                audit["incoming"] = SIMULATED_FEED  # the feed simulates Adult rows: only for Adult's columns
            table = audit.get("log_table")
            if audit.get("outcomes_table") is None and isinstance(table, str) and "/" in table:
                audit["outcomes_table"] = f"{table.rsplit('/', 1)[1]}_outcomes"
        out = {**raw, "audit": audit}
        if isinstance(mitigation, dict) and mitigation.get("estimators"):
            out["mitigation"] = {**mitigation, "estimators": list(dict.fromkeys(mitigation["estimators"]))}
        elif mitigation is None or isinstance(mitigation, dict):
            estimator = model.get("estimator", "logistic_regression") if isinstance(model, dict) else None
            if isinstance(estimator, str):
                out["mitigation"] = {**(mitigation or {}), "estimators": [estimator]}
        return out

    @model_validator(mode="after")
    def _keys_agree(self) -> Policy:
        """The rules that relate several keys; each raises :class:`PolicyError` naming them."""
        rules.check(self)
        return self


def validate(raw: Any) -> Policy:
    """``raw`` (as read from YAML) as a :class:`Policy`, or :class:`PolicyError` with every problem named."""
    _refuse_non_finite(raw, ())
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        for e in errors:  # a rule relating several keys already names them: raise it as written
            if isinstance(e.get("ctx", {}).get("error"), PolicyError):
                raise e["ctx"]["error"] from None
        raise PolicyError(" ".join(describe(e) for e in errors[:5])) from None


def _refuse_non_finite(value: Any, loc: tuple[int | str, ...]) -> None:
    """NaN and infinity are not settings: refused wherever they appear, naming the key."""
    if isinstance(value, float) and not math.isfinite(value):
        raise PolicyError(f"Policy key '{key_path(loc)}' is {value}: numbers in a policy must be finite.")
    if isinstance(value, dict):
        for k, v in value.items():
            _refuse_non_finite(v, (*loc, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_non_finite(v, (*loc, i))


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the mapping at ``loc`` (for 'did you mean')."""
    model: Any = Policy
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _section_type(field.annotation)
    return list(getattr(model, "model_fields", {}))


def _section_type(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, _Section):
        return annotation
    for arg in get_args(annotation):
        found = _section_type(arg)
        if found is not None:
            return found
    return None


def describe(error: Any) -> str:
    """One pydantic error as a sentence naming the policy key, e.g. for ``fairness.review_margn``."""
    loc = tuple(p for p in error["loc"] if p not in ("list[str]", "list[union[str,int,float,bool]]"))
    loc = tuple(
        p
        for p in loc
        if not (isinstance(p, str) and (p.startswith("function-") or p in ("str", "int", "float", "bool")))
    )
    kind, got = error["type"], error.get("input")
    if kind == "extra_forbidden":
        *parent, name = loc
        allowed = _fields_at(tuple(parent))
        near = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
        hint = f" Did you mean '{near[0]}'?" if near else ""
        return f"Policy key '{key_path(loc)}' is not a known key.{hint} Allowed here: {allowed}."
    if kind == "missing":
        return f"Policy key '{key_path(loc)}' is missing."
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", error.get("ctx", {}).get("expected", ""))
        if loc and loc[-1] == "[key]":
            *parent, name, _ = loc
            return f"Policy key '{key_path(tuple(parent))}' has unknown entries [{name!r}]; allowed: {allowed}."
        return f"Policy key '{key_path(loc)}' must be one of {allowed}. Got {got!r} instead."
    if kind == "value_error" and error["msg"].startswith("Value error, must be"):
        return f"Policy key '{key_path(loc)}' {error['msg'].removeprefix('Value error, ')}. Got {got!r} instead."
    if kind == "value_error":
        return f"Policy key '{key_path(loc) or '<root>'}': {error['msg'].removeprefix('Value error, ')}."
    expected = _EXPECTED.get(kind, error["msg"])
    expected = expected.format(**error.get("ctx", {}))
    return f"Policy key '{key_path(loc) or '<root>'}' must be {expected}. Got {got!r} instead."


_EXPECTED = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "string_too_short": "a non-empty string",
    "too_short": "a list of at least {min_length} item(s)",
    "greater_than_equal": "a number >= {ge}",
    "greater_than": "a number > {gt}",
    "less_than_equal": "a number <= {le}",
    "less_than": "a number < {lt}",
    "string_pattern_mismatch": "letters, digits, '-' or '_'",
    "string_too_long": "at most {max_length} characters",
}


def json_schema() -> dict[str, Any]:
    schema: dict[str, Any] = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Fairgate policy"
    return schema


def defaults_table() -> str:
    """The policy reference table (docs/policy.md): every key, what it means and its default, from the schema."""
    rows = ["| key | meaning | default |", "|---|---|---|"]

    def walk(model: Any, prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            sub = _section_type(field.annotation)
            if sub is not None and sub not in (RowFilter, ProtectedAttribute, Range, ThresholdSpec, Features):
                walk(sub, f"{key}.")
                continue
            if field.is_required():
                default = "required"
            else:
                value = field.get_default(call_default_factory=True)
                default = _show(value)
            rows.append(f"| `{key}` | {field.description or ''} | {default} |")

    walk(Policy, "")
    return "\n".join(rows)


def _show(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump()
    if isinstance(value, dict):
        value = {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in value.items()}
    if value is None or value == [] or value == {}:
        return "none"
    if isinstance(value, dict) and all(isinstance(v, dict) and "kind" in v for v in value.values()):
        parts = []
        for metric, t in value.items():
            parts.append(
                f"{metric} ∈ [{t['min']:g}, {t['max']:g}]"
                if t["kind"] == "ratio_band"
                else f"\\|{metric}\\| ≤ {t['max']:g}"
            )
        return "; ".join(parts)
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def _named_columns(dataset: Any) -> set[Any]:
    """The label and feature columns a raw ``dataset`` section names (before validation)."""
    if not isinstance(dataset, dict):
        return set()
    features = dataset.get("features")
    named = {dataset.get("label")}
    if isinstance(features, dict):
        for kind in ("categorical", "numeric"):
            if isinstance(features.get(kind), list):
                named.update(c for c in features[kind] if isinstance(c, str))
    return named
