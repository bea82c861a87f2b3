"""Load and validate the policy file that drives every lifecycle stage.

Validation happens once, on load, and every error names the key path, what was expected and
what arrived, so a typo in ``policy.yaml`` stops a run before any data is read.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from fairgate.errors import InputError

# The bundled policy: include/config/policy.yaml in a checkout, package data in a wheel.
DEFAULT_POLICY_PATH = Path(str(resources.files("fairgate.config").joinpath("policy.yaml")))

ThresholdKind = Literal["ratio_band", "abs_difference"]
THRESHOLD_KINDS = ("ratio_band", "abs_difference")
ESTIMATORS = ("logistic_regression", "hist_gradient_boosting", "random_forest")
FORMATS = ("csv", "parquet")
COMPARISONS = (">=", ">", "<=", "<")
SCENARIOS = ("stable", "group_mix_shift", "label_shift", "proxy_drift")
# Every metric the gate and the bias check know how to compute.
METRICS = (
    "disparate_impact",
    "statistical_parity_difference",
    "equal_opportunity_difference",
    "average_odds_difference",
    "false_positive_rate_difference",
    "false_negative_rate_difference",
)
DATA_METRICS = ("disparate_impact", "statistical_parity_difference")

MSG_MISSING = "Policy key '{key}' is missing; expected {expected}."
MSG_TYPE = "Policy key '{key}' must be {expected}. Got {got!r} instead."
MSG_CHOICE = "Policy key '{key}' must be one of {allowed}. Got {got!r} instead."
MSG_UNKNOWN = "Policy key '{key}' has unknown entries {unknown}; allowed: {allowed}."


class PolicyError(InputError):
    """The policy file is missing, unreadable or does not match the schema."""


@dataclass(frozen=True)
class Threshold:
    """One fairness bound. ``ratio_band``: min <= value <= max; ``abs_difference``: |value| <= max."""

    metric: str
    kind: ThresholdKind
    max: float
    min: float | None = None

    def contains(self, value: float) -> bool:
        if self.kind == "ratio_band":
            return self.min <= value <= self.max  # type: ignore[operator]  # a ratio_band always has a min (load checks)
        return abs(value) <= self.max

    def distance_inside(self, value: float) -> float:
        """How far ``value`` lies inside the bound, from the nearest edge (0 outside)."""
        if not self.contains(value):
            return 0.0
        if self.kind == "ratio_band":
            return min(value - self.min, self.max - value)  # type: ignore[operator]  # as above
        return self.max - abs(value)

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
    audit_incoming: str = "simulated://adult-test"
    audit_scenario: str = "stable"
    audit_daily_rows: int = 600
    audit_psi_threshold: float = 0.25
    audit_group_mix_psi_threshold: float = 0.1
    proxy_auc_warning: float = 0.9
    feature_labels: dict[str, str] = field(default_factory=dict)
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
    return Path(os.environ.get("FAIRGATE_POLICY") or DEFAULT_POLICY_PATH)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read, validate and return the policy at ``path`` (default: :func:`policy_path`)."""
    path = Path(path) if path else policy_path()
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(f"Policy file {path} does not exist (set FAIRGATE_POLICY to its path).") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"Policy file {path} is not valid YAML: {exc}") from None
    policy = parse_policy(raw)
    return _replace(policy, sha256=hashlib.sha256(text).hexdigest(), path=str(path), raw=raw)


