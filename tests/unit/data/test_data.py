"""Reading sources: the bundled Adult file, plain files, and date partitions by interval."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.support.policies import default_policy_dict

from fairgate.data.adult import read_adult
from fairgate.data.sources import read_source
from fairgate.errors import DataError
from fairgate.policy.loader import parse_policy


def test_bundled_adult_matches_its_documentation():
    train, test = read_adult("data"), read_adult("test")
    # 32,561 and 16,281 raw rows; 45,222 complete rows across both files
    assert len(train) == 30162 and len(test) == 15060 and len(train) + len(test) == 45222
    assert set(train["income"]) == set(test["income"]) == {"<=50K", ">50K"}
    assert train["row_id"].is_unique


def _policy(source, **ds):
    raw = default_policy_dict()
    raw["dataset"].update({"source": str(source), **ds})
    return parse_policy(raw)


def test_partitions_are_read_by_interval(tmp_path, adult):
    for i, day in enumerate(["2026-01-01", "2026-01-02", "2026-01-03"]):
        part = tmp_path / f"date={day}"
        part.mkdir()
        adult.iloc[i * 100 : (i + 1) * 100].to_parquet(part / "part-0.parquet")
    policy = _policy(tmp_path, format="parquet", partitioned=True)
    df = read_source(policy, interval=(datetime(2026, 1, 2, tzinfo=UTC), datetime(2026, 1, 4, tzinfo=UTC)))
    assert list(df["row_id"]) == list(adult["row_id"].iloc[100:300])
    with pytest.raises(DataError, match="no parquet files under .* for 2026-02-01..2026-02-02"):
        read_source(policy, interval=(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 2, tzinfo=UTC)))


def test_missing_source_is_named(tmp_path):
    with pytest.raises(DataError, match=r"'dataset.source': .*nope.csv does not exist"):
        read_source(_policy(tmp_path / "nope.csv"))


def test_csv_source(tmp_path, adult):
    path = tmp_path / "mine.csv"
    adult.drop(columns=["race"]).head(50).to_csv(path, index=False)
    df = read_source(_policy(path))
    assert len(df) == 50 and "race" not in df.columns  # the quality gate names the missing column


def test_unreadable_file_is_named(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="broken.parquet as parquet"):
        read_source(_policy(path, format="parquet"))


def test_row_filters_keep_what_they_say_and_name_a_missing_column(tmp_path, adult):
    from fairgate.data.sources import apply_filters
    from fairgate.policy.schema import RowFilter

    df = adult.head(400)
    kept = apply_filters(
        df,
        (
            RowFilter(column="workclass", op="in", value=["Private", "State-gov"]),
            RowFilter(column="age", op=">=", value=30),
            RowFilter(column="native_country", op="not_null", value=None),
        ),
    )
    by_hand = df[df["workclass"].isin(["Private", "State-gov"]) & (df["age"] >= 30)]
    assert list(kept["row_id"]) == list(by_hand["row_id"]) and 0 < len(kept) < len(df)
    with pytest.raises(DataError, match=r"'dataset.filters\[0\].column': 'agee' is not a column"):
        apply_filters(df, (RowFilter(column="agee", op=">", value=1),))
    with pytest.raises(DataError, match=r"'dataset.filters\[0\]': cannot compare column 'workclass'"):
        apply_filters(df, (RowFilter(column="workclass", op=">", value=1),))
