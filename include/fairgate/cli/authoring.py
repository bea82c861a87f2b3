"""Writing and checking policies against data: ``fairgate policy init`` and ``fairgate policy check``.

``starter_policy`` profiles a frame (types, ranges, allowed sets, nulls, duplicates, group sizes)
and writes a complete policy with comments; ``check_against_data`` says, before any run, what
would stop one: a missing column, a favourable label or privileged value that never occurs (or
occurs only with another type), and groups too small for the gate's evidence rules in the test
split, with the ``test_size`` or threshold that would do.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import yaml

from fairgate.errors import InputError
from fairgate.fairness.gate import short_of_evidence
from fairgate.groups import is_numeric
from fairgate.policy.schema import Policy
from fairgate.values import plain

if TYPE_CHECKING:
    import pandas as pd

# A text column with more distinct values than this is an identifier or free text, not a category.
MAX_CATEGORIES = 50
# Allowed sets are written for categories with at most this many values.
MAX_ALLOWED_LISTED = 30
# An input that on its own ranks the label this well (ROC AUC) is left out as a likely leak of the outcome.
LEAK_AUC = 0.95
# Names of fields that hold another model's output or the outcome itself, not an input known at decision time.
LEAKY_NAME = re.compile(r"(^|_)(scores?|outcomes?|decisions?|predictions?|predicted|targets?|labels?)(_|$)", re.I)


@dataclass
class CheckResult:
    """What ``policy check --data`` found. Problems are errors (a run would fail: exit 2); the rest are
    warnings and notes, printed, that a run would meet too (exit 0)."""

    problems: list[str] = field(default_factory=list)  # a run would fail
    cannot_pass: list[str] = field(default_factory=list)  # the gate could only ask for review, whatever the model
    warnings: list[str] = field(default_factory=list)  # a run goes on, but something is worth fixing
    notes: list[str] = field(default_factory=list)  # figures worth knowing

    @property
    def ok(self) -> bool:
        """No problem: a run would not fail on the data (warnings may remain)."""
        return not self.problems

    @property
    def exit_code(self) -> int:
        return 2 if self.problems else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "cannot_pass": self.cannot_pass,
            "warnings": self.warnings,
            "notes": self.notes,
        }


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


def single_input_auc(df: pd.DataFrame, label: str, favorable: Any, column: str) -> float:
    """How well ``column`` alone ranks the label: the ROC AUC of its values (numbers) or of each value's
    favourable rate (categories), folded so 0.5 is none and 1.0 perfect either way round."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    y = (df[label] == favorable).to_numpy()
    if y.all() or not y.any():
        return 0.5
    s = df[column]
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        x = s.astype(float).fillna(s.astype(float).median())
    else:
        text = s.astype(str)
        x = text.map(pd.Series(y, index=df.index).groupby(text).mean())
    auc = float(roc_auc_score(y, x.to_numpy(dtype=float)))
    return max(auc, 1.0 - auc)


def _leaks(df: pd.DataFrame, label: str, favorable: Any, columns: list[str]) -> dict[str, str]:
    """The inputs to leave out as likely leaks of the outcome, each with why."""
    out = {}
    for col in columns:
        auc = single_input_auc(df, label, favorable, col)
        if auc >= LEAK_AUC:
            out[col] = (
                f"on its own it ranks {label!r} with ROC AUC {auc:.3f} (a field recorded after the outcome, "
                "or the outcome in another form?)"
            )
        elif LEAKY_NAME.search(col):
            out[col] = "named like a score or an outcome (another model's output, or recorded after the outcome?)"
    return out


