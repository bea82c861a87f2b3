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

    from fairgate.policy.schema import Policy, RowFilter, SqlSources

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
        limits=policy.sql,
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
    limits: SqlSources | None = None,
) -> pd.DataFrame:
    """Every row at ``source``: ``bundled://adult``, a local file or folder, or ``sql://<conn_id>`` (read
    within ``limits``, the policy's ``sql`` section)."""
    if source == "bundled://adult":
        return read_adult("data")
    if source.startswith("bundled://"):
        raise DataError(f"Policy key '{key}': unknown bundled dataset {source!r} (available: bundled://adult).")
    if source.startswith("sql://"):
        if limits is None:  # every caller has a policy's, or the schema's defaults, to give
            raise TypeError("read_location of a sql:// source needs the policy's sql limits")
        return read_sql(source, query or "", interval, key="dataset.query", limits=limits)
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


def read_sql(
    source: str,
    query: str,
    interval: tuple[datetime, datetime] | None,
    *,
    key: str,
    limits: SqlSources,
) -> pd.DataFrame:
    """Run ``query`` on the connection ``source`` names, with the interval as bound parameters only.

    Reading is all it may do, and within bounds (``limits``: the policy's ``sql`` section):

    - the query is parsed (:func:`checked_query`): one ``SELECT`` (or ``WITH ... SELECT``, a
      ``UNION``), no ``INTO``, no row locks, no data-modifying ``WITH``, no function that reaches the
      server's files or programs, other sessions or the server's settings;
    - on PostgreSQL, a role that is a superuser or a member of ``pg_read_server_files``,
      ``pg_write_server_files``, ``pg_execute_server_program`` or ``pg_signal_backend`` is refused
      unless ``sql.allow_privileged_role``; SQLite is opened read-only (``mode=ro``);
    - it runs in a read-only transaction where the database has one, rolled back, never committed,
      under a statement timeout (``sql.timeout_seconds``: the server stops it, also when the
      client is gone), and returns at most ``sql.max_rows`` rows (more is refused, not cut).
    """
    import pandas as pd
    import sqlalchemy

    conn_id = source.removeprefix("sql://")
    start, end = interval if interval else (None, None)
    engine = sqlalchemy.create_engine(_read_only_url(connection_uri(conn_id)))
    statement = checked_query(query, engine.dialect.name, key=key)
    try:
        with engine.connect() as conn:
            dialect = engine.dialect.name
            if dialect == "postgresql":
                _refuse_privileged_role(conn, conn_id, key, allowed=limits.allow_privileged_role)
            for setup in _SESSION.get(dialect, ()):
                conn.execute(sqlalchemy.text(setup.format(ms=limits.timeout_seconds * 1000)))
            if dialect == "sqlite":
                _sqlite_deadline(conn, limits.timeout_seconds)
            try:
                result = conn.execution_options(stream_results=True).execute(
                    sqlalchemy.text(statement), {"interval_start": start, "interval_end": end}
                )
                columns: list[str] = list(result.keys())
                rows: list[Any] = []
                while chunk := result.fetchmany(50_000):
                    rows.extend(chunk)
                    if len(rows) > limits.max_rows:
                        result.close()
                        raise DataError(
                            f"Policy key '{key}' returned more than {limits.max_rows:,} rows (sql.max_rows) on "
                            f"connection {conn_id!r}; narrow the query, or raise the cap if the data is meant to be "
                            "that large."
                        )
                return pd.DataFrame.from_records(rows, columns=columns)
            finally:
                conn.rollback()
    except (sqlalchemy.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = getattr(exc, "orig", None) or getattr(exc.__cause__, "orig", None) or exc
        said = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if "statement timeout" in said or "interrupted" in said:
            said += f" (sql.timeout_seconds: {limits.timeout_seconds})"
        raise DataError(f"Policy key '{key}' failed on connection {conn_id!r}: {said}") from None
    finally:
        engine.dispose()


# What each database is told before a source's query: a read-only transaction and a statement timeout
# (SQLite: query_only and a progress handler, see _sqlite_deadline; others: rolled back, never committed).
_SESSION = {
    "postgresql": ("SET TRANSACTION READ ONLY", "SET LOCAL statement_timeout = {ms}"),
    "mysql": ("SET TRANSACTION READ ONLY", "SET SESSION max_execution_time = {ms}"),
    "mariadb": ("SET TRANSACTION READ ONLY", "SET SESSION max_statement_time = {ms} / 1000"),
    "sqlite": ("PRAGMA query_only = ON",),
}
# Functions a source's query may not call: they read or write the server's files, run programs, reach
# other sessions or servers, change settings, or only wait (a SELECT can call any function its role may).
FORBIDDEN_FUNCTIONS = frozenset(
    {
        # PostgreSQL
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_ls_logdir", "pg_ls_waldir",
        "pg_ls_tmpdir", "pg_ls_archive_statusdir", "lo_import", "lo_export", "lo_from_bytea", "lo_put", "lo_create",
        "lo_unlink", "pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_logdir_ls", "pg_terminate_backend",
        "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_promote", "pg_switch_wal",
        "pg_create_restore_point", "set_config", "dblink", "dblink_exec", "dblink_connect", "dblink_send_query",
        "pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_advisory_lock", "pg_advisory_xact_lock",
        "pg_notify", "txid_current", "nextval", "setval",
        # MySQL / MariaDB
        "load_file", "sleep", "benchmark", "get_lock",
        # SQLite
        "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer",
    }
)  # fmt: skip
_SQLGLOT_DIALECT = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}


