"""Read the policy's data source and turn it into an immutable Parquet snapshot."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fairgate.data.adult import read_adult
from fairgate.errors import DataError, NotFoundError, NothingThere, StoreConfigError, StoreError
from fairgate.storage.s3 import S3Store

if TYPE_CHECKING:
    import pandas as pd

    from fairgate.policy.schema import Policy, RowFilter

log = logging.getLogger(__name__)

PARTITION_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def read_source(policy: Policy, *, interval: tuple[datetime, datetime] | None = None) -> pd.DataFrame:
    """Read the policy's ``dataset.source`` and keep the rows ``dataset.filters`` select.

    A partitioned file source and a SQL query read only the run's data interval ``[start, end)``:
    a partition ``date=D`` is read when ``start <= D < end``; the query gets the interval as the
    bound parameters ``:interval_start`` and ``:interval_end``.
    """
    df = read_location(
        policy.dataset.source,
        fmt=policy.dataset.format,
        partitioned=policy.dataset.partitioned,
        query=policy.dataset.query,
        interval=interval,
    )
    return apply_filters(df, policy.dataset.filters)


def read_location(
    source: str,
    *,
    fmt: str = "csv",
    partitioned: bool = False,
    query: str | None = None,
    interval: tuple[datetime, datetime] | None = None,
    key: str = "dataset.source",
) -> pd.DataFrame:
    """Every row at ``source``: ``bundled://adult``, a local file or folder, or ``sql://<conn_id>``."""
    if source == "bundled://adult":
        return read_adult("data")
    if source.startswith("bundled://"):
        raise DataError(f"Policy key '{key}': unknown bundled dataset {source!r} (available: bundled://adult).")
    if source.startswith("sql://"):
        return read_sql(source, query or "", interval, key="dataset.query")
    if source.startswith("s3://"):
        return _read_s3(source, fmt, partitioned, interval, key)
    path = Path(source.removeprefix("file://"))
    if not path.exists():
        raise NothingThere(f"Policy key '{key}': {path} does not exist.")
    files = _partition_files(path, fmt, interval) if partitioned else _plain_files(path, fmt)
    if not files:
        where = f" for {interval[0].date()}..{interval[1].date()}" if interval and partitioned else ""
        raise NothingThere(f"Policy key '{key}': no {fmt} files under {path}{where}.")
    return _concat([_read_file(f, fmt) for f in files])


# How an ``s3://`` source gets its boto3 client: the Airflow adapter installs the store's connection
# (FAIRGATE_AWS_CONN_ID); without it, boto3's standard configuration (AWS_* variables, profiles,
# AWS_ENDPOINT_URL_S3).
_s3_client: Callable[[], Any] | None = None


def use_s3_client(factory: Callable[[], Any] | None) -> None:
    global _s3_client
    _s3_client = factory


def _read_s3(
    source: str, fmt: str, partitioned: bool, interval: tuple[datetime, datetime] | None, key: str
) -> pd.DataFrame:
    """A CSV/Parquet object, or every one under a prefix (``date=`` partitions in the interval when partitioned)."""

    if _s3_client is not None:
        client = _s3_client()
    else:
        import boto3

        client = boto3.client("s3")
    single = source.endswith(f".{fmt}")
    root, _, name = source.rstrip("/").rpartition("/") if single else (source.rstrip("/"), "", "")
    store = S3Store(root, client=client)
    try:
        keys = [name] if single else [k for k in store.list("") if k.endswith(f".{fmt}")]
        if partitioned and not single:
            keys = [k for k in keys if _in_interval(k.split("/")[0], interval)]
        if not keys:
            where = f" for {interval[0].date()}..{interval[1].date()}" if interval and partitioned else ""
            raise NothingThere(f"Policy key '{key}': no {fmt} objects under {source}{where}.")
        return _concat([_read_bytes(store.get(k), fmt, f"{root}/{k}") for k in keys])
    except NotFoundError:
        raise NothingThere(f"Policy key '{key}': {source} does not exist.") from None
    except (StoreError, StoreConfigError) as exc:
        raise DataError(f"Policy key '{key}': cannot read {source}: {exc}") from None


def _in_interval(folder: str, interval: tuple[datetime, datetime] | None) -> bool:
    m = PARTITION_RE.match(folder)
    if not m:
        return False
    day = date.fromisoformat(m.group(1))
    return interval is None or interval[0].date() <= day < interval[1].date()


def _read_bytes(data: bytes, fmt: str, where: str) -> pd.DataFrame:
    import pandas as pd

    try:
        return (
            pd.read_parquet(io.BytesIO(data))
            if fmt == "parquet"
            else pd.read_csv(io.BytesIO(data), skipinitialspace=True)
        )
    except Exception as exc:  # pandas raises many types; the object's name is what the user needs
        raise DataError(f"Cannot read {where} as {fmt}: {exc}") from exc


# How a ``sql://<conn_id>`` source finds its database: the Airflow adapter installs a resolver that
# reads the Airflow connection; without one (CLI, notebook) the URI comes from AIRFLOW_CONN_<CONN_ID>,
# Airflow's own environment convention.
_connection_uri: Callable[[str], str] | None = None