def _row_key(df: pd.DataFrame) -> tuple[str | None, str]:
    """A column that identifies a record, and what to say about the choice."""
    import pandas as pd

    def unique(c: Any) -> bool:
        return bool(df[c].is_unique and df[c].notna().all())

    named = [c for c in df.columns if str(c).lower() in ("id", "row_id") or str(c).lower().endswith("_id")]
    for c in named:
        if unique(c):
            return str(c), ""
    others = [
        c
        for c in df.columns
        if (pd.api.types.is_integer_dtype(df[c]) or pd.api.types.is_string_dtype(df[c])) and unique(c)
    ]
    if others:
        c = str(others[0])
        return c, (
            f"Row key: '{c}', a column whose every value is distinct though not named *_id: check that it "
            "identifies a record and stays the same when the record is delivered again."
        )
    return None, (
        "No row key: no column identifies a record (unique, never empty). The lifecycle runs without one, "
        "but batch scoring, outcomes, contests and the audit join records by `dataset.row_key`: add an "
        "identifier to the data, then `fairgate policy set FILE dataset.row_key=COLUMN`."
    )


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
    said_of_key = ""
    if row_key is None:
        row_key, said_of_key = _row_key(df)

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
    leaks = _leaks(df, label, favorable, [*categorical, *numeric])
    categorical = [c for c in categorical if c not in leaks]
    numeric = [c for c in numeric if c not in leaks]
    skipped += [
        f"{col}: {why}. Add it to dataset.features only if it is known when the decision is made."
        for col, why in leaks.items()
    ]

    ranges = {
        c: {"min": _outward(plain(df[c].min()), up=False), "max": _outward(plain(df[c].max()), up=True)}
        for c in numeric
    }
    allowed: dict[str, list[Any]] = {}
    for c in [*categorical, *(p["column"] for p in protected if "privileged" in p)]:
        values = sorted(df[c].dropna().unique(), key=str)
        if len(values) <= MAX_ALLOWED_LISTED:
            allowed[c] = [plain(v) for v in values]
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
            "favorable_label": plain(favorable),
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
    duplicates = doc["quality"]["max_duplicate_fraction"]
    text = text.replace(
        f"  max_duplicate_fraction: {duplicates}\n",
        f"  max_duplicate_fraction: {duplicates}  # {dupes / len(df):.1%} of these rows repeat another row's values"
        " (every column but the row key): copied from the data (at least 0.05), not a recommendation;"
        " lower it if a repeated record is an error in your feed\n",
        1,
    )
    text += (
        "  # incoming: /path/to/incoming   # records to score: a folder of date=YYYY-MM-DD partitions\n"
        "  #                                 (local or s3://), or sql://<connection id> with incoming_query\n"
    )
    text = text.replace(
        "\nprotected_attributes:", _feature_label_stubs([*categorical, *numeric]) + "\nprotected_attributes:", 1
    )
    text += _recourse_stub(categorical, numeric, df)
    rows, label_rate = len(df), float((df[label] == favorable).mean())
    header = [
        f"# Fairgate policy for {model_name}, written by `fairgate policy init` from {rows:,} rows of {source}.",
        f"# Favourable rate: {label_rate:.3f}. Ranges (rounded outward to {SIGNIFICANT} significant digits, so a value",
        "# sent rounded still fits), allowed sets, null and duplicate limits are what the data holds today;",
        "# thresholds are the defaults. Review every value, then run `fairgate policy check <this file> --data`.",
        *_imbalance(label_rate, doc["fairness"]),
        *(f"# Left out of the features: {s}" for s in skipped),
        *([f"# {said_of_key}"] if said_of_key else []),
    ]
    return "\n".join(header) + "\n" + text


SIGNIFICANT = 6  # digits a profiled range keeps, rounded outward


def _outward(value: Any, *, up: bool) -> Any:
    """``value`` rounded outward to :data:`SIGNIFICANT` significant digits (a whole number stays as it is):
    a range copied to the last bit refuses the same value sent as JSON with fewer digits."""
    if not isinstance(value, float) or value == 0 or not math.isfinite(value):
        return value
    scale = 10.0 ** (SIGNIFICANT - 1 - math.floor(math.log10(abs(value))))
    return (math.ceil if up else math.floor)(round(value * scale, 6)) / scale


def _feature_label_stubs(features: list[str]) -> str:
    """Commented ``dataset.feature_labels``: the plain names people read in reason codes."""
    lines = ["  # feature_labels:  # plain names for reason codes and recourse (default: the column name), e.g."]
    lines += [f"  #   {c}: {c.replace('_', ' ')}" for c in features[:12]]
    return "\n".join(lines)


def _recourse_stub(categorical: list[str], numeric: list[str], df: pd.DataFrame) -> str:
    """A commented ``recourse`` section: without ``recourse.actionable`` a served request asking for recourse
    (``"params": {"recourse": true}``) is refused, and the audit measures none."""
    lines = [
        "# recourse:  # what a person told 'no' could change to be told 'yes' (fairgate explain ROW --recourse, a",
        '#            # served request with "params": {"recourse": true}, the audit\'s recourse figures). List only',
        "#            # inputs a person can act on; protected attributes never are. For example:",
        "#   actionable:",
    ]
    for c in numeric[:3]:
        lines.append(f"#     {c}: {{direction: any, min: {plain(df[c].min())}, max: {plain(df[c].max())}}}")
    for c in categorical[:2]:
        values = sorted(map(str, df[c].dropna().unique()))[:4]
        lines.append(f"#     {c}: {{values: {values}}}")
    return "\n".join(lines) + "\n"


