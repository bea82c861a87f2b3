"""Decisions served online, in the prediction log: written before each request is answered, read beside
the batch log, compacted by a task.

In the artifact store, beside the day's batch partition:

```
predictions/model=M/date=D/part.parquet                        the day's batch scoring (a re-run replaces it)
predictions/model=M/date=D/online/<stamp>-<sha256>[-<mac>].json  one request's decisions, written before it is answered
predictions/model=M/date=D/online-<stamp>-<sha256>[-<mac>].parquet  compacted parts (the ingest task): never rewritten
predictions/model=M/date=D/online-lost/<stamp>-<sha256>[-<mac>].json  decisions answered, not logged (``answer``)
predictions/model=M/date=D/quarantine/<name>                    a file that failed a check, moved aside, and why
```

Every file is content-addressed: its name carries the sha256 of its bytes, it is created once and
never overwritten. With an evidence key the name also carries a MAC of the model, day and sha256
under the key (:mod:`fairgate.storage.signing`), so a store writer without the key cannot add a
part, a compacted file or a loss count that is read. Each file is checked when read
(:func:`check_rows`: decision ids, times within the day, versions the registry holds, decisions,
scores, row keys and protected values as the policy allows); one that fails is moved to
``quarantine/`` with why, named in what read it (the audit record and report, the ingest's
compaction record), and the rest is read: one bad file never stops a window. Two files that say
different things of one ``decision_id`` are both quarantined (which is genuine cannot be told
without a key).

Why one object per request: a PUT of a new object (a rename on local disk, after ``fsync``) is atomic
and durable when it returns, so a decision is in the log before its answer leaves the server, and a
killed server loses no answered decision; there is no shared file for the server's worker processes
to lock, and an object store has no append. A part is JSON (its columns: a request's few rows
serialize in a fraction of the time Parquet takes); the compacted files are Parquet. The cost
is one small write per request (``benchmarks/served_decisions.py``); compaction bounds how many
objects an audit reads. A read
takes the compacted files and the parts not compacted yet, once each by ``decision_id`` (a compaction
interrupted between writing its file and deleting its parts counts nothing twice).

With ``audit.log_table``, a request's decisions are one ``INSERT`` transaction into that table
instead, ``channel = 'online'``, beside the batch rows (``channel = 'batch'``, which a re-scored day
replaces without touching the online ones).
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Protocol, TypedDict

from fairgate.data.sources import to_parquet_bytes
from fairgate.errors import ConflictError, LogUnavailable, NotFoundError
from fairgate.monitoring import log_table, review_triggers
from fairgate.storage import layout, signing
from fairgate.storage.base import sha256_bytes
from fairgate.values import plain

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy

    from fairgate.policy.schema import Policy
    from fairgate.storage.base import ArtifactStore

ONLINE, BATCH = "online", "batch"
log = logging.getLogger(__name__)


def day_prefix(model: str, day: date | str) -> str:
    return layout.day_prefix("predictions", model, day)


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S%fZ")


MAX_KEY_CHARS = 256  # a row key or protected value longer than this is not a decision's
MAX_LOST = 1_000_000_000  # a loss count above this is not a count
_NAME = re.compile(r"(?P<stamp>\d{8}T\d{12}Z)-(?P<sha>[0-9a-f]{64})(?:-(?P<mac>[0-9a-f]{32}))?\.(?:json|parquet)$")
_DECISION_ID = re.compile(r"[0-9a-f]{32}")
_IDENTITY = ("model_version", "decision", "score")  # what a served decision said, beside its key and groups


def _name(label: str, model: str, day: str, stamp: str, data: bytes, ext: str) -> str:
    """``<stamp>-<sha256>[-<mac>].<ext>``: content-addressed, and signed when there is an evidence key."""
    sha = sha256_bytes(data)
    secret = signing.key()
    mac = f"-{signing.mac(secret, label, model, day, sha)[:32]}" if secret else ""
    return f"{stamp}-{sha}{mac}.{ext}"


def _sha_in_name(key: str) -> str:
    """The sha256 a checked file's name carries."""
    found = _NAME.fullmatch(key.rsplit("/", 1)[-1].removeprefix("online-"))
    return found["sha"] if found else ""


