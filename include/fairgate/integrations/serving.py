"""Online decisions: one registered version answering requests with its decision, score and reasons.

The state a server needs is a folder of plain files written at registration (:func:`write_bundle`):

```
model.skops      the registered model file, loaded only if its sha256 is the version it claims
manifest.json    the registry manifest (the reference record reasons are measured against)
policy.yaml      the policy the version was trained under (labels, threshold, recourse bounds)
inputs.json      the inputs a request must carry: numeric columns, and each category's known values
recourse.json    the training rows' standard deviations and the flagged proxies (recourse costs)
background.parquet  the training rows Shapley values are measured against (optional: a bundle written
                    before it existed answers everything but ``shapley``)
```

:func:`load` checks and loads that folder; :func:`answer` turns a request frame into one row per
record: ``decision``, ``score``, ``model_version``, ``reason_1..3`` (the batch scorer's reason
codes) and, when asked, ``recourse`` and ``shapley`` (each input's Shapley value, for
developers). A request that cannot be answered raises
:class:`RequestError` naming the column and the cause; :mod:`fairgate.integrations.mlflow_model` serves this
under ``mlflow models serve``, where that error becomes a 400.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from fairgate.errors import InputError, RecourseOutOfTime, RequestError, StageError
from fairgate.governance import registry
from fairgate.models import explain, recourse, training
from fairgate.models import shapley as shapley_values
from fairgate.models.training import load_model_bytes, reference_record
from fairgate.monitoring import prediction_log, scoring
from fairgate.monitoring import review_triggers as triggers
from fairgate.monitoring.review_triggers import training_ranges
from fairgate.monitoring.served_log import ONLINE
from fairgate.policy.loader import load_policy

if TYPE_CHECKING:
    import pandas as pd

    from fairgate.policy.schema import Policy
    from fairgate.storage.base import ArtifactStore

FILES = ("model.skops", "manifest.json", "policy.yaml", "inputs.json", "recourse.json")
OPTIONAL_FILES = ("background.parquet",)
MAX_CATEGORY_VALUES = 200  # a column with more known values than this is checked for type and size only
MAX_TEXT_CHARS = 256  # a row key, or a value of such a column
MAX_RECORDS = 10_000  # per request
MAX_RECOURSE_RECORDS = 100  # per request that asks for recourse (each unfavourable record is a search)
MAX_RECOURSE_SECONDS = 30  # of recourse searches per request (a gateway's timeout is typically 60 s)
# per request that asks for Shapley values (a model-agnostic explainer makes ~500 evaluations a record)
MAX_SHAPLEY_RECORDS = 100


class InputSpec(TypedDict, total=False):
    """``inputs.json``: what a request must carry (``ranges``: absent in a bundle written before it existed)."""

    required: list[str]  # the row key, the inputs and the protected columns
    numeric: list[str]
    categories: dict[str, list[str]]  # a category input's training values (one with very many: type only)
    ranges: dict[str, list[Any]]  # review_triggers.training_ranges: [min, max] of a number, the values of a category
    protected: dict[str, list[str]]  # a protected column's training values (when the policy lists no ``allowed``)


@dataclass
class Served:
    """A loaded, checked version: everything :func:`answer` needs."""

    model: Any
    policy: Policy
    version: str
    reference: dict[str, Any]
    inputs: InputSpec
    recourse: dict[str, Any]
    background: pd.DataFrame | None = None


def input_spec(training: pd.DataFrame, policy: Policy) -> InputSpec:
    """What a request must carry, from the version's training snapshot (and its ranges, for review triggers).

    Every served decision is logged for the audit, so a request carries the row key (outcomes and
    contests find the decision by it) and the protected columns (the audit's groups).
    """
    required = list(
        dict.fromkeys(
            [*([policy.dataset.row_key] if policy.dataset.row_key else []), *policy.features, *policy.protected_columns]
        )
    )
    categories = {}
    for col in policy.features:
        if col not in policy.numeric and col in training.columns:
            values = sorted(training[col].dropna().astype(str).unique().tolist())
            if len(values) <= MAX_CATEGORY_VALUES:
                categories[col] = values
    protected = {}
    for attr in policy.protected_attributes:
        if not attr.is_threshold and not attr.allowed and attr.column in training.columns:
            values = sorted(training[attr.column].dropna().astype(str).unique().tolist())
            if len(values) <= MAX_CATEGORY_VALUES:
                protected[attr.column] = values
    return {
        "required": required,
        "numeric": [c for c in policy.features if c in policy.numeric],
        "categories": categories,
        "ranges": training_ranges(training, policy),
        "protected": protected,
    }


def write_bundle(
    store: ArtifactStore, policy: Policy, version: str, folder: Path, *, policy_file: bytes | None = None
) -> Path:
    """Write the files a server of ``version`` loads into ``folder`` (from the registry and its baseline)."""

    folder.mkdir(parents=True, exist_ok=True)
    manifest, training = prediction_log.deployment_baseline(store, policy, version)
    if training is None:
        raise StageError(
            f"The training snapshot of {policy.model_name} version {version[:12]} is missing or changed; "
            "a served version needs it for its input checks."
        )
    registry.load_model(store, policy.model_name, version)  # refuses a changed file or an untrusted type
    key = f"{registry.version_prefix(policy.model_name, version)}/model.skops"
    (folder / "model.skops").write_bytes(store.get(key))
    manifest = {**manifest, "reference": manifest.get("reference") or reference_record(training, policy)}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    (folder / "policy.yaml").write_bytes(policy_file if policy_file is not None else Path(policy.path).read_bytes())
    spec = input_spec(training, policy)
    (folder / "inputs.json").write_text(json.dumps(spec, indent=2, default=str))
    scale: dict[str, float] = {}
    proxies: list[str] = []
    if policy.recourse.actionable:
        _, scale, proxies = prediction_log.recourse_context(store, policy, version)
    (folder / "recourse.json").write_text(json.dumps({"scale": scale, "proxies": proxies}, indent=2))
    reference = shapley_values.background(training, seed=policy.model.seed)
    reference[[c for c in dict.fromkeys([*policy.features, *policy.protected_columns]) if c in reference]].to_parquet(
        folder / "background.parquet", index=False
    )
    return folder


def load(files: dict[str, str], *, version: str) -> Served:
    """Load a server's files (paths by name, as :data:`FILES`); the model only if its sha256 is ``version``."""

    missing = [name for name in FILES if name not in files or not Path(files[name]).is_file()]
    if missing:
        raise InputError(
            f"The served version {version[:12]} lacks {missing}; re-register it with `fairgate mlflow-sync`."
        )
    manifest = json.loads(Path(files["manifest.json"]).read_text())
    policy = load_policy(files["policy.yaml"])
    selection = manifest.get("selection") or {}
    if policy.model.selection != "threshold":  # one record at a time has no batch to rank: the gate's cutoff
        if selection.get("cutoff") is None:
            raise InputError(
                f"The served version {version[:12]} decides by rank ('model.selection: {policy.model.selection}') "
                "but its manifest holds no cutoff from its gate; re-run its lifecycle to register one."
            )
        policy = training.at_cutoff(policy, float(selection["cutoff"]))
    if manifest.get("model_sha256") != version:
        raise InputError(
            f"The served manifest names model {str(manifest.get('model_sha256'))[:12]}, not version "
            f"{version[:12]}; refusing to serve it."
        )
    model = load_model_bytes(
        Path(files["model.skops"]).read_bytes(),
        expected_sha256=version,
        where=f"served version {version[:12]} ({files['model.skops']})",
    )
    return Served(
        model=model,
        policy=policy,
        version=version,
        reference=manifest["reference"],
        inputs=json.loads(Path(files["inputs.json"]).read_text()),
        recourse=json.loads(Path(files["recourse.json"]).read_text()),
        background=_background(files.get("background.parquet")),
    )


def _background(path: str | None) -> pd.DataFrame | None:
    import pandas as pd

    return pd.read_parquet(path) if path and Path(path).is_file() else None


def check_request(records: pd.DataFrame, served: Served) -> pd.DataFrame:
    """The request as the model's input frame, or :class:`RequestError` naming the first problem."""
    import numpy as np
    import pandas as pd

    if len(records) == 0:
        raise RequestError("The request holds no records: send at least one.")
    if len(records) > MAX_RECORDS:
        raise RequestError(f"The request holds {len(records):,} records; send at most {MAX_RECORDS:,} per request.")
    missing = [c for c in served.inputs["required"] if c not in records.columns]
    if missing:
        raise RequestError(f"Every record needs the input column(s) {missing}; the request lacks them.")
    key = served.policy.dataset.row_key if served.policy is not None else None
    if key and key not in records.columns:  # a bundle written before the key was required says so here
        raise RequestError(
            f"Every record needs its row key {key!r}: each decision is logged by it, for its outcome and a contest."
        )
    if key:
        _check_row_key(records[key].to_numpy(dtype=object), key)
    if served.policy is not None:  # every loaded version has its policy (a bare input spec has none)
        _check_protected(records, served)
    out, converted = records, {}
    for col in served.inputs["numeric"]:  # on each column's numpy values: pandas costs per call, not per row
        raw = out[col].to_numpy(dtype=object)
        flags = np.fromiter((isinstance(v, bool) for v in raw), dtype=bool, count=len(raw))  # JSON true is not 1
        if flags.any():
            i = int(flags.argmax())
            raise RequestError(f"Column {col!r} must be a number; record {i} has {raw[i]!r} (a boolean).")
        values = pd.to_numeric(out[col], errors="coerce").to_numpy(dtype=float)
        infinite = np.isinf(values)
        if infinite.any():
            i = int(infinite.argmax())
            raise RequestError(f"Column {col!r} must be a finite number; record {i} has {values[i]}.")
        gap, given = np.isnan(values), ~pd.isna(raw)
        if (gap & given).any():
            i = int((gap & given).argmax())
            raise RequestError(f"Column {col!r} must be a number; record {i} has {raw[i]!r}.")
        if gap.any():
            raise RequestError(f"Column {col!r} must be a number; record {int(gap.argmax())} has no value.")
        bounds = served.policy.quality.ranges.get(col) if served.policy is not None else None
        if bounds is not None:  # the range the policy's quality gate holds the training data to
            outside = np.zeros(len(values), dtype=bool)
            if bounds.min is not None:
                outside |= values < bounds.min
            if bounds.max is not None:
                outside |= values > bounds.max
            if outside.any():
                i = int(outside.argmax())
                raise RequestError(
                    f"Column {col!r} is {values[i]} in record {i}, outside the policy's range "
                    f"[{bounds.min}, {bounds.max}] (quality.ranges.{col})."
                )
        converted[col] = values
    out = out.assign(**converted)
    for col in served.policy.features if served.policy is not None else ():  # too many values to list: a scalar
        if col not in served.inputs["numeric"] and col not in served.inputs["categories"] and col in out.columns:
            _check_scalars(out[col].to_numpy(dtype=object), col, what="a text or a whole number")
    for col, known in served.inputs["categories"].items():
        raw = out[col].to_numpy(dtype=object)
        allowed = set(known)
        unknown = np.fromiter((v is None or v != v or str(v) not in allowed for v in raw), dtype=bool, count=len(raw))
        if unknown.any():
            i = int(unknown.argmax())
            shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
            raise RequestError(
                f"Column {col!r} has the value {raw[i]!r} in record {i}, which the model "
                f"never saw in training (known: {shown})."
            )
    return out


def _scalar(value: object) -> bool:
    """A text or a whole number (never a boolean, a mapping, a list or nothing), short enough to log."""
    import numpy as np

    if isinstance(value, bool | np.bool_) or not isinstance(value, str | int | np.integer):
        return False
    return len(str(value)) <= MAX_TEXT_CHARS


def _check_scalars(raw: Any, col: str, *, what: str) -> None:
    bad = [i for i, v in enumerate(raw) if not _scalar(v)]
    if bad:
        shown = repr(raw[bad[0]])
        raise RequestError(
            f"Column {col!r} must be {what} of at most {MAX_TEXT_CHARS} characters; record {bad[0]} has "
            f"{shown[:80]}{'...' if len(shown) > 80 else ''}."
        )


def _check_row_key(raw: Any, key: str) -> None:
    """Each row key a text or whole number within the size bound: the log, outcomes and contests find it."""
    _check_scalars(raw, key, what="the record's row key: a text or a whole number")


def _check_protected(records: pd.DataFrame, served: Served) -> None:
    """Each protected value present and of its attribute: in ``allowed`` (or the training values when the
    policy lists none), a finite number for a ``privileged_if`` attribute. The audit groups by them."""
    import math

    import numpy as np

    known = served.inputs.get("protected") or {}
    for attr in served.policy.protected_attributes:
        col = attr.column
        if col not in records.columns:
            raise RequestError(f"Every record needs the protected column {col!r}: the audit groups decisions by it.")
        raw = records[col].to_numpy(dtype=object)
        if attr.is_threshold:
            bad = [
                i
                for i, v in enumerate(raw)
                if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.number) or not math.isfinite(v)
            ]
            if bad:
                raise RequestError(
                    f"Protected column {col!r} must be a finite number (the policy compares it: "
                    f"{attr.op} {attr.value:g}); record {bad[0]} has {raw[bad[0]]!r}."
                )
            continue
        allowed = [str(a) for a in attr.allowed] or known.get(col)
        for i, v in enumerate(raw):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                raise RequestError(f"Protected column {col!r} has no value in record {i}; every decision needs it.")
            if (
                isinstance(v, bool | np.bool_)
                or not isinstance(v, str | int | float | np.number)
                or len(str(v)) > MAX_TEXT_CHARS
            ):
                raise RequestError(
                    f"Protected column {col!r} must be a text or a number of at most {MAX_TEXT_CHARS} characters; "
                    f"record {i} has {v!r:.80}."
                )
            if allowed is not None and str(v) not in allowed:
                shown = ", ".join(allowed[:8]) + (", ..." if len(allowed) > 8 else "")
                raise RequestError(
                    f"Protected column {col!r} has the value {v!r:.80} in record {i}, which is not among its "
                    f"allowed values ({shown}; protected_attributes[].allowed)."
                )


