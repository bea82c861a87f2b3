"""Decisions served online, in the prediction log: written before each request is answered, read beside
the batch log, compacted by a task.

In the artifact store, beside the day's batch partition:

```
predictions/model=M/date=D/part.parquet                  the day's batch scoring (a re-run replaces it)
predictions/model=M/date=D/online/<stamp>-<id>.json      one request's decisions, written before it is answered
predictions/model=M/date=D/online-<stamp>.parquet        compacted parts (the ingest task): new files, never rewritten
predictions/model=M/date=D/online-lost/<stamp>-<id>.json  decisions answered but not logged (``on_log_failure: answer``)
```

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
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Protocol, TypedDict

from fairgate.data.sources import to_parquet_bytes
from fairgate.errors import LogUnavailable, NotFoundError, StageError
from fairgate.monitoring import log_table, review_triggers

if TYPE_CHECKING:
    import pandas as pd
    import sqlalchemy

    from fairgate.policy.schema import Policy
    from fairgate.storage.base import ArtifactStore

ONLINE, BATCH = "online", "batch"
log = logging.getLogger(__name__)


def day_prefix(model: str, day: date | str) -> str:
    return f"predictions/model={model}/date={day if isinstance(day, str) else day.isoformat()}"


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S%fZ")


# --- writing ---------------------------------------------------------------------------------------


def _plain(value: object) -> object:
    """A log value JSON cannot hold as it is: a time as ISO 8601, a numpy scalar as its Python value."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _from_json(data: bytes) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(json.loads(data))
    if "scored_at" in frame.columns:
        frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True, format="ISO8601")
    return frame


class Sink(Protocol):
    def write(self, rows: pd.DataFrame, day: date) -> None:
        """Make ``rows`` (one request's decisions, all scored on ``day``) durable, or raise."""


@dataclass
class StoreSink:
    """One immutable Parquet object per request in the artifact store."""

    store: ArtifactStore
    model: str

    def write(self, rows: pd.DataFrame, day: date) -> None:
        key = f"{day_prefix(self.model, day)}/online/{_stamp(datetime.now(UTC))}-{uuid.uuid4().hex}.json"
        columns = {str(c): rows[c].tolist() for c in rows.columns}  # by column: cheaper than record by record
        self.store.put(key, json.dumps(columns, default=_plain).encode())


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
    key = f"{day_prefix(model, day)}/online-lost/{_stamp(now)}-{uuid.uuid4().hex}.json"
    store.put(key, json.dumps({"count": count, "cause": cause, "at": now.isoformat()}).encode())


def losses(store: ArtifactStore, model: str, days: list[str]) -> int:
    """Served decisions answered but not logged on ``days`` (the audit reports the count)."""
    total = 0
    for day in days:
        for key in store.list(f"{day_prefix(model, day)}/online-lost/"):
            total += int(json.loads(store.get(key))["count"])
    return total


# --- reading and compaction ------------------------------------------------------------------------


def _online_keys(store: ArtifactStore, model: str, day: date | str) -> tuple[list[str], list[str]]:
    """The day's compacted files and the parts not compacted yet."""
    prefix = day_prefix(model, day)
    keys = store.list(f"{prefix}/online")
    compacted = [k for k in keys if k.startswith(f"{prefix}/online-") and k.endswith(".parquet")]
    parts = [k for k in keys if k.startswith(f"{prefix}/online/") and k.endswith(".json")]
    return compacted, parts


def _read(store: ArtifactStore, keys: list[str]) -> list[pd.DataFrame]:
    import pandas as pd

    frames = []
    for key in keys:
        try:
            data = store.get(key)
        except NotFoundError:  # compacted and deleted between the listing and the read: in the compacted file
            continue
        try:
            frames.append(_from_json(data) if key.endswith(".json") else pd.read_parquet(io.BytesIO(data)))
        except (ValueError, OSError) as exc:  # a truncated or changed file: named, never skipped silently
            raise StageError(
                f"The served-decision log file {store.uri(key)} cannot be read ({type(exc).__name__}: "
                f"{str(exc)[:200]}); nothing was audited or compacted. Restore or remove it."
            ) from None
    return frames


def read_online(store: ArtifactStore, model: str, day: date | str) -> pd.DataFrame | None:
    """The day's served decisions (compacted and not), each once; ``None`` when there are none."""
    import pandas as pd

    compacted, parts = _online_keys(store, model, day)
    if not parts and not compacted:
        return None
    from_parts = _read(store, parts)
    if parts:  # a part compacted (and deleted) while it was read is in a compacted file listed from now on
        compacted = _online_keys(store, model, day)[0]
    frames = _read(store, compacted) + from_parts
    frames = [f for f in frames if len(f)]
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True).drop_duplicates("decision_id", keep="first").reset_index(drop=True)


def days_with_parts(store: ArtifactStore, model: str) -> list[str]:
    """Days with served decisions not compacted yet, oldest first."""
    prefix = f"predictions/model={model}/date="
    return sorted({k[len(prefix) :].split("/", 1)[0] for k in store.list(prefix) if k.split("/")[3:4] == ["online"]})


class Compacted(TypedDict):
    day: str
    parts: int  # parts merged and removed
    decisions: int  # new decisions in the compacted file
    key: str | None
    pending: int  # of them, queued for review (within the daily cap)
    over_cap: int


def compact(
    store: ArtifactStore, policy: Policy, day: date, *, batch_pending: int = 0
) -> tuple[Compacted, pd.DataFrame]:
    """Merge the day's parts into a new compacted file, then delete them; returns the new decisions.

    The review cap is applied here: a decision the server flagged for review (``review_status`` pending)
    is queued while the day's cap has room (``batch_pending`` is already queued by batch scoring,
    the day's earlier compacted files count too), the most borderline first; the rest are
    ``over_cap``. A compacted file is never rewritten, so what an audit read stays as it read it.
    """
    import numpy as np
    import pandas as pd

    compacted, parts = _online_keys(store, policy.model_name, day)
    empty: Compacted = {"day": day.isoformat(), "parts": 0, "decisions": 0, "key": None, "pending": 0, "over_cap": 0}
    frames = [f for f in _read(store, parts) if len(f)]
    if not frames:
        for part in parts:
            store.delete(part)
        return {**empty, "parts": len(parts)}, pd.DataFrame()
    new = pd.concat(frames, ignore_index=True).drop_duplicates("decision_id", keep="first")
    earlier = [f for f in _read(store, compacted) if len(f)]
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
    if len(new):
        written = (
            f"{day_prefix(policy.model_name, day)}/online-{_stamp(datetime.now(UTC))}-{uuid.uuid4().hex[:8]}.parquet"
        )
        store.put(written, to_parquet_bytes(new))
    for part in parts:
        store.delete(part)
    return {
        "day": day.isoformat(),
        "parts": len(parts),
        "decisions": len(new),
        "key": written,
        "pending": pending,
        "over_cap": over,
    }, new