def _name_problem(label: str, model: str, day: str, key: str, data: bytes) -> str | None:
    """Why the file at ``key`` is not one this log wrote (None: its name vouches for its bytes)."""
    found = _NAME.fullmatch(key.rsplit("/", 1)[-1].removeprefix("online-"))  # a compacted file's name
    if found is None:
        return "its name is not <time>-<sha256>: not a content-addressed file of this release of Fairgate"
    if sha256_bytes(data) != found["sha"]:
        return "its bytes do not match the sha256 its name carries (changed after it was written)"
    secret = signing.key()
    if secret and not signing.checks(secret, found["mac"], label, model, day, found["sha"], length=32):
        return "it is not signed with the evidence key (not written by a Fairgate server or task holding it)"
    return None


@dataclass(frozen=True)
class Rules:
    """What a served decision must hold to be read: the policy's row key and protected values, a version
    the model's registry holds."""

    model: str
    row_key: str
    versions: frozenset[str]
    allowed: Mapping[str, frozenset[str] | None] = field(default_factory=dict)  # None: any short value
    numbers: frozenset[str] = frozenset()  # protected columns the policy compares (``privileged_if``)


def rules_for(store: ArtifactStore, policy: Policy) -> Rules:
    """The rules of ``policy``'s log: its row key and protected attributes, the registered versions."""
    allowed: dict[str, frozenset[str] | None] = {}
    for attr in policy.protected_attributes:
        if not attr.is_threshold:
            allowed[attr.column] = frozenset(str(a) for a in attr.allowed) or None
    return Rules(
        model=policy.model_name,
        row_key=policy.dataset.row_key or "",
        versions=registered_versions(store, policy.model_name),
        allowed=allowed,
        numbers=frozenset(a.column for a in policy.protected_attributes if a.is_threshold),
    )


def registered_versions(store: ArtifactStore, model: str) -> frozenset[str]:
    """The versions registered for ``model`` (a served decision of any other version was not served by Fairgate)."""
    return frozenset(store.folders(f"registry/{model}/versions/"))


