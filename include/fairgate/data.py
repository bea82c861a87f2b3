"""Read the policy's data source and turn it into an immutable Parquet snapshot."""

from __future__ import annotations

import io
import logging
import re
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from fairgate.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

    from fairgate.policy import Policy

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(str(resources.files("fairgate").joinpath("data")))  # package data, also in a wheel
ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
    "native_country", "income",
]
PARTITION_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


class DataError(InputError):
    """The source cannot be read, or what it holds cannot be used."""


def read_adult(split: str = "data") -> pd.DataFrame:
    """UCI Adult as shipped with Fairgate: rows with a missing value (``?``) dropped.

    ``split="data"`` is the 32,561-row training file (30,162 complete rows); ``"test"`` the
    16,281-row test file (15,060 complete rows), whose labels lose their trailing period.
    A ``row_id`` column (``<split>-<line>``) identifies each row.
    """
    import pandas as pd

    if split not in ("data", "test"):
        raise DataError(f"Adult split must be 'data' or 'test'. Got {split!r}.")
    path = BUNDLED_DIR / "adult" / f"adult.{split}.gz"
    df = pd.read_csv(
        path, header=None, names=ADULT_COLUMNS, skiprows=1 if split == "test" else 0,
        skipinitialspace=True, na_values="?", compression="gzip",
    )
    df.insert(0, "row_id", [f"{split}-{i}" for i in range(len(df))])
    df = df.dropna().reset_index(drop=True)
    df["income"] = df["income"].str.rstrip(".")
    for col in ("age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"):
        df[col] = df[col].astype("int64")
    return df


def read_source(policy: Policy, *, interval: tuple[datetime, datetime] | None = None) -> pd.DataFrame:
    """Read the policy's ``dataset.source``; for a partitioned source, only the run's interval.

    ``interval`` is ``[start, end)``; a partition ``date=D`` is read when ``start <= D < end``.
    """
    source = policy.source
    if source == "bundled://adult":
        return read_adult("data")
    if source.startswith("bundled://"):
        raise DataError(f"Policy key 'dataset.source': unknown bundled dataset {source!r} "
                        "(available: bundled://adult).")
    if source.startswith("s3://"):
        raise DataError("Policy key 'dataset.source': s3:// sources are read through the S3 artifact "
                        "store; copy the data there or use a local path.")
    path = Path(source.removeprefix("file://"))
    if not path.exists():
        raise DataError(f"Policy key 'dataset.source': {path} does not exist.")
    files = _partition_files(path, policy, interval) if policy.partitioned else _plain_files(path, policy)
    if not files:
        where = f" for {interval[0].date()}..{interval[1].date()}" if interval and policy.partitioned else ""
        raise DataError(f"Policy key 'dataset.source': no {policy.format} files under {path}{where}.")
    return _concat([_read_file(f, policy.format) for f in files])


def _plain_files(path: Path, policy: Policy) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob(f"*.{policy.format}") if p.is_file())


def _partition_files(path: Path, policy: Policy, interval: tuple[datetime, datetime] | None) -> list[Path]:
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
        files.extend(sorted(child.glob(f"*.{policy.format}")))
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


