"""The policy file's schema: every key, its type, its range and its default, in one place.

pydantic models with ``extra="forbid"`` at every level and strict types, so a typo
(``min_row``), a singular (``intersection``), a wrong type (``"yes"`` for a boolean) or a value
out of range is refused at load, never silently defaulted. The defaults here are the only ones:
the README's policy table is generated from this module (``fairgate policy schema --markdown``)
and a test checks the two agree; ``fairgate policy schema`` prints the JSON Schema for editors.

Checks that relate several keys (an intersection names declared attributes, the label is not a
feature, ...) are in :func:`fairgate.policy.loader.parse_policy`, after this schema has passed.
"""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, model_validator

Estimator = Literal["logistic_regression", "hist_gradient_boosting", "random_forest"]
DataMetric = Literal["disparate_impact", "statistical_parity_difference"]
Metric = Literal[
    "disparate_impact",
    "statistical_parity_difference",
    "equal_opportunity_difference",
    "average_odds_difference",
    "false_positive_rate_difference",
    "false_negative_rate_difference",
]
Scenario = Literal["stable", "group_mix_shift", "label_shift", "proxy_drift"]
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


class ThresholdSpec(_Section):
    kind: Literal["ratio_band", "abs_difference"]
    min: float | None = None  # ratio_band only; checked with the kind in fairgate.policy.loader
    max: NonNegative


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


class Quality(_Section):
    min_rows: int = Field(1000, ge=1, description="fewest rows a snapshot may have")
    max_null_fraction: Fraction = Field(0.0, description="per feature, label and protected column")
    max_duplicate_fraction: Fraction = Field(0.05, description="whole-row duplicates")
    ranges: dict[str, Range] = Field(default_factory=dict, description="per-column `{min, max}`")
    allowed_values: dict[str, Annotated[list[Scalar], Field(min_length=1)]] = Field(
        default_factory=dict, description="per-column allowed sets"
    )


class Bias(_Section):
    thresholds: dict[DataMetric, ThresholdSpec] = Field(
        default_factory=_data_thresholds, min_length=1, description="data-stage bounds; outside → the mitigation search"
    )
    proxy_auc_warning: Fraction = Field(
        0.9, description="warn when one input predicts a protected attribute with this cross-validated ROC AUC"
    )


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
    review_timeout_hours: NonNegative = Field(24.0, description="human review deadline (then Reject)")


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


MitigationMethod = Literal[
    "none", "reweighing", "disparate_impact_remover", "exponentiated_gradient", "threshold_optimizer"
]
# Methods that use the protected attribute when deciding: the remover repairs inputs by group, the
# optimizer sets a threshold per group.
GROUP_AWARE_METHODS = ("disparate_impact_remover", "threshold_optimizer")


FAIRLEARN_CONSTRAINTS = ("demographic_parity", "equalized_odds", "true_positive_rate_parity")
THRESHOLD_OBJECTIVES = ("balanced_accuracy_score", "accuracy_score")
# Each method's parameters and their defaults; a parameter not listed is refused at load.
METHOD_PARAMS: dict[str, dict[str, Any]] = {
    "none": {},
    "reweighing": {},
    "disparate_impact_remover": {"repair_level": 1.0},
    "exponentiated_gradient": {"constraint": "demographic_parity", "eps": 0.01, "max_iter": 50},
    "threshold_optimizer": {"constraint": "demographic_parity", "objective": "balanced_accuracy_score"},
}


def check_params(method: str, params: dict[str, Any], key: str) -> dict[str, Any]:
    """``params`` with the method's defaults filled in; unknown names and bad values refused, naming ``key``."""
    allowed = METHOD_PARAMS[method]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"Policy key '{key}' has unknown parameter(s) {unknown} for {method}; allowed: {sorted(allowed) or 'none'}."
        )
    out = {**allowed, **params}
    if "repair_level" in params and not (
        isinstance(out["repair_level"], (int, float)) and 0.0 <= out["repair_level"] <= 1.0
    ):
        raise ValueError(
            f"Policy key '{key}.repair_level' must be a number between 0 and 1. Got {out['repair_level']!r}."
        )
    if "constraint" in params and out["constraint"] not in FAIRLEARN_CONSTRAINTS:
        raise ValueError(
            f"Policy key '{key}.constraint' must be one of {list(FAIRLEARN_CONSTRAINTS)}. Got {out['constraint']!r}."
        )
    if "objective" in params and out["objective"] not in THRESHOLD_OBJECTIVES:
        raise ValueError(
            f"Policy key '{key}.objective' must be one of {list(THRESHOLD_OBJECTIVES)}. Got {out['objective']!r}."
        )
    if "eps" in params and not (isinstance(out["eps"], (int, float)) and out["eps"] > 0):
        raise ValueError(f"Policy key '{key}.eps' must be a positive number. Got {out['eps']!r}.")
    if "max_iter" in params and not (isinstance(out["max_iter"], int) and out["max_iter"] >= 1):
        raise ValueError(f"Policy key '{key}.max_iter' must be a positive integer. Got {out['max_iter']!r}.")
    return out


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


class Mitigation(_Section):
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


class Audit(_Section):
    window_days: int = Field(7, ge=1, description="days of predictions the nightly audit reads")
    label_lag_days: int = Field(3, ge=0, description="days until outcomes arrive")
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
    psi_threshold: NonNegative = Field(0.25, description="per-feature PSI that counts as drift")
    group_mix_psi_threshold: NonNegative = Field(0.1, description="PSI of the group mix that counts as drift")
    log_table: Name | None = Field(
        None,
        description="`sql://<connection id>/<table>`: scoring also writes the "
        "prediction log there and the audit's fairness figures are "
        "one `GROUP BY` in that database",
    )
    outcomes_table: Name | None = Field(
        None, description="table of arrived outcomes beside `log_table` (default: `<table>_outcomes`)"
    )

    @model_validator(mode="after")
    def _log_table_is_a_connection_and_table(self) -> Audit:
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


class Robustness(_Section):
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


class Recourse(_Section):
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


Answer = Annotated[str, Field(min_length=1)] | None


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


class PolicyFile(_Section):
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
    quality: Quality = Quality()
    bias: Bias = Bias()
    fairness: Fairness = Fairness()
    model: Model = Model()
    mitigation: Mitigation = Mitigation()
    audit: Audit = Audit()
    schedule: Schedule = Schedule()
    robustness: Robustness = Robustness()
    recourse: Recourse = Recourse()
    review_triggers: ReviewTriggers = ReviewTriggers()
    sampling: Sampling = Sampling()
    datasheet: Datasheet = Datasheet()


def validate(raw: Any) -> PolicyFile:
    """``raw`` (as read from YAML) as a :class:`PolicyFile`, or ``ValueError`` with every problem named."""
    try:
        return PolicyFile.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(" ".join(describe(e) for e in exc.errors()[:5])) from None


def key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the mapping at ``loc`` (for 'did you mean')."""
    model: Any = PolicyFile
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _section_type(field.annotation)
    return list(getattr(model, "model_fields", {}))


def _section_type(annotation: Any) -> Any:
    from typing import get_args

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
    schema: dict[str, Any] = PolicyFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Fairgate policy"
    return schema


def defaults_table() -> str:
    """The README's policy table: every key, what it means and its default, from the schema."""
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

    walk(PolicyFile, "")
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