def _short_scalar(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return False
    return len(str(value)) <= MAX_KEY_CHARS


def check_rows(frame: pd.DataFrame, rules: Rules, day: str) -> str | None:
    """Why ``frame`` (one file's served decisions) is not a log of ``rules.model`` for ``day`` (None: it is)."""
    import numpy as np
    import pandas as pd

    needed = ["decision_id", "scored_at", "model_version", "decision", "score", rules.row_key, *rules.allowed]
    missing = [c for c in dict.fromkeys([*needed, *rules.numbers]) if c and c not in frame.columns]
    if missing:
        return f"it lacks the column(s) {missing}"
    ids = frame["decision_id"].to_numpy(dtype=object)
    if not all(isinstance(i, str) and _DECISION_ID.fullmatch(i) for i in ids) or len(set(ids)) != len(ids):
        return "its decision_id values are not distinct 32-digit hex ids"
    try:
        when = pd.to_datetime(frame["scored_at"], utc=True, format="ISO8601")
    except (ValueError, TypeError):
        return "its scored_at values are not times"
    if when.isna().any() or (when.dt.strftime("%Y-%m-%d") != day).any():
        return f"its scored_at values are not all times of {day}"
    unknown = sorted({str(v) for v in frame["model_version"]} - rules.versions)
    if unknown:
        return f"it names version(s) {[v[:12] for v in unknown][:3]} the registry of {rules.model!r} does not hold"
    decisions = frame["decision"].to_numpy(dtype=object)
    if not all(not isinstance(v, bool) and isinstance(v, int | float) and v in (0, 1) for v in decisions):
        return "its decisions are not 0 or 1"
    scores = pd.to_numeric(frame["score"], errors="coerce").to_numpy(dtype=float)
    if not (np.isfinite(scores) & (scores >= 0) & (scores <= 1)).all():
        return "its scores are not numbers in [0, 1]"
    if not all(_short_scalar(k) for k in frame[rules.row_key].to_numpy(dtype=object)):
        return f"its row key {rules.row_key!r} holds a value that is not a short text or whole number"
    for col, allowed in rules.allowed.items():
        values = frame[col].to_numpy(dtype=object)
        if not all(
            v is not None and not isinstance(v, bool | dict | list) and len(str(v)) <= MAX_KEY_CHARS and str(v) != "nan"
            for v in values
        ):
            return f"its protected column {col!r} holds a missing or malformed value"
        if allowed is not None and not {str(v) for v in values} <= allowed:
            return f"its protected column {col!r} holds a value outside protected_attributes[].allowed"
    for col in rules.numbers:
        numbers = frame[col].to_numpy(dtype=object)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
            return f"its protected column {col!r} holds a value that is not a finite number"
    return None


class Quarantined(TypedDict):
    """A served-log file moved aside: where it was, where it went, and why."""

    key: str
    moved_to: str
    why: str


def quarantine(store: ArtifactStore, key: str, why: str) -> Quarantined:
    """Move the file at ``key`` to its day's ``quarantine/`` folder with a note of why (nothing is deleted
    before its copy is written)."""
    folder = key.split("/online", 1)[0]
    moved = f"{folder}/quarantine/{key[len(folder) + 1 :].replace('/', '-')}"  # online-…, online-lost-…
    try:
        data = store.get(key)
    except NotFoundError:
        return {"key": key, "moved_to": "", "why": why}
    store.put(moved, data)
    note = {"from": key, "why": why, "at": datetime.now(UTC).isoformat()}
    store.put(f"{moved}.why.json", json.dumps(note, sort_keys=True).encode())
    store.delete(key)
    log.warning("Served-log file %s quarantined to %s: %s", key, moved, why)
    return {"key": key, "moved_to": moved, "why": why}


# --- writing ---------------------------------------------------------------------------------------


def _json_default(value: object) -> object:
    """A log value JSON cannot hold as it is: :func:`fairgate.values.plain`, else its text."""
    found = plain(value)
    return str(value) if found is value else found


def _from_json(data: bytes) -> pd.DataFrame:
    """A part's frame; its ``scored_at`` as given (:func:`check_rows` parses and checks it)."""
    import pandas as pd

    columns = json.loads(data)
    if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
        raise ValueError("not a JSON object of columns")
    return pd.DataFrame(columns)


class Sink(Protocol):
    def write(self, rows: pd.DataFrame, day: date) -> None:
        """Make ``rows`` (one request's decisions, all scored on ``day``) durable, or raise."""


@dataclass
class StoreSink:
    """One immutable Parquet object per request in the artifact store."""

    store: ArtifactStore
    model: str

    def write(self, rows: pd.DataFrame, day: date) -> None:
        columns = {str(c): rows[c].tolist() for c in rows.columns}  # by column: cheaper than record by record
        data = json.dumps(columns, default=_json_default).encode()
        name = _name(signing.SERVED_PART, self.model, day.isoformat(), _stamp(datetime.now(UTC)), data, "json")
        self.store.put_new(f"{day_prefix(self.model, day)}/online/{name}", data)


@dataclass
class TableSink:
    """One ``INSERT`` transaction per request into ``audit.log_table`` (``channel = 'online'``)."""

    policy: Policy
    _engine: sqlalchemy.engine.Engine | None = None
    _table: sqlalchemy.Table | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, rows: pd.DataFrame, day: date) -> None:
        import sqlalchemy as sa

        table = self._prepared(rows)
        records = [
            {str(k): v.item() if hasattr(v, "item") else v for k, v in r.items()}  # numpy scalars as Python values
            for r in rows.assign(scored_on=day).to_dict("records")
        ]
        engine = self._engine
        assert engine is not None
        try:
            with engine.begin() as conn:
                conn.execute(table.insert(), records)
        except sa.exc.SQLAlchemyError:
            self._table = None  # a changed table is looked at again on the next request
            raise

    def _prepared(self, rows: pd.DataFrame) -> sqlalchemy.Table:
        with self._lock:
            if self._engine is None:
                self._engine = log_table.engine_for(self.policy)
            if self._table is None:
                _, predictions, _ = log_table.tables(self.policy)
                self._table = log_table.prepare_predictions(self._engine, predictions, rows)
            return self._table


