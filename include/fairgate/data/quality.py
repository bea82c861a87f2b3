"""Data quality: a Great Expectations suite generated from the policy, plus group-size checks.

The suite is built from the policy on every run (no stored suite can drift from it) and run on
an ephemeral GX context. Results are summarised with ``partial_unexpected_count = 0`` so the
evidence carries counts and percentages, never the offending values themselves.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from fairgate.errors import GroupError
from fairgate.groups import cell_mask, comparisons, group_codes, is_numeric

if TYPE_CHECKING:
    import pandas as pd

    from fairgate.policy.schema import Policy

NUMERIC_TYPES = ["int", "int8", "int16", "int32", "int64", "Int64", "float", "float32", "float64", "Float64"]
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}


@dataclass
class Check:
    """One expectation and its outcome, with counts only."""

    check: str
    column: str | None
    passed: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = f" on column {self.column!r}" if self.column else ""
        facts = ", ".join(f"{k}={v}" for k, v in self.detail.items())
        return f"{self.check}{where}: {'passed' if self.passed else 'FAILED'}" + (f" ({facts})" if facts else "")


@dataclass
class QualityResult:
    passed: bool
    rows: int
    checks: list[Check]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def summary(self, cap: int = 10) -> dict[str, Any]:
        """Small JSON-safe summary: counts first, then at most ``cap`` failures, sorted."""
        failures = sorted(self.failures, key=lambda c: (c.column or "", c.check))
        return {
            "passed": self.passed,
            "rows": self.rows,
            "checks": len(self.checks),
            "failed": len(failures),
            "failures": [f.describe() for f in failures[:cap]],
            "failures_not_shown": max(0, len(failures) - cap),
        }

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "rows": self.rows, "checks": [asdict(c) for c in self.checks]}


def expectations(policy: Policy, columns: list[str]) -> list[Any]:
    """The GX expectations the policy implies, for a frame with ``columns``."""
    import great_expectations.expectations as gxe

    mostly = 1.0 - policy.quality.max_null_fraction
    exps: list[Any] = [gxe.ExpectTableRowCountToBeBetween(min_value=policy.quality.min_rows)]
    required = [c for c in (policy.dataset.row_key,) if c] + list(
        dict.fromkeys((*policy.categorical, *policy.numeric, *policy.protected_columns, policy.dataset.label))
    )
    for col in required:
        exps.append(gxe.ExpectColumnToExist(column=col))
    present = [c for c in required if c in columns]
    for col in present:
        protected_or_key = col in policy.protected_columns or col == policy.dataset.row_key
        exps.append(gxe.ExpectColumnValuesToNotBeNull(column=col, mostly=1.0 if protected_or_key else mostly))
    for col in policy.numeric:
        if col in columns:
            exps.append(gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=NUMERIC_TYPES))
    for col, bounds in policy.quality.ranges.items():
        lo, hi = bounds.min, bounds.max
        if col in columns:
            exps.append(gxe.ExpectColumnValuesToBeBetween(column=col, min_value=lo, max_value=hi))
    for col, allowed in policy.quality.allowed_values.items():
        if col in columns:
            exps.append(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(allowed)))
    for attr in policy.protected_attributes:
        if attr.column not in columns:
            continue
        if attr.is_threshold:
            exps.append(gxe.ExpectColumnValuesToBeInTypeList(column=attr.column, type_list=NUMERIC_TYPES))
        elif attr.allowed:
            exps.append(gxe.ExpectColumnValuesToBeInSet(column=attr.column, value_set=list(attr.allowed)))
    if policy.dataset.label in columns:
        exps.append(gxe.ExpectColumnUniqueValueCountToBeBetween(column=policy.dataset.label, min_value=2, max_value=2))
        exps.append(
            gxe.ExpectColumnDistinctValuesToContainSet(
                column=policy.dataset.label, value_set=[policy.dataset.favorable_label]
            )
        )
    if policy.dataset.row_key and policy.dataset.row_key in columns:
        exps.append(gxe.ExpectColumnValuesToBeUnique(column=policy.dataset.row_key))
    return exps


def run_expectations(df: pd.DataFrame, exps: list[Any]) -> list[Check]:
    """Validate ``df`` against ``exps`` on an ephemeral GX context; counts only in the result."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}
    asset = ctx.data_sources.add_pandas("fairgate").add_dataframe_asset("snapshot")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": df})
    suite = gx.ExpectationSuite(name="fairgate_policy")
    for e in exps:
        suite.add_expectation(e)
    result = batch.validate(suite, result_format=RESULT_FORMAT)
    checks = []
    for r in result.results:
        cfg = r.expectation_config
        res = r.result or {}
        detail = {k: res[k] for k in ("element_count", "unexpected_count", "unexpected_percent") if k in res}
        if isinstance(res.get("observed_value"), (int, float)):
            detail["observed"] = res["observed_value"]
        if r.exception_info and r.exception_info.get("raised_exception"):
            detail["error"] = str(r.exception_info.get("exception_message", ""))[:200]
        for bound in ("min_value", "max_value", "mostly"):
            if cfg.kwargs.get(bound) is not None:
                detail[bound] = cfg.kwargs[bound]
        checks.append(Check(check=cfg.type, column=cfg.kwargs.get("column"), passed=bool(r.success), detail=detail))
    return checks


