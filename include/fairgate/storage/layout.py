"""Where each kind of artifact lives in the store: every key family spelled once.

A model's day-partitioned families (``predictions``, ``outcomes``, ``audits``, ``reviews``, ``alerts``)
share one layout, ``<kind>/model=<model>/date=<YYYY-MM-DD>/...`` (Hive-style partitions a query
engine reads as columns); per-model families without days are ``<kind>/model=<model>/...``; a run's
artifacts are under ``runs/<dag_id>/<run id made safe>``. An id that came from outside (a run id,
a row key) keeps only the characters safe in paths and S3 keys (:func:`safe`).
"""

from __future__ import annotations

import re
from datetime import date

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")


def safe(part: str) -> str:
    """``part`` with every character outside ``[A-Za-z0-9._=-]`` made ``_``: one path segment, the same
    on a disk and in S3."""
    return _UNSAFE.sub("_", part)


def model_prefix(kind: str, model: str) -> str:
    """``<kind>/model=<model>/``: everything of one family for one model."""
    return f"{kind}/model={model}/"


def days_prefix(kind: str, model: str) -> str:
    """``<kind>/model=<model>/date=``: listing it gives every day of the family."""
    return f"{model_prefix(kind, model)}date="


def date_partition(day: date | str) -> str:
    """``date=<YYYY-MM-DD>``: one day's folder, in the store and in an incoming folder of records alike."""
    return f"date={day if isinstance(day, str) else day.isoformat()}"


def day_prefix(kind: str, model: str, day: date | str) -> str:
    """``<kind>/model=<model>/date=<day>``: one day's partition (no trailing slash)."""
    return f"{model_prefix(kind, model)}{date_partition(day)}"


def day_of(key: str) -> str:
    """The ``YYYY-MM-DD`` of a key inside a day partition."""
    return key.split("/date=", 1)[1].split("/", 1)[0]


def model_of(key: str) -> str:
    """The model of a key inside a model's family."""
    return key.split("/", 2)[1].removeprefix("model=")


def run_prefix(dag_id: str, run_id: str) -> str:
    """Where one DAG run's artifacts live."""
    return f"runs/{dag_id}/{safe(run_id)}"
