"""The policy rules that relate several keys, checked once when a policy is validated.

Each rule raises :class:`~fairgate.errors.PolicyError` naming the keys involved, e.g. "Policy key
'intersections[0]' has unknown entries ['race']". The schema (:mod:`fairgate.policy.schema`) calls
:func:`check` from its ``after`` validator, so no :class:`~fairgate.policy.schema.Policy` exists that
breaks one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fairgate.errors import PolicyError
from fairgate.policy.bundled import ADULT_COLUMNS

if TYPE_CHECKING:
    from fairgate.policy.schema import Policy, ProtectedAttribute, ThresholdSpec

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


MSG_MISSING = "Policy key '{key}' is missing; expected {expected}."
MSG_TYPE = "Policy key '{key}' must be {expected}. Got {got!r} instead."
MSG_UNKNOWN = "Policy key '{key}' has unknown entries {unknown}; allowed: {allowed}."


def check(policy: Policy) -> None:
    """Every rule below, in the order a reader of the policy file meets the keys."""
    _check_protected(policy)
    _check_thresholds("bias.thresholds", policy.bias.thresholds)
    _check_thresholds("fairness.thresholds", policy.fairness.thresholds)
    _check_feeds(policy)
    _check_columns(policy)
    _check_candidates(policy)
    _check_recourse(policy)
    _check_governance(policy)


def _check_governance(policy: Policy) -> None:
    """Review and retention settings that could not do what they say."""
    review, audit = policy.review, policy.audit
    distinct = {" ".join(a.split()).casefold() for a in review.approvers}
    if review.approvers and len(distinct) < review.quorum:
        raise PolicyError(
            f"Policy key 'review.quorum' is {review.quorum}, but 'review.approvers' names {len(distinct)} "
            f"different people {review.approvers}: the quorum could never be reached."
        )
    kept = audit.window_days + audit.label_lag_days
    if audit.retention_days < kept:
        raise PolicyError(
            f"Policy key 'audit.retention_days' is {audit.retention_days}, shorter than the audit window and its "
            f"label lag ({audit.window_days} + {audit.label_lag_days} = {kept} days), which are always kept: set at "
            f"least {kept} (EU AI Act Art. 19 asks for at least six months, 183 days)."
        )


def _check_protected(policy: Policy) -> None:
    for i, attr in enumerate(policy.protected_attributes):
        _check_attribute(attr, f"protected_attributes[{i}]")
    columns = list(policy.protected_columns)
    if len(set(columns)) != len(columns):
        raise PolicyError(f"Policy key 'protected_attributes' lists a column twice: {columns}.")
    for i, combo in enumerate(policy.intersections):
        unknown = sorted(set(combo) - set(columns))
        if unknown:
            raise PolicyError(MSG_UNKNOWN.format(key=f"intersections[{i}]", unknown=unknown, allowed=columns))


def _check_attribute(attr: ProtectedAttribute, key: str) -> None:
    if attr.privileged_if is not None:
        if attr.allowed:
            raise PolicyError(f"Policy key '{key}.allowed' does not apply with 'privileged_if' (a numeric column).")
        return
    privileged, allowed = attr.privileged_values, attr.allowed
    if allowed:
        missing = [v for v in privileged if v not in allowed]
        if missing:
            raise PolicyError(
                f"Policy key '{key}.privileged' has values {missing} that are not in '{key}.allowed' {list(allowed)}."
            )
        if len(allowed) == len(privileged):
            raise PolicyError(f"Policy key '{key}.allowed' leaves no unprivileged value for column {attr.column!r}.")


def _check_thresholds(key: str, specs: Mapping[Any, ThresholdSpec]) -> None:
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
        elif t.min is not None:
            raise PolicyError(
                f"Policy key '{key}.{metric}.min' does not apply to kind 'abs_difference' (it bounds |value| by 'max')."
            )


def _check_feeds(policy: Policy) -> None:
    """The audit's sources: a simulated feed only for Adult's columns, a query for every sql:// source."""
    ds, audit = policy.dataset, policy.audit
    if audit.incoming and audit.incoming.startswith("simulated://"):
        wanted = [*policy.categorical, *policy.numeric, *policy.protected_columns, ds.label]
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
    if audit.incoming and not ds.row_key:
        raise PolicyError(
            "Policy key 'dataset.row_key' is required with 'audit.incoming': each scored record is logged, "
            "contested and joined to its outcome by it. Name a column that identifies a record."
        )
    if audit.incoming and audit.incoming.startswith("sql://") and not audit.incoming_query:
        raise PolicyError("Policy key 'audit.incoming_query' is missing: a sql:// feed needs the query to run.")


