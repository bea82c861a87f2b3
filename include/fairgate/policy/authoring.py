"""Writing and checking policies against data: ``fairgate policy init`` and ``fairgate policy check``.

``starter_policy`` profiles a frame (types, ranges, allowed sets, nulls, duplicates, group sizes)
and writes a complete policy with comments; ``check_against_data`` says, before any run, what
would stop one: a missing column, a favourable label or privileged value that never occurs (or
occurs only with another type), and groups too small for the gate's evidence rules in the test
split, with the ``test_size`` or threshold that would do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import yaml

from fairgate.errors import InputError
from fairgate.fairness.groups import cell_mask, comparisons, group_codes, is_numeric
from fairgate.policy.schema import Policy

if TYPE_CHECKING:
    import pandas as pd

# A text column with more distinct values than this is an identifier or free text, not a category.
MAX_CATEGORIES = 50
# Allowed sets are written for categories with at most this many values.
MAX_ALLOWED_LISTED = 30


@dataclass
class CheckResult:
    problems: list[str] = field(default_factory=list)  # a run would fail
    cannot_pass: list[str] = field(default_factory=list)  # a run would end in review, whatever the model does
    notes: list[str] = field(default_factory=list)  # figures worth knowing

    @property
    def ok(self) -> bool:
        return not self.problems and not self.cannot_pass

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "cannot_pass": self.cannot_pass, "notes": self.notes}


def parse_protected(spec: str) -> dict[str, Any]:
    """``sex=Male`` / ``race=White,Asian`` / ``age>=25`` as a ``protected_attributes`` entry."""
    for op in (">=", "<=", ">", "<"):
        if op in spec:
            column, _, value = spec.partition(op)
            try:
                return {"column": column.strip(), "privileged_if": {"op": op, "value": float(value)}}
            except ValueError:
                raise InputError(f"--protected {spec!r}: {value!r} is not a number.") from None
    column, sep, values = spec.partition("=")
    if not sep or not column.strip() or not values.strip():
        raise InputError(f"--protected {spec!r}: write COLUMN=PRIVILEGED[,PRIVILEGED...] or COLUMN>=NUMBER.")
    return {"column": column.strip(), "privileged": [v.strip() for v in values.split(",")]}


def _typed(value: Any, column: pd.Series) -> Any:
    """``value`` (text from the command line) as the column's type, when it parses as one."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) and str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    if pd.api.types.is_integer_dtype(column):
        try:
            return int(value)
        except (TypeError, ValueError):
            return value
    if pd.api.types.is_float_dtype(column):
        try:
            return float(value)
        except (TypeError, ValueError):
            return value
    return value


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones, for YAML."""
    return value.item() if hasattr(value, "item") else value


def starter_policy(
    df: pd.DataFrame,
    *,
    model_name: str,
    source: str,
    label: str,
    favorable: Any,
    protected: list[dict[str, Any]],
    fmt: str = "csv",
    row_key: str | None = None,
    query: str | None = None,
) -> str:
    """A complete, commented policy for ``df``: every value measured, thresholds at the defaults."""
    import pandas as pd

    missing = [
        c for c in [label, *(p["column"] for p in protected), *([row_key] if row_key else [])] if c not in df.columns
    ]
    if missing:
        raise InputError(f"Columns {missing} are not in the data (it has {sorted(map(str, df.columns))}).")
    if df.empty:
        raise InputError("The data has no rows to profile.")
    favorable = _typed(favorable, df[label])
    if not (df[label] == favorable).any():
        raise InputError(
            f"The favourable label {favorable!r} never occurs in column {label!r} "
            f"(values: {sorted(map(str, df[label].dropna().unique()))[:10]})."
        )
    for p in protected:
        if "privileged" in p:
            p["privileged"] = [_typed(v, df[p["column"]]) for v in p["privileged"]]
    if row_key is None:
        candidates = [c for c in df.columns if str(c).lower() in ("id", "row_id") or str(c).lower().endswith("_id")]
        row_key = next((c for c in candidates if df[c].is_unique and df[c].notna().all()), None)

    taken = {label, row_key, *(p["column"] for p in protected)}
    categorical, numeric, skipped = [], [], []
    for col in df.columns:
        if col in taken:
            continue
        s = df[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            numeric.append(str(col))
        elif s.nunique(dropna=True) <= MAX_CATEGORIES:
            categorical.append(str(col))
        else:
            skipped.append(f"{col} ({s.nunique()} distinct values: an identifier or free text?)")

    ranges = {c: {"min": _plain(df[c].min()), "max": _plain(df[c].max())} for c in numeric}
    allowed: dict[str, list[Any]] = {}
    for c in [*categorical, *(p["column"] for p in protected if "privileged" in p)]:
        values = sorted(df[c].dropna().unique(), key=str)
        if len(values) <= MAX_ALLOWED_LISTED:
            allowed[c] = [_plain(v) for v in values]
    protected_entries = []
    for p in protected:
        entry = dict(p)
        if "privileged" in p and p["column"] in allowed:
            entry["allowed"] = allowed.pop(p["column"])
        protected_entries.append(entry)
    used = [*categorical, *numeric, label, *(p["column"] for p in protected)]
    null_fraction = float(df[used].isna().mean().max())
    dupes = int(df.duplicated(subset=[c for c in df.columns if c != row_key]).sum())

    defaults = Policy.model_fields
    doc: dict[str, Any] = {
        "model_name": model_name,
        "dataset": {
            "source": source,
            **({"query": query} if query else {}),
            "format": fmt,
            "label": label,
            "favorable_label": _plain(favorable),
            **({"row_key": row_key} if row_key else {}),
            "features": {"categorical": categorical, "numeric": numeric},
        },
        "protected_attributes": protected_entries,
        "intersections": [[p["column"] for p in protected]] if len(protected) > 1 else [],
        "quality": {
            "min_rows": max(1, min(1000, len(df) // 2)),
            "max_null_fraction": math.ceil(null_fraction * 1000) / 1000,
            "max_duplicate_fraction": max(0.05, math.ceil(dupes / len(df) * 1000) / 1000),
            "ranges": ranges,
            "allowed_values": allowed,
        },
    }
    for section in ("bias", "fairness", "model", "audit"):
        default = defaults[section].get_default(call_default_factory=True)
        doc[section] = default.model_dump(exclude_none=True, exclude={"scenario", "daily_rows"})
    doc["model"]["params"] = {"max_iter": 1000}
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110)
    text += (
        "  # incoming: /path/to/incoming   # records to score: a folder of date=YYYY-MM-DD partitions\n"
        "  #                                 (local or s3://), or sql://<connection id> with incoming_query\n"
    )
    rows, label_rate = len(df), float((df[label] == favorable).mean())
    header = [
        f"# Fairgate policy for {model_name}, written by `fairgate policy init` from {rows:,} rows of {source}.",
        f"# Favourable rate: {label_rate:.3f}. Ranges, allowed sets, null and duplicate limits are what the",
        "# data holds today; thresholds are the defaults. Review every value, then run",
        "# `fairgate policy check <this file> --data`.",
        *(f"# Left out of the features: {s}" for s in skipped),
    ]
    return "\n".join(header) + "\n" + text


def check_against_data(policy: Policy, df: pd.DataFrame) -> CheckResult:
    """What would stop a run of ``policy`` on ``df``, found before the run."""

    out = CheckResult()
    named = {
        "dataset.label": [policy.dataset.label],
        "dataset.features": list(policy.features),
        "protected_attributes": list(policy.protected_columns),
        "dataset.row_key": [policy.dataset.row_key] if policy.dataset.row_key else [],
    }
    for key, cols in named.items():
        missing = [c for c in cols if c not in df.columns]
        if missing:
            out.problems.append(
                f"Policy key '{key}' names {missing}, which the data does not have "
                f"(it has {sorted(map(str, df.columns))})."
            )
    if out.problems:
        return out
    if df.empty:
        out.problems.append("The data has no rows.")
        return out
    label = df[policy.dataset.label]
    if not (label == policy.dataset.favorable_label).any():
        as_text = label.astype(str) == str(policy.dataset.favorable_label)
        found = _plain(label[as_text].iloc[0]) if as_text.any() else None
        hint = (
            f" It occurs as {found!r} ({label.dtype}): write it as that, so its type matches the column's."
            if as_text.any()
            else ""
        )
        out.problems.append(
            f"Policy key 'dataset.favorable_label' {policy.dataset.favorable_label!r} never occurs in column "
            f"{policy.dataset.label!r}.{hint}"
        )
    for i, a in enumerate(policy.protected_attributes):
        col = df[a.column]
        if a.is_threshold:
            if not is_numeric(col):
                out.problems.append(
                    f"Policy key 'protected_attributes[{i}].privileged_if' needs a numeric column; "
                    f"{a.column!r} holds {col.dtype} values."
                )
            continue
        present = set(col.dropna().unique().tolist())
        for v in a.privileged_values:
            if v not in present:
                same_text = [x for x in present if str(x) == str(v)]
                hint = f" (it occurs as {_plain(same_text[0])!r}: match the column's type)" if same_text else ""
                out.problems.append(
                    f"Policy key 'protected_attributes[{i}].privileged' value {v!r} never occurs in "
                    f"column {a.column!r}{hint}."
                )
    if out.problems:
        return out

    cannot, notes = short_of_evidence(df, policy, share=policy.model.test_size)
    out.cannot_pass += cannot
    out.notes += notes
    return out


def short_of_evidence(df: pd.DataFrame, policy: Policy, *, share: float) -> tuple[list[str], list[str]]:
    """Groups whose rows or favourable outcomes, times ``share`` (the test split's), fall short of the gate's
    evidence rules, each with what would fix it; and a note of every group's counts."""
    import numpy as np

    codes = group_codes(df, policy)
    favourable = np.asarray(df[policy.dataset.label] == policy.dataset.favorable_label)
    short: list[str] = []
    notes: list[str] = []
    seen: set[tuple[tuple[str, int], ...]] = set()
    where = "in the test split" if share < 1 else "in the test rows"
    for comp in comparisons(policy):
        for cell in (comp.unprivileged, comp.privileged):
            if cell in seen:
                continue
            seen.add(cell)
            mask = cell_mask(codes, cell)
            rows, positives = int(mask.sum()), int((mask & favourable).sum())
            name = " & ".join(f"{c}={'privileged' if v else 'unprivileged'}" for c, v in cell)
            exp_rows, exp_pos = rows * share, positives * share
            about = "about " if share < 1 else ""
            notes.append(
                f"{name}: {rows} rows, {positives} favourable"
                + (f"; about {exp_rows:.0f} and {exp_pos:.0f} {where}" if share < 1 else f" {where}")
            )
            for what, expected, have, need, key in (
                ("rows", exp_rows, rows, policy.fairness.min_group_size, "fairness.min_group_size"),
                ("favourable outcomes", exp_pos, positives, policy.fairness.min_positives, "fairness.min_positives"),
            ):
                if expected >= need:
                    continue
                if share < 1 and have and need / have <= 0.5:
                    fix = f"model.test_size {math.ceil(need / have * 100) / 100:g} would reach it"
                elif expected >= 1:
                    fix = f"lower {key} to {math.floor(expected)}"
                else:
                    fix = "more data for this group"
                short.append(
                    f"Group {name} has {about}{expected:.0f} {what} {where}; '{key}' asks for {need}, so "
                    f"the gate can only ask for review: {fix}."
                )
    return short, notes


def next_runs(policy: Policy, *, after: datetime | None = None) -> dict[str, str]:
    """When each of the model's scheduled DAGs runs next (UTC, minutes), from the policy's crons."""
    from croniter import croniter  # type: ignore[import-untyped]  # croniter ships no type hints

    start = after or datetime.now(UTC)
    crons = policy.schedule.model_dump()
    return {name: croniter(cron, start).get_next(datetime).strftime("%Y-%m-%d %H:%M") for name, cron in crons.items()}
