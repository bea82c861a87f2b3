"""A datasheet for each snapshot, in the sections of Gebru et al., "Datasheets for Datasets" (2021).

What the data itself can answer is measured from the snapshot (rows, columns and their profile,
the label's balance, how each protected group is represented, overall and per split), from the
policy (source, filters, label, protected attributes) and from the quality results. What only
the team knows (why the data was collected, how, with what consent) comes from the policy's
``datasheet`` section, and every such field left empty is listed as missing, never invented.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fairgate.errors import InputError
from fairgate.groups import codes_and_labels, labels
from fairgate.pages import render_markdown

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fairgate.policy.schema import Policy

# The team's answers, by Gebru et al.'s section; each is a key of the policy's ``datasheet`` section.
TEAM_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "Motivation": (
        ("motivation", "For what purpose was the dataset created?"),
        ("creators", "Who created the dataset, on behalf of which entity, and who funded it?"),
    ),
    "Composition": (
        (
            "confidential_data",
            "Does the dataset contain data that might be considered "
            "confidential or sensitive beyond the protected attributes?",
        ),
    ),
    "Collection process": (
        ("collection_process", "How was the data acquired, over what timeframe, and who was involved?"),
        (
            "consent",
            "Were the individuals notified and did they consent to the collection "
            "and this use? How can they revoke consent?",
        ),
        ("sampling", "Is the dataset a sample of a larger set, and how was it sampled?"),
    ),
    "Preprocessing, cleaning and labelling": (
        ("preprocessing", "What was done to the raw data before it reached this source, and how were labels assigned?"),
    ),
    "Uses": (
        ("intended_uses", "What other tasks may the dataset be used for?"),
        ("out_of_scope_uses", "Which uses should be avoided?"),
    ),
    "Distribution": (("distribution", "Who may receive the dataset, and under which licence or terms?"),),
    "Maintenance": (
        ("maintainer", "Who maintains the dataset and how can they be contacted?"),
        ("maintenance", "Will it be updated, and how are errors reported and corrected?"),
    ),
}
FIELDS = tuple(key for fields in TEAM_FIELDS.values() for key, _ in fields)
TOP_VALUES = 5


def column_profile(col: pd.Series) -> dict[str, Any]:
    """Type, nulls and either the numeric summary or the most frequent values of one column."""
    import pandas as pd

    out: dict[str, Any] = {
        "dtype": str(col.dtype),
        "nulls": int(col.isna().sum()),
        "distinct": int(col.nunique(dropna=True)),
    }
    values = col.dropna()
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        if len(values):
            out.update(
                min=float(values.min()),
                median=float(values.median()),
                max=float(values.max()),
                mean=float(values.mean()),
            )
    elif len(values) and out["distinct"] == len(values):
        out["unique"] = True  # an identifier: its most frequent values say nothing
    else:
        counts = values.astype(str).value_counts()
        out["top"] = [{"value": str(v), "rows": int(n)} for v, n in counts.head(TOP_VALUES).items()]
    return out


def representation(df: pd.DataFrame, policy: Policy, split: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Rows, share and favourable-label rate of each protected group (and intersection cell).

    Groups are the policy's privileged / unprivileged codes; with ``split`` each row also counts
    the group's rows in the train, validation and test splits.
    """
    import numpy as np

    codes, y = codes_and_labels(df, policy)
    sets = [(c,) for c in policy.protected_columns] + [tuple(c) for c in policy.intersections]
    out = []
    for columns in sets:
        cells = codes[list(columns)].to_numpy(dtype=np.int8)
        keys = cells @ (1 << np.arange(len(columns)))[::-1]  # one integer per cell, all-privileged highest
        for key in sorted(set(keys.tolist()), reverse=True):
            mask = keys == key
            bits = cells[mask][0]
            cell = ", ".join(f"{c}={'privileged' if b else 'unprivileged'}" for c, b in zip(columns, bits, strict=True))
            row: dict[str, Any] = {
                "group": cell,
                "rows": int(mask.sum()),
                "share": float(mask.mean()),
                "favourable_rate": float(y[mask].mean()) if mask.any() else None,
            }
            if split is not None:
                row["splits"] = {s: int((mask & (split == s)).sum()) for s in ("train", "validation", "test")}
            out.append(row)
    if split is not None:
        out.append(
            {
                "group": "all rows",
                "rows": len(df),
                "share": 1.0,
                "favourable_rate": float(np.mean(y)),
                "splits": {s: int((split == s).sum()) for s in ("train", "validation", "test")},
            }
        )
    return out


def datasheet(
    df: pd.DataFrame,
    policy: Policy,
    *,
    snapshot: dict[str, Any],
    quality: dict[str, Any],
    split: np.ndarray | None = None,
) -> dict[str, Any]:
    """The datasheet of one snapshot as a dict: measured facts, the team's answers, what is missing."""

    team = {k: (getattr(policy.datasheet, k) or None) for k in FIELDS}
    y = labels(df, policy) if policy.dataset.label in df.columns else None
    failed = [c for c in quality.get("checks", []) if not c.get("passed")]
    try:  # data that failed its quality checks still gets a datasheet, saying what could not be measured
        groups, groups_note = representation(df, policy, split), None
    except (InputError, KeyError) as exc:
        groups, groups_note = [], f"not measured: {str(exc).strip(chr(39))}"
    return {
        "model_name": policy.model_name,
        "snapshot": {
            "rows": snapshot.get("rows"),
            "sha256": (snapshot.get("data") or {}).get("sha256"),
            "uri": (snapshot.get("data") or {}).get("uri"),
            "period": snapshot.get("period"),
            "duplicate_rows": snapshot.get("duplicate_rows"),
        },
        "source": {
            "location": policy.dataset.source,
            "format": policy.dataset.format,
            "query": policy.dataset.query,
            "filters": [f.model_dump() for f in policy.dataset.filters],
            "partitioned": policy.dataset.partitioned,
        },
        "label": {
            "column": policy.dataset.label,
            "favourable": policy.dataset.favorable_label,
            "favourable_rows": int(y.sum()) if y is not None else None,
            "favourable_rate": float(y.mean()) if y is not None and len(y) else None,
        },
        "row_key": policy.dataset.row_key,
        "features": {"categorical": list(policy.categorical), "numeric": list(policy.numeric)},
        "protected": [{"column": a.column, "privileged": a.privileged_group} for a in policy.protected_attributes],
        "columns": {str(c): column_profile(df[c]) for c in df.columns},
        "representation": groups,
        "representation_note": groups_note,
        "quality": {
            "passed": quality.get("passed"),
            "checks": len(quality.get("checks", [])),
            "failed": [f"{c.get('check')} on {c.get('column')}" for c in failed],
        },
        "team": team,
        "missing": [k for k, v in team.items() if v is None],
    }


def markdown(sheet: dict[str, Any]) -> str:
    """The datasheet as Markdown (every value inserted as literal text)."""
    sections = [
        {"title": title, "fields": [{"key": k, "question": q, "answer": sheet["team"].get(k)} for k, q in fields]}
        for title, fields in TEAM_FIELDS.items()
    ]
    return render_markdown("datasheet.md.j2", sheet=sheet, sections={s["title"]: s for s in sections})