def _imbalance(rate: float, fairness: dict[str, Any]) -> list[str]:
    """What an uneven label does to the default gate, said where the policy is written."""
    if 0.2 <= rate <= 0.8:
        return []
    rare = "favourable" if rate < 0.2 else "unfavourable"
    return [
        f"# Classes are uneven ({min(rate, 1 - rate):.1%} {rare}): each group has few {rare} outcomes, so the gate's",
        f"# fairness.min_positives ({fairness.get('min_positives')}) and min_group_size "
        f"({fairness.get('min_group_size')}) are met only by",
        "# large groups, rates near 0 or 1 give ratios (disparate_impact) wide intervals, and the gate asks for",
        "# review ('insufficient evidence') until the test split is large enough. fairgate policy check --data",
        "# says which groups fall short.",
    ]


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
    unnamed = [c for c in policy.features if c not in policy.dataset.feature_labels]
    if unnamed:
        out.notes.append(
            f"Reasons and recourse name {len(unnamed)} input(s) by their column names ({', '.join(unnamed[:5])}"
            f"{', ...' if len(unnamed) > 5 else ''}): give each a plain name people read in "
            "'dataset.feature_labels' (policy init writes a commented list to start from)."
        )
    label = df[policy.dataset.label]
    if not (label == policy.dataset.favorable_label).any():
        as_text = label.astype(str) == str(policy.dataset.favorable_label)
        found = plain(label[as_text].iloc[0]) if as_text.any() else None
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
                hint = f" (it occurs as {plain(same_text[0])!r}: match the column's type)" if same_text else ""
                out.problems.append(
                    f"Policy key 'protected_attributes[{i}].privileged' value {v!r} never occurs in "
                    f"column {a.column!r}{hint}."
                )
    if out.problems:
        return out

    cannot, notes = short_of_evidence(df, policy, share=policy.model.test_size)
    out.cannot_pass += cannot
    out.notes += notes
    short, notes = short_of_evidence(df, policy, share=policy.model.validation_size, split="validation")
    out.warnings += short
    out.notes += notes
    out.warnings += tied_inputs(df, policy)
    if policy.dataset.row_key is None:
        out.warnings.append(
            "Policy key 'dataset.row_key' is not set: the lifecycle runs, but batch scoring, outcomes, "
            "contests and the audit join records by it and refuse to run without it. Name a column "
            "that identifies a record (unique, never empty)."
        )
    return out


def _bins_of(number: pd.Series, other: pd.Series) -> bool:
    """``other`` is ``number`` cut into bins: one value of ``other`` per value of ``number``, and, in
    the order of ``number``, each value of ``other`` in one run (an interval)."""
    pairs = (
        other.astype(str).groupby(number.astype(float)).agg(["nunique", "first"]).sort_index()
        if number.notna().all()
        else None
    )
    if pairs is None or len(pairs) <= other.nunique() or (pairs["nunique"] > 1).any():
        return False
    runs = int((pairs["first"] != pairs["first"].shift()).sum())
    return runs == pairs["first"].nunique()


def tied_inputs(df: pd.DataFrame, policy: Policy) -> list[str]:
    """Actionable numbers that another input is a function of in the data (``age`` and ``age_cat``): a
    recourse that moves the number leaves the other input as it was, a change no person can make."""
    out = []
    for col in policy.recourse.actionable:
        if col not in policy.numeric or col not in df.columns:
            continue
        for other in policy.features:
            if other == col or other not in df.columns or df[other].nunique() < 2:
                continue
            if _bins_of(df[col], df[other]):
                out.append(
                    f"Policy key 'recourse.actionable.{col}': '{other}' is determined by '{col}' in the data "
                    f"(each value of {col} has one {other}); a recourse that changes {col} leaves {other} "
                    f"as it was. Drop one of the two from the features, or make the model see only one."
                )
    return out


def next_runs(policy: Policy, *, after: datetime | None = None) -> dict[str, str]:
    """When each of the model's scheduled DAGs runs next (UTC, minutes), from the policy's crons."""
    from croniter import croniter  # type: ignore[import-untyped]  # croniter ships no type hints

    start = after or datetime.now(UTC)
    crons = policy.schedule.model_dump()
    return {name: croniter(cron, start).get_next(datetime).strftime("%Y-%m-%d %H:%M") for name, cron in crons.items()}