def checked_query(query: str, dialect: str, *, key: str) -> str:
    """``query`` if it is one read-only ``SELECT`` (see :func:`read_sql`), else :class:`DataError` naming why.

    Parsed with sqlglot in the connection's dialect: a ``;`` inside a string or a comment is no second
    statement, and a statement hidden in a ``WITH`` is found.
    """
    import sqlglot
    from sqlglot import exp

    text = query.strip()
    try:
        parsed = [t for t in sqlglot.parse(text, read=_SQLGLOT_DIALECT.get(dialect)) if t is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise DataError(
            f"Policy key '{key}' is not SQL Fairgate can read ({str(exc).splitlines()[0][:200]}); a source is one "
            "SELECT."
        ) from None
    if len(parsed) != 1:
        raise DataError(
            f"Policy key '{key}' holds {len(parsed)} SQL statements; a source is read with one SELECT, nothing else "
            "runs."
        )
    tree = parsed[0]
    if not isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
        raise DataError(
            f"Policy key '{key}' is a {tree.key.upper()} statement; a source is read with one SELECT (or WITH ... "
            "SELECT), nothing else runs."
        )
    writes = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command, exp.Copy)
    for node in tree.walk():
        if isinstance(node, writes):
            raise DataError(f"Policy key '{key}' holds a {node.key.upper()} inside its SELECT; a source only reads.")
        if isinstance(node, exp.Into):
            raise DataError(f"Policy key '{key}' is a SELECT ... INTO, which creates a table; a source only reads.")
        if isinstance(node, exp.Lock):
            raise DataError(f"Policy key '{key}' locks rows (FOR UPDATE / FOR SHARE); a source only reads.")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in FORBIDDEN_FUNCTIONS:
                raise DataError(
                    f"Policy key '{key}' calls {name}(), which reaches beyond the rows a source reads (the "
                    "server's files or programs, other sessions, settings, or waiting); it is not run."
                )
    return text.removesuffix(";").strip()


_PRIVILEGED_ROLES = ("pg_read_server_files", "pg_write_server_files", "pg_execute_server_program", "pg_signal_backend")
_ROLE_QUERY = (
    "SELECT current_user, rolsuper, pg_has_role(current_user, 'pg_read_server_files', 'MEMBER'), "
    "pg_has_role(current_user, 'pg_write_server_files', 'MEMBER'), "
    "pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER'), "
    "pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') FROM pg_roles WHERE rolname = current_user"
)


def _refuse_privileged_role(conn: Any, conn_id: str, key: str, *, allowed: bool) -> None:
    """A PostgreSQL role that can reach the server's files or programs, or other sessions, reads nothing."""
    import sqlalchemy

    row = conn.execute(sqlalchemy.text(_ROLE_QUERY)).first()
    conn.rollback()
    if row is None or allowed:
        return
    held = (
        ["a superuser"]
        if row[1]
        else [f"a member of {r}" for r, m in zip(_PRIVILEGED_ROLES, row[2:], strict=True) if m]
    )
    if held:
        raise DataError(
            f"Policy key '{key}': connection {conn_id!r} reads as role {row[0]!r}, which is {' and '.join(held)}: "
            "a query run as it could read or write the database server's files, run programs there or end other "
            "sessions. Connect as a role that may only SELECT the tables the query reads (docs/own-data.md, "
            "'A role for SQL sources'), or set sql.allow_privileged_role: true."
        )


def _sqlite_deadline(conn: Any, seconds: int) -> None:
    """SQLite has no statement timeout: a progress handler interrupts the query once ``seconds`` have passed."""
    import time

    deadline = time.monotonic() + seconds
    raw = conn.connection.dbapi_connection
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)


def _read_only_url(url: str) -> str:
    """A SQLite URL opened read-only (``mode=ro``: nothing, not even ATTACH or VACUUM INTO, can write);
    any other URL as it is."""
    import sqlalchemy

    parsed = sqlalchemy.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return url
    database = parsed.database if parsed.database.startswith("file:") else f"file:{parsed.database}"
    return parsed.set(database=database, query={**parsed.query, "mode": "ro", "uri": "true"}).render_as_string(
        hide_password=False
    )


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