@dataclass(frozen=True)
class Decided:
    """A request's answer (what the client gets) and its rows for the prediction log."""

    answer: pd.DataFrame
    log: pd.DataFrame
    day: date


def answer(
    served: Served, records: pd.DataFrame, *, reasons: bool = True, recourse: bool = False, shapley: bool = False
) -> pd.DataFrame:
    """One row per record: decision, score, model version, up to three reasons, and (asked) recourse and
    Shapley values (``shapley``: method, output space, base and each input's value)."""
    return decide(served, records, reasons=reasons, recourse=recourse, shapley=shapley).answer


def decide(
    served: Served,
    records: pd.DataFrame,
    *,
    reasons: bool = True,
    recourse: bool = False,
    shapley: bool = False,
    now: datetime | None = None,
) -> Decided:
    """:func:`answer`, with the rows the prediction log keeps of it (``channel`` online).

    Each decision gets a ``decision_id`` and its time; the log row holds the row key, version, score,
    decision, reasons (always, also when the client did not ask for them), the inputs and protected
    columns, and with review triggers in the policy ``review_status`` (pending when a trigger fired;
    the daily cap is applied when the day's decisions are compacted) and ``review_reasons``. The
    answer names the version, the decision id and, when one fired, why the decision goes to review.
    """
    import uuid

    import pandas as pd

    rows = check_request(records, served).reset_index(drop=True)
    policy = served.policy
    scores, decisions, codes = explain.explained(served.model, rows, policy, served.reference, top=scoring.REASONS)
    now = now or datetime.now(UTC)
    ids = [uuid.uuid4().hex for _ in range(len(rows))]
    key = policy.dataset.row_key
    texts = {f"reason_{i + 1}": [r[i]["text"] if len(r) > i else None for r in codes] for i in range(scoring.REASONS)}
    # Each frame is built from its columns at once: a request is a few rows, where pandas' cost is per column set.
    answered: dict[str, object] = {key: rows[key].to_numpy()} if key and key in rows.columns else {}
    answered |= {"decision": decisions.astype(int), "score": scores.astype(float), "model_version": served.version}
    answered |= {"decision_id": ids, **(texts if reasons else {})}
    keep = list(dict.fromkeys([*([key] if key else []), *policy.protected_columns, *policy.features]))
    logged: dict[str, object] = {c: rows[c].to_numpy() for c in keep[:1] if c in rows.columns}
    logged |= {"model_version": served.version, **{c: rows[c].to_numpy() for c in keep[1:] if c in rows.columns}}
    logged |= {"score": scores.astype(float), "decision": decisions.astype(int), **texts}
    logged["reasons"] = [json.dumps(r, default=str) for r in codes]
    if policy.reviews_before_harm:
        ranges = served.inputs.get("ranges") if policy.review_triggers.outside_training else None
        why = triggers.reasons(rows, scores, policy, ranges=ranges)
        logged["review_status"] = [triggers.PENDING if r else triggers.NONE for r in why]
        logged["review_reasons"] = [json.dumps(r) for r in why]
        answered["review"] = [triggers.PENDING if r else None for r in why]
        answered["review_reasons"] = pd.Series([r or None for r in why], dtype=object)
    logged |= {"channel": ONLINE, "scored_at": pd.Timestamp(now), "decision_id": ids}
    if recourse:
        if len(rows) > MAX_RECOURSE_RECORDS:  # each unfavourable record is a search: bounded per request
            raise RequestError(
                f"Recourse is computed for at most {MAX_RECOURSE_RECORDS} records per request; this one holds "
                f"{len(rows):,}. Send fewer, or leave out 'recourse'."
            )
        answered["recourse"] = _recourse(served, rows, decisions)
    if shapley:
        answered["shapley"] = pd.Series(_shapley(served, rows), dtype=object)
    out, log = pd.DataFrame(answered), pd.DataFrame(logged)
    return Decided(answer=_strict_json(out), log=log, day=now.astimezone(UTC).date())