def parse_policy(raw: Any) -> Policy:
    """Validate a policy mapping (as read from YAML) and build a :class:`Policy`."""
    root = _Section(raw, "")
    ds = root.section("dataset")
    features = ds.section("features")
    quality = root.section("quality", optional=True)
    bias = root.section("bias")
    fairness = root.section("fairness")
    model = root.section("model")
    audit = root.section("audit", optional=True)

    protected = tuple(_protected(item, f"protected_attributes[{i}]")
                      for i, item in enumerate(root.list("protected_attributes", min_len=1)))
    columns = [p.column for p in protected]
    if len(set(columns)) != len(columns):
        raise PolicyError(f"Policy key 'protected_attributes' lists a column twice: {columns}.")

    intersections = []
    for i, combo in enumerate(root.list("intersections", optional=True)):
        key = f"intersections[{i}]"
        if not isinstance(combo, list) or len(combo) < 2:
            raise PolicyError(MSG_TYPE.format(key=key, expected="a list of two or more protected columns",
                                              got=combo))
        unknown = sorted(set(combo) - set(columns))
        if unknown:
            raise PolicyError(MSG_UNKNOWN.format(key=key, unknown=unknown, allowed=columns))
        intersections.append(tuple(combo))

    fmt = ds.choice("format", FORMATS, default="csv")
    categorical = tuple(features.list("categorical", optional=True, item=str))
    numeric = tuple(features.list("numeric", optional=True, item=str))
    if not categorical and not numeric:
        raise PolicyError(MSG_MISSING.format(key="dataset.features", expected="at least one feature column"))

    ranges: dict[str, tuple[float | None, float | None]] = {}
    for col, bounds in quality.mapping("ranges").items():
        sec = _Section(bounds, f"quality.ranges.{col}")
        ranges[col] = (sec.number("min", optional=True), sec.number("max", optional=True))
    allowed_values = {col: tuple(_as_list(f"quality.allowed_values.{col}", vals, min_len=1))
                      for col, vals in quality.mapping("allowed_values").items()}

    policy = Policy(
        model_name=root.string("model_name", pattern_safe=True),
        source=ds.string("source"),
        format=fmt,
        partitioned=ds.boolean("partitioned", default=False),
        label=ds.string("label"),
        favorable_label=ds.scalar("favorable_label"),
        row_key=ds.string("row_key", optional=True),
        categorical=categorical,
        numeric=numeric,
        protected=protected,
        intersections=tuple(intersections),
        use_protected_as_features=root.boolean("use_protected_as_features", default=False),
        min_rows=quality.integer("min_rows", default=1, minimum=1),
        max_null_fraction=quality.fraction("max_null_fraction", default=0.0),
        max_duplicate_fraction=quality.fraction("max_duplicate_fraction", default=1.0),
        ranges=ranges,
        allowed_values=allowed_values,
        bias_thresholds=_thresholds(bias.section("thresholds"), DATA_METRICS),
        fairness_thresholds=_thresholds(fairness.section("thresholds"), METRICS),
        min_group_size=fairness.integer("min_group_size", minimum=1),
        min_positives=fairness.integer("min_positives", minimum=1),
        confidence_level=fairness.fraction("confidence_level", default=0.95, open_interval=True),
        review_margin=fairness.number("review_margin", default=0.0, minimum=0.0),
        champion_tolerance=fairness.number("champion_tolerance", default=0.02, minimum=0.0),
        min_balanced_accuracy=fairness.fraction("min_balanced_accuracy", default=0.5),
        review_timeout_hours=fairness.number("review_timeout_hours", default=24.0, minimum=0.0),
        estimator=model.choice("estimator", ESTIMATORS),
        estimator_params=model.mapping("params"),
        seed=model.integer("seed", default=0, minimum=0),
        test_size=model.fraction("test_size", default=0.2, open_interval=True),
        validation_size=model.fraction("validation_size", default=0.1, open_interval=True),
        decision_threshold=model.fraction("decision_threshold", default=0.5, open_interval=True),
        audit_window_days=audit.integer("window_days", default=7, minimum=1),
        audit_label_lag_days=audit.integer("label_lag_days", default=0, minimum=0),
        audit_incoming=audit.string("incoming", optional=True) or "simulated://adult-test",
        audit_scenario=audit.choice("scenario", SCENARIOS, default="stable"),
        audit_daily_rows=audit.integer("daily_rows", default=600, minimum=1),
        audit_psi_threshold=audit.number("psi_threshold", default=0.25, minimum=0.0),
        audit_group_mix_psi_threshold=audit.number("group_mix_psi_threshold", default=0.1, minimum=0.0),
        proxy_auc_warning=bias.fraction("proxy_auc_warning", default=0.9),
        feature_labels=_labels(ds.mapping("feature_labels"), categorical + numeric),
    )
    if policy.test_size + policy.validation_size >= 0.9:
        raise PolicyError("Policy keys 'model.test_size' + 'model.validation_size' must leave at least 10% "
                          f"for training. Got {policy.test_size} + {policy.validation_size}.")
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
    return policy