def group_size_checks(df: pd.DataFrame, policy: Policy) -> list[Check]:
    """Every attribute group and intersection cell must hold ``fairness.min_group_size`` rows."""
    not_numeric = [
        a for a in policy.protected_attributes if a.is_threshold and a.column in df and not is_numeric(df[a.column])
    ]
    if not_numeric:  # groups cannot be formed: say which rule does not fit which column
        return [
            Check(
                check="fairgate_privileged_if_needs_numeric_column",
                column=a.column,
                passed=False,
                detail={"dtype": str(df[a.column].dtype), "privileged_if": f"{a.op} {a.value:g}"},
            )
            for a in not_numeric
        ]
    try:
        codes = group_codes(df, policy)
    except GroupError:
        return []  # the GX checks above already name the missing/null/unknown protected values
    checks, seen = [], set()
    for comp in comparisons(policy):
        for cell in (comp.unprivileged, comp.privileged):
            if cell in seen:
                continue
            seen.add(cell)
            n = int(cell_mask(codes, cell).sum())
            name = " & ".join(f"{c}={'privileged' if v else 'unprivileged'}" for c, v in cell)
            checks.append(
                Check(
                    check="fairgate_min_group_size",
                    column=name,
                    passed=n >= policy.fairness.min_group_size,
                    detail={"observed": n, "min_value": policy.fairness.min_group_size},
                )
            )
    return checks


def duplicate_rows(df: pd.DataFrame, policy: Policy) -> int:
    """Rows that repeat an earlier row in every column but the row key (an ingestion duplicate)."""
    cols = [c for c in df.columns if c != policy.dataset.row_key]
    return int(df.duplicated(subset=cols).sum()) if len(df) else 0


def duplicate_check(df: pd.DataFrame, policy: Policy, *, dupes: int | None = None) -> Check:
    """``dupes`` counted on the source's whole rows when the snapshot keeps fewer columns than the source."""
    dupes = duplicate_rows(df, policy) if dupes is None else dupes
    frac = dupes / len(df) if len(df) else 0.0
    return Check(
        check="fairgate_max_duplicate_fraction",
        column=None,
        passed=frac <= policy.quality.max_duplicate_fraction,
        detail={
            "observed": dupes,
            "observed_fraction": round(frac, 6),
            "max_value": policy.quality.max_duplicate_fraction,
        },
    )


def missing_feature_checks(df: pd.DataFrame, policy: Policy) -> list[Check]:
    """Under ``dataset.missing: refuse``, a feature with any missing value fails here, at the quality gate
    (the run is recorded as ``quality_failed``, the column and count named), not later inside training,
    where ``quality.max_null_fraction`` would have let it through to stop a run with no record of why."""
    if policy.dataset.missing != "refuse":
        return []
    checks = []
    for col in policy.features:
        if col in df.columns:
            gaps = int(df[col].isna().sum())
            checks.append(
                Check(
                    check="fairgate_no_missing_feature_values",
                    column=col,
                    passed=gaps == 0,
                    detail={"unexpected_count": gaps, "element_count": len(df), "dataset.missing": "refuse"},
                )
            )
    return checks


def validate_frame(df: pd.DataFrame, policy: Policy, *, duplicate_rows: int | None = None) -> QualityResult:
    """All quality checks on ``df``: the GX suite, duplicates and minimum group sizes.

    ``duplicate_rows``: the duplicates counted on the source's whole rows (see :func:`duplicate_rows`),
    when ``df`` is a snapshot that keeps only the policy's columns.
    """
    checks = [_with_hint(c, df, policy) for c in run_expectations(df, expectations(policy, list(df.columns)))]
    checks.append(duplicate_check(df, policy, dupes=duplicate_rows))
    checks.extend(group_size_checks(df, policy))
    checks.extend(missing_feature_checks(df, policy))
    return QualityResult(passed=all(c.passed for c in checks), rows=len(df), checks=checks)


def _with_hint(check: Check, df: pd.DataFrame, policy: Policy) -> Check:
    """A failed favourable-label check that is only a type mismatch ("1" for an integer column) says so."""
    if (
        check.passed
        or check.check != "expect_column_distinct_values_to_contain_set"
        or check.column != policy.dataset.label
    ):
        return check
    label, favorable = df[policy.dataset.label].dropna(), policy.dataset.favorable_label
    same_text = label[label.astype(str) == str(favorable)]
    if same_text.empty:
        return check
    found = same_text.iloc[0]
    found = found.item() if hasattr(found, "item") else found
    hint = (
        f"dataset.favorable_label is {favorable!r} ({type(favorable).__name__}) "
        f"but the column holds {found!r} ({label.dtype}): write it as {found!r}"
    )
    return Check(check=check.check, column=check.column, passed=False, detail={**check.detail, "hint": hint})