def sink_for(policy: Policy, store: ArtifactStore) -> Sink:
    """Where ``policy``'s served decisions are logged: its ``audit.log_table``, else the artifact store."""
    return TableSink(policy) if policy.audit.log_table else StoreSink(store, policy.model_name)


@dataclass
class DecisionLogger:
    """Log each request's decisions before they are answered; on failure, as ``audit.on_log_failure`` says.

    ``refuse``: :class:`~fairgate.errors.LogUnavailable` (the server answers 503). ``answer``: the loss is
    counted in the artifact store (``online-lost/``), and kept in memory to be written later when the
    store itself is what failed.
    """

    policy: Policy
    store: ArtifactStore
    sink: Sink
    unrecorded: dict[str, int] = field(default_factory=dict)  # day -> answered, not logged, count not yet stored
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_policy(cls, policy: Policy, store: ArtifactStore) -> DecisionLogger:
        return cls(policy=policy, store=store, sink=sink_for(policy, store))

    def log(self, rows: pd.DataFrame, day: date) -> bool:
        """True when ``rows`` are logged; False when they were lost and counted (``answer``)."""
        try:
            self.sink.write(rows, day)
        except Exception as exc:
            cause = f"{type(exc).__name__}: {str(getattr(exc, 'orig', exc)).strip().splitlines()[0][:300]}"
            if self.policy.audit.on_log_failure == "refuse":
                log.error("A served request was refused: its decisions could not be logged (%s)", cause)
                raise LogUnavailable(
                    "The decisions could not be written to the prediction log, so none is given "
                    "(audit.on_log_failure: refuse); retry later."
                ) from None
            log.error("%d served decision(s) answered but not logged (%s)", len(rows), cause)
            with self._lock:
                self.unrecorded[day.isoformat()] = self.unrecorded.get(day.isoformat(), 0) + len(rows)
            self.flush_losses(cause)
            return False
        if self.unrecorded:
            self.flush_losses("recorded late: the loss count could not be stored when it happened")
        return True

    def flush_losses(self, cause: str) -> None:
        """Store the counts of lost decisions not stored yet (kept for later if the store fails too)."""
        with self._lock:
            pending, self.unrecorded = self.unrecorded, {}
        for day, count in pending.items():
            try:
                record_loss(self.store, self.policy.model_name, date.fromisoformat(day), count, cause)
            except Exception:
                with self._lock:
                    self.unrecorded[day] = self.unrecorded.get(day, 0) + count


def record_loss(store: ArtifactStore, model: str, day: date, count: int, cause: str) -> None:
    now = datetime.now(UTC)
    data = json.dumps({"count": count, "cause": cause, "at": now.isoformat()}, sort_keys=True).encode()
    name = _name(signing.SERVED_LOSS, model, day.isoformat(), _stamp(now), data, "json")
    store.put_new(f"{day_prefix(model, day)}/online-lost/{name}", data)


def losses(store: ArtifactStore, model: str, days: list[str], quarantined: list[Quarantined] | None = None) -> int:
    """Served decisions answered but not logged on ``days`` (the audit reports the count); a count file that
    is not one (forged, changed, negative, not a count) is quarantined into ``quarantined`` and not added."""
    total = 0
    for day in days:
        for key in store.list(f"{day_prefix(model, day)}/online-lost/"):
            try:
                data = store.get(key)
            except NotFoundError:
                continue
            why = _name_problem(signing.SERVED_LOSS, model, day, key, data) or _loss_problem(data)
            if why:
                moved = quarantine(store, key, why)
                if quarantined is not None:
                    quarantined.append(moved)
                continue
            total += int(json.loads(data)["count"])
    return total