def _labels(raw: dict[str, Any], features: tuple[str, ...]) -> dict[str, str]:
    unknown = sorted(set(raw) - set(features))
    if unknown:
        raise PolicyError(MSG_UNKNOWN.format(key="dataset.feature_labels", unknown=unknown, allowed=list(features)))
    for col, label in raw.items():
        if not isinstance(label, str) or not label.strip():
            raise PolicyError(MSG_TYPE.format(key=f"dataset.feature_labels.{col}", expected="a non-empty string",
                                              got=label))
    return dict(raw)


def _protected(raw: Any, key: str) -> ProtectedAttribute:
    sec = _Section(raw, key)
    column = sec.string("column")
    if "privileged_if" in sec.raw:
        cond = sec.section("privileged_if")
        return ProtectedAttribute(column=column, op=cond.choice("op", COMPARISONS), value=cond.number("value"))
    privileged = tuple(sec.list("privileged", min_len=1))
    allowed = tuple(sec.list("allowed", optional=True))
    if allowed:
        missing = [v for v in privileged if v not in allowed]
        if missing:
            raise PolicyError(f"Policy key '{key}.privileged' has values {missing} that are not in "
                              f"'{key}.allowed' {list(allowed)}.")
        if len(allowed) == len(privileged):
            raise PolicyError(f"Policy key '{key}.allowed' leaves no unprivileged value for column {column!r}.")
    return ProtectedAttribute(column=column, privileged=privileged, allowed=allowed)


def _thresholds(sec: _Section, known: tuple[str, ...]) -> tuple[Threshold, ...]:
    unknown = sorted(set(sec.raw) - set(known))
    if unknown:
        raise PolicyError(MSG_UNKNOWN.format(key=sec.key, unknown=unknown, allowed=list(known)))
    if not sec.raw:
        raise PolicyError(MSG_MISSING.format(key=sec.key, expected=f"at least one of {list(known)}"))
    out = []
    for metric in sec.raw:
        t = sec.section(metric)
        kind: ThresholdKind = "ratio_band" if t.choice("kind", THRESHOLD_KINDS) == "ratio_band" else "abs_difference"
        if kind == "ratio_band":
            lo, hi = t.number("min", minimum=0.0), t.number("max", minimum=0.0)
            if lo > hi:
                raise PolicyError(f"Policy key '{t.key}' has min {lo} above max {hi}.")
            out.append(Threshold(metric=metric, kind=kind, min=lo, max=hi))
        else:
            if "min" in t.raw:
                raise PolicyError(f"Policy key '{t.key}.min' does not apply to kind 'abs_difference' "
                                  "(it bounds |value| by 'max').")
            out.append(Threshold(metric=metric, kind=kind, max=t.number("max", minimum=0.0)))
    return tuple(out)