def _strict_json(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every missing value None: pandas 3 stores a missing text as NaN, which a JSON
    encoder writes as ``NaN`` (not JSON: browsers, Go and Jackson refuse it); None is written ``null``."""
    import math

    import pandas as pd

    def plain(value: object) -> object:
        if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
            return None
        return value

    # Built column by column as objects: DataFrame.map would infer the text dtype (and its NaN) again.
    return pd.DataFrame(
        {c: pd.Series([plain(v) for v in frame[c].tolist()], dtype=object, index=frame.index) for c in frame.columns}
    )


def _shapley(served: Served, rows: pd.DataFrame) -> list[shapley_values.RecordJSON]:
    if served.background is None:
        raise RequestError(
            f"The served version {served.version[:12]} was registered without its background rows, so it cannot "
            "answer with Shapley values; re-register it with `fairgate mlflow-sync`."
        )
    if len(rows) > MAX_SHAPLEY_RECORDS:
        raise RequestError(
            f"Shapley values are computed for at most {MAX_SHAPLEY_RECORDS} records per request; this one holds "
            f"{len(rows):,}. Send fewer, or leave out 'shapley'."
        )
    found = shapley_values.explain(served.model, rows, served.policy, served.background)
    return [found.record(i) for i in range(len(rows))]


def _recourse(served: Served, rows: pd.DataFrame, decisions: Any) -> list[str | None]:
    policy = served.policy
    if not policy.recourse.actionable:
        raise RequestError(
            "This model's policy names no actionable inputs ('recourse.actionable'), so it cannot answer with recourse."
        )
    said: list[str | None] = []
    deadline = time.monotonic() + MAX_RECOURSE_SECONDS
    for i, decision in enumerate(decisions):
        if decision == 1:
            said.append(None)
            continue
        if time.monotonic() > deadline:  # the request is answered, or refused, well inside a gateway's timeout
            raise RequestError(
                f"Recourse for this request took over {MAX_RECOURSE_SECONDS} s (stopped at record {i} of "
                f"{len(decisions)}); send fewer records with 'recourse'."
            )
        record = {str(k): v for k, v in rows.iloc[i][list(policy.features)].items()}
        try:
            found = recourse.compute(
                served.model,
                record,
                policy,
                scale=served.recourse["scale"],
                proxies=served.recourse["proxies"],
                deadline=deadline,
            )
        except RecourseOutOfTime:
            raise RequestError(
                f"Recourse for this request took over {MAX_RECOURSE_SECONDS} s (stopped inside record {i} of "
                f"{len(decisions)}); send fewer records with 'recourse'."
            ) from None
        said.append(recourse.sentence(found, policy))
    return said