def _loss_problem(data: bytes) -> str | None:
    try:
        loss = json.loads(data)
    except ValueError:
        return "it is not JSON"
    count = loss.get("count") if isinstance(loss, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or not 0 < count <= MAX_LOST:
        return f"its count is not a whole number in [1, {MAX_LOST:,}]"
    if not isinstance(loss.get("cause"), str) or len(loss["cause"]) > 2000:
        return "its cause is not a text of at most 2,000 characters"
    return None


# --- reading and compaction ------------------------------------------------------------------------


def _online_keys(store: ArtifactStore, model: str, day: date | str) -> tuple[list[str], list[str]]:
    """The day's compacted files and the parts not compacted yet."""
    prefix = day_prefix(model, day)
    keys = store.list(f"{prefix}/online")
    compacted = [k for k in keys if k.startswith(f"{prefix}/online-") and k.endswith(".parquet")]
    parts = [k for k in keys if k.startswith(f"{prefix}/online/")]
    return compacted, parts


def _checked(
    store: ArtifactStore, rules: Rules, day: str, keys: list[str], quarantined: list[Quarantined]
) -> list[tuple[str, pd.DataFrame]]:
    """Each file of ``keys`` that is what its name says and holds served decisions of ``day``, as a frame;
    every other one quarantined (into ``quarantined``), never raised."""
    import pandas as pd

    frames = []
    for key in keys:
        try:
            data = store.get(key)
        except NotFoundError:  # compacted and deleted between the listing and the read: in the compacted file
            continue
        compacted = key.endswith(".parquet")
        why = _name_problem(signing.COMPACTED if compacted else signing.SERVED_PART, rules.model, day, key, data)
        frame = None
        if why is None:
            try:
                frame = pd.read_parquet(io.BytesIO(data)) if compacted else _from_json(data)
            except Exception as exc:  # a file of anything: named, never a raw error that Airflow retries
                why = f"it cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
        if frame is not None and why is None:
            why = check_rows(frame, rules, day)
        if why is not None or frame is None:
            quarantined.append(quarantine(store, key, why or "unreadable"))
            continue
        frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True, format="ISO8601")
        frames.append((key, frame))
    return frames


def _without_conflicts(
    store: ArtifactStore, rules: Rules, frames: list[tuple[str, pd.DataFrame]], quarantined: list[Quarantined]
) -> list[tuple[str, pd.DataFrame]]:
    """``frames`` less every file that says something else of a ``decision_id`` than another file does
    (both quarantined: without a key, which one the server wrote cannot be told). The same decision in
    two files alike (a compaction cut off before it deleted its parts) is no conflict."""
    import pandas as pd

    if len(frames) < 2:
        return frames
    columns = list(dict.fromkeys(["decision_id", *_IDENTITY, rules.row_key, *rules.allowed, *rules.numbers]))
    said = pd.concat(
        [f[columns].astype(str).assign(__file=key) for key, f in frames], ignore_index=True
    ).drop_duplicates([*columns, "__file"])
    distinct = said.drop_duplicates(columns)
    conflicting = set(distinct.loc[distinct["decision_id"].duplicated(keep=False), "decision_id"])
    if not conflicting:
        return frames
    bad = set(said.loc[said["decision_id"].isin(conflicting), "__file"])
    for key in sorted(bad):
        quarantined.append(
            quarantine(store, key, "another served-log file says something else of one of its decision ids")
        )
    return [(k, f) for k, f in frames if k not in bad]


def read_online(
    store: ArtifactStore, rules: Rules, day: date | str, quarantined: list[Quarantined] | None = None
) -> pd.DataFrame | None:
    """The day's served decisions (compacted and not), each once; ``None`` when there are none.

    Files that fail a check are quarantined and listed in ``quarantined`` (the caller names them).
    """
    import pandas as pd

    moved: list[Quarantined] = [] if quarantined is None else quarantined
    d = day if isinstance(day, str) else day.isoformat()
    compacted, parts = _online_keys(store, rules.model, d)
    if not parts and not compacted:
        return None
    from_parts = _checked(store, rules, d, parts, moved)
    if parts:  # a part compacted (and deleted) while it was read is in a compacted file listed from now on
        compacted = _online_keys(store, rules.model, d)[0]
    frames = _without_conflicts(store, rules, _checked(store, rules, d, compacted, moved) + from_parts, moved)
    kept = [f for _, f in frames if len(f)]
    if not kept:
        return None
    return pd.concat(kept, ignore_index=True).drop_duplicates("decision_id", keep="first").reset_index(drop=True)


def days_with_parts(store: ArtifactStore, model: str) -> list[str]:
    """Days with served decisions not compacted yet, oldest first."""
    keys = store.list(layout.days_prefix("predictions", model))
    return sorted({layout.day_of(k) for k in keys if k.split("/")[3:4] == ["online"]})