class _Section:
    """Typed accessors over one mapping of the YAML, each naming its full key on error."""

    def __init__(self, raw: Any, key: str):
        if not isinstance(raw, dict):
            raise PolicyError(MSG_TYPE.format(key=key or "<root>", expected="a mapping", got=raw))
        self.raw = raw
        self.key = key

    def _k(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def _get(self, name: str, expected: str, optional: bool, default: Any = None) -> Any:
        if name not in self.raw or self.raw[name] is None:
            if optional or default is not None:
                return default
            raise PolicyError(MSG_MISSING.format(key=self._k(name), expected=expected))
        return self.raw[name]

    def section(self, name: str, optional: bool = False) -> _Section:
        value = self._get(name, "a mapping", optional)
        return _Section({} if value is None else value, self._k(name))

    def mapping(self, name: str) -> dict[str, Any]:
        value = self._get(name, "a mapping", optional=True)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise PolicyError(MSG_TYPE.format(key=self._k(name), expected="a mapping", got=value))
        return dict(value)

    def string(self, name: str, optional: bool = False, pattern_safe: bool = False) -> str:
        value = self._get(name, "a string", optional)
        if value is None:
            return None  # type: ignore[return-value]  # only when the caller asked for optional=True
        if not isinstance(value, str) or not value:
            raise PolicyError(MSG_TYPE.format(key=self._k(name), expected="a non-empty string", got=value))
        if pattern_safe and not all(c.isalnum() or c in "-_" for c in value):
            raise PolicyError(MSG_TYPE.format(key=self._k(name), expected="letters, digits, '-' or '_'",
                                              got=value))
        return value

    def scalar(self, name: str) -> Any:
        value = self._get(name, "a string or number", optional=False)
        if isinstance(value, (dict, list)):
            raise PolicyError(MSG_TYPE.format(key=self._k(name), expected="a string or number", got=value))
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        value = self._get(name, f"one of {list(allowed)}", optional=False, default=default)
        if value not in allowed:
            raise PolicyError(MSG_CHOICE.format(key=self._k(name), allowed=list(allowed), got=value))
        return str(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw.get(name, default)
        if not isinstance(value, bool):
            raise PolicyError(MSG_TYPE.format(key=self._k(name), expected="true or false", got=value))
        return value

    def number(self, name: str, optional: bool = False, default: float | None = None,
               minimum: float | None = None) -> float:
        value = self._get(name, "a number", optional, default)
        if value is None:
            return None  # type: ignore[return-value]  # only when the caller asked for optional=True
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PolicyError(MSG_TYPE.format(key=self._k(name), expected="a number", got=value))
        if minimum is not None and value < minimum:
            raise PolicyError(MSG_TYPE.format(key=self._k(name), expected=f"a number >= {minimum}", got=value))
        return float(value)

    def integer(self, name: str, default: int | None = None, minimum: int | None = None) -> int:
        value = self._get(name, "an integer", optional=False, default=default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyError(MSG_TYPE.format(key=self._k(name), expected="an integer", got=value))
        if minimum is not None and value < minimum:
            raise PolicyError(MSG_TYPE.format(key=self._k(name), expected=f"an integer >= {minimum}", got=value))
        return value

    def fraction(self, name: str, default: float | None = None, open_interval: bool = False) -> float:
        value = self.number(name, default=default)
        ok = 0 < value < 1 if open_interval else 0 <= value <= 1
        if not ok:
            expected = "a number strictly between 0 and 1" if open_interval else "a number between 0 and 1"
            raise PolicyError(MSG_TYPE.format(key=self._k(name), expected=expected, got=value))
        return value

    def list(self, name: str, optional: bool = False, min_len: int = 0, item: type | None = None) -> list[Any]:
        value = self._get(name, "a list", optional)
        if value is None:
            return []
        return _as_list(self._k(name), value, min_len=min_len, item=item)


def _as_list(key: str, value: Any, min_len: int = 0, item: type | None = None) -> list[Any]:
    if not isinstance(value, list) or len(value) < min_len:
        expected = f"a list of at least {min_len} item(s)" if min_len else "a list"
        raise PolicyError(MSG_TYPE.format(key=key, expected=expected, got=value))
    if item is not None:
        for i, v in enumerate(value):
            if not isinstance(v, item):
                raise PolicyError(MSG_TYPE.format(key=f"{key}[{i}]", expected=f"a {item.__name__}", got=v))
    return value
