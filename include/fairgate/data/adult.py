"""The data shipped with Fairgate: UCI Adult (CC BY 4.0), for the demo and the tests."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from fairgate.errors import DataError
from fairgate.policy.bundled import ADULT_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

BUNDLED_DIR = Path(str(resources.files("fairgate").joinpath("data")))  # package data, also in a wheel


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
        path,
        header=None,
        names=ADULT_COLUMNS,
        skiprows=1 if split == "test" else 0,
        skipinitialspace=True,
        na_values="?",
        compression="gzip",
    )
    df.insert(0, "row_id", [f"{split}-{i}" for i in range(len(df))])
    df = df.dropna().reset_index(drop=True)
    df["income"] = df["income"].str.rstrip(".")
    for col in ("age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"):
        df[col] = df[col].astype("int64")
    return df