class Compacted(TypedDict):
    day: str
    parts: int  # parts merged and removed
    decisions: int  # new decisions in the compacted file
    key: str | None
    pending: int  # of them, queued for review (within the daily cap)
    over_cap: int
    sha256: str | None  # of the compacted file
    merged: dict[str, str]  # each part merged (its key) and its sha256: the compaction record binds them (not in
    # the ingest's summary, which stays small)
    quarantined: list[Quarantined]


def compact(
    store: ArtifactStore, policy: Policy, day: date, *, rules: Rules | None = None, batch_pending: int = 0
) -> tuple[Compacted, pd.DataFrame]:
    """Merge the day's parts into a new compacted file, then delete them; returns the new decisions.

    The review cap is applied here: a decision the server flagged for review (``review_status`` pending)
    is queued while the day's cap has room (``batch_pending`` is already queued by batch scoring,
    the day's earlier compacted files count too), the most borderline first; the rest are
    ``over_cap``. A compacted file is never rewritten, so what an audit read stays as it read it. A part
    that fails a check is quarantined (named in the result), never merged, never fatal.
    """
    import numpy as np
    import pandas as pd

    d = day.isoformat()
    rules = rules or rules_for(store, policy)  # the policy's own rules, read from the store once per call
    compacted, parts = _online_keys(store, policy.model_name, d)
    empty: Compacted = {
        "day": d,
        "parts": 0,
        "decisions": 0,
        "key": None,
        "pending": 0,
        "over_cap": 0,
        "sha256": None,
        "merged": {},
        "quarantined": [],
    }
    moved: list[Quarantined] = []
    read = _without_conflicts(
        store, rules, _checked(store, rules, d, compacted, moved) + _checked(store, rules, d, parts, moved), moved
    )
    earlier = [f for k, f in read if k in compacted and len(f)]
    merged = {k: _sha_in_name(k) for k, f in read if k not in compacted}
    frames = [f for k, f in read if k not in compacted and len(f)]
    if not frames:
        for part in merged:
            store.delete(part)
        return {**empty, "parts": len(merged), "merged": merged, "quarantined": moved}, pd.DataFrame()
    new = pd.concat(frames, ignore_index=True).drop_duplicates("decision_id", keep="first")
    if earlier:  # a part already merged by an interrupted compaction is not merged twice
        seen = pd.concat([f[["decision_id"]] for f in earlier], ignore_index=True)["decision_id"]
        new = new[~new["decision_id"].isin(seen)]
    new = new.sort_values(["scored_at", "decision_id"]).reset_index(drop=True)
    pending = over = 0
    if "review_status" in new.columns and len(new):
        queued = batch_pending + sum(
            int((f["review_status"] == review_triggers.PENDING).sum()) for f in earlier if "review_status" in f
        )
        room = max(policy.review_triggers.daily_cap - queued, 0)
        flagged = np.flatnonzero((new["review_status"] == review_triggers.PENDING).to_numpy())
        distance = np.abs(new["score"].to_numpy(dtype=float)[flagged] - policy.model.decision_threshold)
        order = flagged[np.lexsort((flagged, distance))]  # the most borderline first
        status = new["review_status"].to_numpy(dtype=object).copy()
        status[order[room:]] = review_triggers.OVER_CAP
        new["review_status"] = status
        pending, over = min(room, len(order)), max(len(order) - room, 0)
    written: str | None = None
    sha: str | None = None
    if len(new):
        data = to_parquet_bytes(new)
        name = _name(signing.COMPACTED, policy.model_name, d, _stamp(datetime.now(UTC)), data, "parquet")
        written, sha = f"{day_prefix(policy.model_name, day)}/online-{name}", sha256_bytes(data)
        try:
            store.put_new(written, data)
        except ConflictError:  # the same bytes under the same name: written already (never rewritten)
            pass
    for part in merged:
        store.delete(part)
    return {
        "day": d,
        "parts": len(merged),
        "decisions": len(new),
        "key": written,
        "pending": pending,
        "over_cap": over,
        "sha256": sha,
        "merged": merged,
        "quarantined": moved,
    }, new
