"""Load and validate the policy file that drives every lifecycle stage.

Validation happens once, on load, and every error names the key path, what was expected and
what arrived, so a typo in ``policy.yaml`` stops a run before any data is read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from fairgate.data.adult import ADULT_COLUMNS, SIMULATED_FEED
from fairgate.errors import PolicyError
from fairgate.policy import schema as policy_schema
from fairgate.policy.catalog import single_policy_path
from fairgate.policy.estimators import classifier
from fairgate.policy.schema import GROUP_AWARE_METHODS, Scenario, check_params

ThresholdKind = Literal["ratio_band", "abs_difference"]
SCENARIOS: tuple[str, ...] = get_args(Scenario)  # the simulated feed's scenarios

MSG_MISSING = "Policy key '{key}' is missing; expected {expected}."
MSG_TYPE = "Policy key '{key}' must be {expected}. Got {got!r} instead."
MSG_CHOICE = "Policy key '{key}' must be one of {allowed}. Got {got!r} instead."
MSG_UNKNOWN = "Policy key '{key}' has unknown entries {unknown}; allowed: {allowed}."


@dataclass(frozen=True)
class Threshold:
    """One fairness bound. ``ratio_band``: min <= value <= max; ``abs_difference``: |value| <= max."""

    metric: str
    kind: ThresholdKind
    max: float
    min: float | None = None

    @property
    def band(self) -> tuple[float, float]:
        """The allowed interval, the one place it is computed: [min, max], or [-max, max] for a difference."""
        if self.kind == "ratio_band":
            return (self.min if self.min is not None else -self.max, self.max)  # load gives a ratio_band a min
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


@dataclass(frozen=True)
class ProtectedAttribute:
    """A protected column and how its privileged group is defined."""

    column: str
    privileged: tuple[Any, ...] = ()
    allowed: tuple[Any, ...] = ()
    op: str | None = None  # set for a continuous column split at ``value``
    value: float | None = None

    @property
    def is_threshold(self) -> bool:
        return self.op is not None


@dataclass(frozen=True)
class Policy:
    model_name: str
    source: str
    format: str
    partitioned: bool
    label: str
    favorable_label: Any
    row_key: str | None
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    protected: tuple[ProtectedAttribute, ...]
    intersections: tuple[tuple[str, ...], ...]
    use_protected_as_features: bool
    min_rows: int
    max_null_fraction: float
    max_duplicate_fraction: float
    ranges: dict[str, tuple[float | None, float | None]]
    allowed_values: dict[str, tuple[Any, ...]]
    bias_thresholds: tuple[Threshold, ...]
    fairness_thresholds: tuple[Threshold, ...]
    min_group_size: int
    min_positives: int
    confidence_level: float
    review_margin: float
    champion_tolerance: float
    min_balanced_accuracy: float
    review_timeout_hours: float
    estimator: str
    estimator_params: dict[str, Any]
    seed: int
    test_size: float
    validation_size: float
    decision_threshold: float
    audit_window_days: int
    audit_label_lag_days: int
    audit_incoming: str | None = SIMULATED_FEED
    audit_incoming_query: str | None = None
    audit_outcomes: str | None = None
    audit_outcomes_query: str | None = None
    audit_log_table: str | None = None
    audit_outcomes_table: str | None = None
    audit_scenario: str = "stable"
    audit_daily_rows: int = 600
    audit_psi_threshold: float = 0.25
    audit_group_mix_psi_threshold: float = 0.1
    proxy_auc_warning: float = 0.9
    sample_rows: int = 100_000
    feature_labels: dict[str, str] = field(default_factory=dict)
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    query: str | None = None
    filters: tuple[dict[str, Any], ...] = ()
    schedule: dict[str, str] = field(default_factory=dict)
    mitigation_search: str = "when_biased"
    mitigation_candidates: tuple[dict[str, Any], ...] = ({"name": "reweighing", "method": "reweighing", "params": {}},)
    mitigation_estimators: tuple[str, ...] = ()
    mitigation_selection: str = "balanced_accuracy_within_bands"
    allow_group_aware_decisions: bool = False
    datasheet: dict[str, str | None] = field(default_factory=dict)
    # The schema's own sections, typed: one set of defaults (the schema's).
    review_triggers: policy_schema.ReviewTriggers = field(default_factory=policy_schema.ReviewTriggers)
    robustness: policy_schema.Robustness = field(default_factory=policy_schema.Robustness)
    recourse: policy_schema.Recourse = field(default_factory=policy_schema.Recourse)
    sha256: str = ""
    path: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def features(self) -> tuple[str, ...]:
        cols = self.categorical + self.numeric
        if self.use_protected_as_features:
            cols += tuple(p.column for p in self.protected if p.column not in cols)
        return cols

    @property
    def reviews_before_harm(self) -> bool:
        """Whether any review trigger is set."""
        t = self.review_triggers
        return t.score_margin is not None or t.protected_margin is not None or t.outside_training

    @property
    def protected_columns(self) -> tuple[str, ...]:
        return tuple(p.column for p in self.protected)

    def attribute(self, column: str) -> ProtectedAttribute:
        for p in self.protected:
            if p.column == column:
                return p
        raise KeyError(column)

    def with_threshold_overrides(self, overrides: dict[str, float]) -> Policy:
        """Return a copy with gate thresholds replaced, e.g. from a manual run's ``Param``s.

        Keys are ``<metric>_min`` / ``<metric>_max``; values must keep each threshold's kind.
        """
        if not overrides:
            return self
        by_metric = {t.metric: t for t in self.fairness_thresholds}
        for key, value in overrides.items():
            metric, _, bound = key.rpartition("_")
            if metric not in by_metric or bound not in ("min", "max"):
                raise PolicyError(
                    MSG_CHOICE.format(
                        key=f"override {key}",
                        allowed=sorted(f"{m}_{b}" for m in by_metric for b in ("min", "max")),
                        got=key,
                    )
                )
            t = by_metric[metric]
            if bound == "min" and t.kind != "ratio_band":
                raise PolicyError(f"Override '{key}': {metric} is an abs_difference bound and has no min.")
            by_metric[metric] = Threshold(
                metric=metric,
                kind=t.kind,
                max=float(value) if bound == "max" else t.max,
                min=float(value) if bound == "min" else t.min,
            )
        thresholds = tuple(by_metric[t.metric] for t in self.fairness_thresholds)
        return _replace(self, fairness_thresholds=thresholds)


def _replace(policy: Policy, **changes: Any) -> Policy:
    from dataclasses import replace

    return replace(policy, **changes)


def policy_path() -> Path:
    """The policy file in force: ``FAIRGATE_POLICY`` or the bundled default."""
    return single_policy_path()


def load_policy(path: str | Path | None = None, *, check_estimator: bool = True) -> Policy:
    """Read, validate and return the policy at ``path`` (default: :func:`policy_path`).

    ``check_estimator=False`` leaves out building the estimator to check ``model.params``, which
    imports scikit-learn (about 0.8 s in a new process): for a task of a run whose first task
    checked the same file, and that fits nothing itself.
    """
    path = Path(path) if path else policy_path()
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(f"Policy file {path} does not exist (set FAIRGATE_POLICY to its path).") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"Policy file {path} is not valid YAML: {exc}") from None
    policy = parse_policy(raw, check_estimator=check_estimator)
    return _replace(policy, sha256=hashlib.sha256(text).hexdigest(), path=str(path), raw=raw)


def parse_policy(raw: Any, *, check_estimator: bool = True) -> Policy:
    """Validate a policy mapping (as read from YAML) and build a :class:`Policy`.

    The schema (types, ranges, unknown keys, defaults) is :mod:`fairgate.policy.schema`; the
    rules that relate several keys are checked here, each naming the keys involved.
    """
    try:
        doc = policy_schema.validate(raw)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None
    ds, fairness, model, audit = doc.dataset, doc.fairness, doc.model, doc.audit

    protected = tuple(_protected(item, f"protected_attributes[{i}]") for i, item in enumerate(doc.protected_attributes))
    columns = [p.column for p in protected]
    if len(set(columns)) != len(columns):
        raise PolicyError(f"Policy key 'protected_attributes' lists a column twice: {columns}.")
    for i, combo in enumerate(doc.intersections):
        unknown = sorted(set(combo) - set(columns))
        if unknown:
            raise PolicyError(MSG_UNKNOWN.format(key=f"intersections[{i}]", unknown=unknown, allowed=columns))
    categorical, numeric = tuple(ds.features.categorical), tuple(ds.features.numeric)
    if not categorical and not numeric:
        raise PolicyError(MSG_MISSING.format(key="dataset.features", expected="at least one feature column"))
    bundled = ds.source.startswith("bundled://")
    if audit.incoming and audit.incoming.startswith("simulated://"):
        wanted = [*categorical, *numeric, *columns, ds.label]
        foreign = [c for c in dict.fromkeys(wanted) if c not in ADULT_COLUMNS]
        if foreign:
            raise PolicyError(
                f"Policy key 'audit.incoming': {audit.incoming} simulates rows of the bundled Adult "
                f"data, which have no columns {foreign}; name the folder (local or s3://) or the "
                "sql:// connection this model's records arrive in."
            )
    if audit.outcomes and audit.outcomes.startswith("sql://") and not audit.outcomes_query:
        raise PolicyError("Policy key 'audit.outcomes_query' is missing: a sql:// outcomes source needs the query.")
    if audit.outcomes and not ds.row_key:
        raise PolicyError(
            "Policy key 'dataset.row_key' is required with 'audit.outcomes': outcomes are joined to predictions by it."
        )
    if audit.incoming and audit.incoming.startswith("sql://") and not audit.incoming_query:
        raise PolicyError("Policy key 'audit.incoming_query' is missing: a sql:// feed needs the query to run.")

    policy = Policy(
        model_name=doc.model_name,
        source=ds.source,
        format=ds.format,
        partitioned=ds.partitioned,
        query=ds.query,
        filters=tuple(f.model_dump() for f in ds.filters),
        label=ds.label,
        favorable_label=ds.favorable_label,
        row_key=ds.row_key,
        categorical=categorical,
        numeric=numeric,
        protected=protected,
        intersections=tuple(tuple(c) for c in doc.intersections),
        use_protected_as_features=doc.use_protected_as_features,
        min_rows=doc.quality.min_rows,
        max_null_fraction=doc.quality.max_null_fraction,
        max_duplicate_fraction=doc.quality.max_duplicate_fraction,
        ranges={col: (r.min, r.max) for col, r in doc.quality.ranges.items()},
        allowed_values={col: tuple(v) for col, v in doc.quality.allowed_values.items()},
        bias_thresholds=_thresholds("bias.thresholds", doc.bias.thresholds),
        fairness_thresholds=_thresholds("fairness.thresholds", fairness.thresholds),
        min_group_size=fairness.min_group_size,
        min_positives=fairness.min_positives,
        confidence_level=fairness.confidence_level,
        review_margin=fairness.review_margin,
        champion_tolerance=fairness.champion_tolerance,
        min_balanced_accuracy=fairness.min_balanced_accuracy,
        review_timeout_hours=fairness.review_timeout_hours,
        estimator=model.estimator,
        estimator_params=dict(model.params),
        seed=model.seed,
        test_size=model.test_size,
        validation_size=model.validation_size,
        decision_threshold=model.decision_threshold,
        audit_window_days=audit.window_days,
        audit_label_lag_days=audit.label_lag_days,
        audit_incoming=audit.incoming or (SIMULATED_FEED if bundled else None),
        audit_incoming_query=audit.incoming_query,
        audit_outcomes=audit.outcomes,
        audit_outcomes_query=audit.outcomes_query,
        audit_log_table=audit.log_table,
        audit_outcomes_table=audit.outcomes_table
        or (f"{audit.log_table.rsplit('/', 1)[1]}_outcomes" if audit.log_table else None),
        audit_scenario=audit.scenario,
        audit_daily_rows=audit.daily_rows,
        audit_psi_threshold=audit.psi_threshold,
        audit_group_mix_psi_threshold=audit.group_mix_psi_threshold,
        proxy_auc_warning=doc.bias.proxy_auc_warning,
        sample_rows=doc.sampling.max_rows,
        feature_labels=_labels(dict(ds.feature_labels), categorical + numeric),
        value_labels={col: dict(v) for col, v in ds.value_labels.items()},
        schedule=doc.schedule.model_dump(),
        mitigation_search=doc.mitigation.search,
        mitigation_candidates=tuple(c.model_dump() for c in doc.mitigation.candidates),
        mitigation_estimators=tuple(dict.fromkeys(doc.mitigation.estimators or [model.estimator])),
        mitigation_selection=doc.mitigation.selection,
        allow_group_aware_decisions=doc.mitigation.allow_group_aware_decisions,
        datasheet=doc.datasheet.model_dump(),
        robustness=doc.robustness,
        recourse=doc.recourse,
        review_triggers=doc.review_triggers,
    )
    if policy.test_size + policy.validation_size >= 0.9:
        raise PolicyError(
            "Policy keys 'model.test_size' + 'model.validation_size' must leave at least 10% "
            f"for training. Got {policy.test_size} + {policy.validation_size}."
        )
    if policy.label in columns or policy.label in policy.features:
        raise PolicyError(f"Policy key 'dataset.label' ({policy.label!r}) is also a feature or protected column.")
    overlap = sorted(set(policy.categorical) & set(policy.numeric))
    if overlap:
        raise PolicyError(f"Policy key 'dataset.features' lists {overlap} as both categorical and numeric.")
    if not policy.use_protected_as_features:
        leaked = sorted(set(columns) & set(policy.categorical + policy.numeric))
        if leaked:
            raise PolicyError(
                f"Policy key 'dataset.features' includes protected columns {leaked}; remove them or set "
                "'use_protected_as_features: true'."
            )
    named = set(policy.features) | set(columns) | {policy.label} | ({policy.row_key} if policy.row_key else set())
    for key, cols in (
        ("dataset.value_labels", policy.value_labels),
        ("quality.ranges", policy.ranges),
        ("quality.allowed_values", policy.allowed_values),
    ):
        unknown = sorted(set(cols) - named)
        if unknown:
            raise PolicyError(MSG_UNKNOWN.format(key=key, unknown=unknown, allowed=sorted(named)))
    if check_estimator:  # model.params now, not at train time
        classifier(policy.estimator, policy.estimator_params, policy.seed)
    _check_candidates(policy)
    _check_recourse(policy)
    for i, f in enumerate(policy.filters):
        if f["op"] not in ("==", "!=", "in", "not_in", "not_null") and not isinstance(f["value"], (int, float)):
            raise PolicyError(
                f"Policy key 'dataset.filters[{i}].value' must be a number for op {f['op']!r}. "
                f"Got {f['value']!r} instead."
            )
    return policy


def _check_candidates(policy: Policy) -> None:
    """Candidate names unique, parameters known to their method, group-aware methods only when allowed."""
    names = ["none"] + [c["name"] for c in policy.mitigation_candidates if c["method"] != "none"]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PolicyError(
            f"Policy key 'mitigation.candidates' uses the name(s) {twice} twice (`none` is the "
            "unmitigated baseline, always included)."
        )
    for i, c in enumerate(policy.mitigation_candidates):
        key = f"mitigation.candidates[{i}]"
        if c["method"] in GROUP_AWARE_METHODS and not policy.allow_group_aware_decisions:
            raise PolicyError(
                f"Policy key '{key}.method': {c['method']} uses the protected attribute(s) "
                f"{list(policy.protected_columns)} when it decides, which is unlawful for many "
                "uses; set 'mitigation.allow_group_aware_decisions: true' to allow it."
            )
        try:
            check_params(c["method"], c["params"], f"{key}.params")
        except ValueError as exc:
            raise PolicyError(str(exc)) from None


def _check_recourse(policy: Policy) -> None:
    """Actionable inputs are model features, never protected; each carries only the options of its kind."""
    for col, spec in policy.recourse.actionable.items():
        key = f"recourse.actionable.{col}"
        if col in policy.protected_columns:
            raise PolicyError(f"Policy key '{key}': {col!r} is a protected attribute, which is always immutable.")
        if col not in policy.features:
            raise PolicyError(
                MSG_UNKNOWN.format(key="recourse.actionable", unknown=[col], allowed=sorted(policy.features))
            )
        if col in policy.numeric:
            if spec.values is not None:
                raise PolicyError(
                    f"Policy key '{key}.values' applies to categories; {col!r} is a number (use "
                    "direction, min, max, step)."
                )
            if spec.min is not None and spec.max is not None and spec.min > spec.max:
                raise PolicyError(f"Policy key '{key}' has min {spec.min} above max {spec.max}.")
        else:
            numeric = [k for k in ("min", "max", "step") if getattr(spec, k) is not None] + (
                ["direction"] if spec.direction != "any" else []
            )
            if numeric:
                raise PolicyError(
                    f"Policy key '{key}' is a category: {numeric} apply to numbers; list the values "
                    "a change may choose in 'values'."
                )
            if not spec.values:
                raise PolicyError(f"Policy key '{key}.values' is missing: list the values a change may choose.")


def _labels(raw: dict[str, Any], features: tuple[str, ...]) -> dict[str, str]:
    unknown = sorted(set(raw) - set(features))
    if unknown:
        raise PolicyError(MSG_UNKNOWN.format(key="dataset.feature_labels", unknown=unknown, allowed=list(features)))
    for col, label in raw.items():
        if not isinstance(label, str) or not label.strip():
            raise PolicyError(
                MSG_TYPE.format(key=f"dataset.feature_labels.{col}", expected="a non-empty string", got=label)
            )
    return dict(raw)


def _protected(spec: Any, key: str) -> ProtectedAttribute:
    if spec.privileged_if is not None:
        if spec.allowed:
            raise PolicyError(f"Policy key '{key}.allowed' does not apply with 'privileged_if' (a numeric column).")
        return ProtectedAttribute(column=spec.column, op=spec.privileged_if.op, value=spec.privileged_if.value)
    privileged, allowed = tuple(spec.privileged), tuple(spec.allowed)
    if allowed:
        missing = [v for v in privileged if v not in allowed]
        if missing:
            raise PolicyError(
                f"Policy key '{key}.privileged' has values {missing} that are not in '{key}.allowed' {list(allowed)}."
            )
        if len(allowed) == len(privileged):
            raise PolicyError(f"Policy key '{key}.allowed' leaves no unprivileged value for column {spec.column!r}.")
    return ProtectedAttribute(column=spec.column, privileged=privileged, allowed=allowed)


def _thresholds(key: str, specs: Mapping[Any, Any]) -> tuple[Threshold, ...]:
    out = []
    for metric, t in specs.items():
        if t.kind == "ratio_band":
            if t.min is None:
                raise PolicyError(
                    MSG_MISSING.format(key=f"{key}.{metric}.min", expected="a number (the band's lower end)")
                )
            if t.min < 0:
                raise PolicyError(MSG_TYPE.format(key=f"{key}.{metric}.min", expected="a number >= 0", got=t.min))
            if t.min > t.max:
                raise PolicyError(f"Policy key '{key}.{metric}' has min {t.min} above max {t.max}.")
            out.append(Threshold(metric=metric, kind="ratio_band", min=t.min, max=t.max))
        else:
            if t.min is not None:
                raise PolicyError(
                    f"Policy key '{key}.{metric}.min' does not apply to kind 'abs_difference' "
                    "(it bounds |value| by 'max')."
                )
            out.append(Threshold(metric=metric, kind="abs_difference", max=t.max))
    return tuple(out)