def use_connections(resolver: Callable[[str], str] | None) -> None:
    """Resolve ``sql://<conn_id>`` with ``resolver(conn_id) -> SQLAlchemy URL`` (None: the environment)."""
    global _connection_uri
    _connection_uri = resolver


def connection_uri(conn_id: str) -> str:
    if _connection_uri is not None:
        return _connection_uri(conn_id)
    import os

    uri = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if not uri:
        raise DataError(
            f"No connection {conn_id!r}: define it in Airflow, or set AIRFLOW_CONN_{conn_id.upper()} "
            "to its URI (e.g. postgresql://user@host:5432/db)."
        )
    return sqlalchemy_url(uri)


def sqlalchemy_url(uri: str) -> str:
    """An Airflow connection URI as a SQLAlchemy URL (``postgres://`` is ``postgresql+psycopg2://``)."""
    scheme, sep, rest = uri.partition("://")
    scheme = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2"}.get(scheme, scheme)
    return f"{scheme}{sep}{rest}"


def read_sql(source: str, query: str, interval: tuple[datetime, datetime] | None, *, key: str) -> pd.DataFrame:
    """Run ``query`` on the connection ``source`` names, with the interval as bound parameters only.

    Reading is all it may do: one statement (a ``;`` before the end is refused, so no second
    statement, ``COMMIT`` or ``DROP`` rides along), run in a read-only transaction where the database
    has one (PostgreSQL, MySQL; SQLite's ``query_only``) and rolled back, never committed.
    """
    import pandas as pd
    import sqlalchemy

    statement = query.strip().removesuffix(";").strip()
    if ";" in statement:
        raise DataError(
            f"Policy key '{key}' holds more than one SQL statement (a ';' before the end); a source is read with "
            "one SELECT, nothing else runs."
        )
    conn_id = source.removeprefix("sql://")
    start, end = interval if interval else (None, None)
    engine = sqlalchemy.create_engine(connection_uri(conn_id))
    try:
        with engine.connect() as conn:
            read_only = _READ_ONLY.get(engine.dialect.name)
            if read_only:
                conn.execute(sqlalchemy.text(read_only))
            try:
                return pd.read_sql(
                    sqlalchemy.text(statement), conn, params={"interval_start": start, "interval_end": end}
                )
            finally:
                conn.rollback()
    except (sqlalchemy.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = getattr(exc, "orig", None) or getattr(exc.__cause__, "orig", None) or exc
        raise DataError(
            f"Policy key '{key}' failed on connection {conn_id!r}: {str(cause).strip().splitlines()[0]}"
        ) from None
    finally:
        engine.dispose()


# How each database is told that a source's transaction only reads (others: rolled back, never committed).
_READ_ONLY = {
    "postgresql": "SET TRANSACTION READ ONLY",
    "mysql": "SET TRANSACTION READ ONLY",
    "mariadb": "SET TRANSACTION READ ONLY",
    "sqlite": "PRAGMA query_only = ON",
}


def apply_filters(df: pd.DataFrame, filters: Sequence[RowFilter]) -> pd.DataFrame:
    """Keep the rows every ``{column, op, value}`` filter selects (declarative: nothing is evaluated)."""
    import operator

    if not filters:
        return df
    compare: dict[str, Callable[[Any, Any], Any]] = {
        "==": operator.eq,
        "!=": operator.ne,
        ">=": operator.ge,
        ">": operator.gt,
        "<=": operator.le,
        "<": operator.lt,
    }
    import pandas as pd

    keep = pd.Series(True, index=df.index)
    for i, f in enumerate(filters):
        column, op, value = f.column, f.op, f.value
        if column not in df.columns:
            raise DataError(
                f"Policy key 'dataset.filters[{i}].column': {column!r} is not a column of the source "
                f"(it has {sorted(map(str, df.columns))})."
            )
        col = df[column]
        if op == "not_null":
            mask = col.notna()
        elif op in ("in", "not_in"):
            listed = value if isinstance(value, list) else [value]  # the schema gives in/not_in a list
            mask = col.isin(listed) if op == "in" else ~col.isin(listed)
        else:
            try:
                mask = compare[op](col, value)
            except TypeError:
                raise DataError(
                    f"Policy key 'dataset.filters[{i}]': cannot compare column {column!r} ({col.dtype}) with {value!r}."
                ) from None
        keep &= mask.fillna(False).astype(bool)
    return df[keep].reset_index(drop=True)


def _plain_files(path: Path, fmt: str) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob(f"*.{fmt}") if p.is_file())


def _partition_files(path: Path, fmt: str, interval: tuple[datetime, datetime] | None) -> list[Path]:
    if not path.is_dir():
        raise DataError(f"Policy key 'dataset.partitioned' is true but {path} is not a folder.")
    files = []
    for child in sorted(path.iterdir()):
        m = PARTITION_RE.match(child.name)
        if not m:
            continue
        day = date.fromisoformat(m.group(1))
        if interval and not (interval[0].date() <= day < interval[1].date()):
            continue
        files.extend(sorted(child.glob(f"*.{fmt}")))
    return files


def _read_file(path: Path, fmt: str) -> pd.DataFrame:
    import pandas as pd

    try:
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, skipinitialspace=True)
    except Exception as exc:  # pandas raises many types; the file name is what the user needs
        raise DataError(f"Cannot read {path} as {fmt}: {exc}") from exc


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def to_parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()