def _check_columns(policy: Policy) -> None:
    """Label, features and protected columns are distinct; per-column keys name known columns."""
    ds, model = policy.dataset, policy.model
    columns = policy.protected_columns
    if not policy.categorical and not policy.numeric:
        raise PolicyError(MSG_MISSING.format(key="dataset.features", expected="at least one feature column"))
    if model.test_size + model.validation_size >= 0.9:
        raise PolicyError(
            "Policy keys 'model.test_size' + 'model.validation_size' must leave at least 10% "
            f"for training. Got {model.test_size} + {model.validation_size}."
        )
    if ds.label in columns or ds.label in policy.features:
        raise PolicyError(f"Policy key 'dataset.label' ({ds.label!r}) is also a feature or protected column.")
    if ds.row_key is not None and (ds.row_key == ds.label or ds.row_key in columns or ds.row_key in policy.features):
        raise PolicyError(
            f"Policy key 'dataset.row_key' ({ds.row_key!r}) is also the label, a feature or a protected column; "
            "the row key identifies a record and is never an input or an outcome."
        )
    overlap = sorted(set(policy.categorical) & set(policy.numeric))
    if overlap:
        raise PolicyError(f"Policy key 'dataset.features' lists {overlap} as both categorical and numeric.")
    declared = (*policy.categorical, *policy.numeric)
    if not policy.use_protected_as_features:
        leaked = sorted(set(columns) & set(declared))
        if leaked:
            raise PolicyError(
                f"Policy key 'dataset.features' includes protected columns {leaked}; remove them or set "
                "'use_protected_as_features: true'."
            )
    unknown = sorted(set(ds.feature_labels) - set(declared))
    if unknown:
        raise PolicyError(MSG_UNKNOWN.format(key="dataset.feature_labels", unknown=unknown, allowed=list(declared)))
    named = set(policy.features) | set(columns) | {ds.label} | ({ds.row_key} if ds.row_key else set())
    for key, cols in (
        ("dataset.value_labels", ds.value_labels),
        ("quality.ranges", policy.quality.ranges),
        ("quality.allowed_values", policy.quality.allowed_values),
    ):
        unknown = sorted(set(cols) - named)
        if unknown:
            raise PolicyError(MSG_UNKNOWN.format(key=key, unknown=unknown, allowed=sorted(named)))
    for i, f in enumerate(ds.filters):
        if f.op not in ("==", "!=", "in", "not_in", "not_null") and not isinstance(f.value, (int, float)):
            raise PolicyError(
                f"Policy key 'dataset.filters[{i}].value' must be a number for op {f.op!r}. Got {f.value!r} instead."
            )


def _check_candidates(policy: Policy) -> None:
    """Candidate names unique, parameters known to their method, group-aware methods only when allowed."""
    candidates = policy.mitigation.candidates
    names = ["none"] + [c.name for c in candidates if c.method != "none"]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PolicyError(
            f"Policy key 'mitigation.candidates' uses the name(s) {twice} twice (`none` is the "
            "unmitigated baseline, always included)."
        )
    for i, c in enumerate(candidates):
        key = f"mitigation.candidates[{i}]"
        if c.method in GROUP_AWARE_METHODS and not policy.mitigation.allow_group_aware_decisions:
            raise PolicyError(
                f"Policy key '{key}.method': {c.method} uses the protected attribute(s) "
                f"{list(policy.protected_columns)} when it decides, which is unlawful for many "
                "uses; set 'mitigation.allow_group_aware_decisions: true' to allow it."
            )
        try:
            check_params(c.method, dict(c.params), f"{key}.params")
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
