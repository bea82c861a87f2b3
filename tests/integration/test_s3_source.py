"""An ``s3://`` data source and incoming feed, read over HTTP from the S3 endpoint on loopback."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pytest
from tests.support.policies import default_policy_dict

from fairgate.data.sources import read_source, use_s3_client
from fairgate.errors import DataError
from fairgate.policy.loader import parse_policy


@pytest.fixture(autouse=True)
def outside_airflow(monkeypatch):
    """Each test starts as the CLI would: boto3's standard configuration, no Airflow connection installed."""
    from fairgate.data import sources as data

    monkeypatch.setattr(data, "_s3_client", None)


@pytest.fixture
def partitions(adult, s3_client, bucket):
    """Adult's first 2,000 rows as ten daily CSV partitions under s3://bucket/applications/."""
    days = [date(2026, 3, 1) + timedelta(days=i) for i in range(10)]
    rows = adult.head(2000)
    for i, day in enumerate(days):
        buf = io.StringIO()
        rows.iloc[i * 200 : (i + 1) * 200].to_csv(buf, index=False)
        s3_client.put_object(Bucket=bucket, Key=f"applications/date={day}/part.csv", Body=buf.getvalue().encode())
    s3_client.put_object(Bucket=bucket, Key="applications/README.txt", Body=b"not data")
    return rows, days


def _policy(bucket, **dataset):
    raw = default_policy_dict()
    raw["dataset"].update({"source": f"s3://{bucket}/applications", "partitioned": True, **dataset})
    return parse_policy(raw)


def test_partitions_on_s3_are_read_by_the_runs_interval_with_boto3s_standard_config(
    partitions, bucket, s3_env, monkeypatch
):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env)
    rows, _days = partitions
    interval = (datetime(2026, 3, 3, tzinfo=UTC), datetime(2026, 3, 6, tzinfo=UTC))
    got = read_source(_policy(bucket, filters=[{"column": "sex", "op": "==", "value": "Female"}]), interval=interval)
    expected = rows.iloc[2 * 200 : 5 * 200]
    assert sorted(got["row_id"]) == sorted(expected[expected["sex"] == "Female"]["row_id"])


def test_the_airflow_connection_reaches_the_bucket(partitions, bucket, s3_env, tmp_path, monkeypatch):
    """In a task, the client comes from the store's Airflow connection (FAIRGATE_AWS_CONN_ID), not the environment."""
    from fairgate_airflow.settings import artifact_store

    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", str(tmp_path / "store"))
    artifact_store()  # what every stage calls first
    try:
        assert len(read_source(_policy(bucket, partitioned=False))) == 2000
    finally:
        use_s3_client(None)


def test_a_missing_prefix_and_an_unreadable_object_are_named(partitions, bucket, s3_client, s3_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env)
    raw = default_policy_dict()
    raw["dataset"]["source"] = f"s3://{bucket}/nothing-here"
    with pytest.raises(DataError, match=r"'dataset.source': no csv objects under s3://.*/nothing-here"):
        read_source(parse_policy(raw))
    s3_client.put_object(Bucket=bucket, Key="broken/part.parquet", Body=b"not parquet")
    raw["dataset"].update({"source": f"s3://{bucket}/broken", "format": "parquet"})
    with pytest.raises(DataError, match=r"Cannot read s3://.*/broken/part.parquet as parquet"):
        read_source(parse_policy(raw))


def test_an_incoming_feed_on_s3_is_scored_by_day(partitions, bucket, s3_env, monkeypatch):
    from fairgate.monitoring.prediction_log import incoming

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env)
    rows, days = partitions
    raw = default_policy_dict()
    raw["audit"]["incoming"] = f"s3://{bucket}/applications"
    policy = parse_policy(raw)
    assert list(incoming(policy, days[4])["row_id"]) == list(rows.iloc[800:1000]["row_id"])
