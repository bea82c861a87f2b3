"""``fairgate_lifecycle`` end to end with an ``s3://`` artifact root, through the Airflow connection."""

from __future__ import annotations

import pytest
from tests.support.dags import run_dag
from tests.support.policies import LOOSE

from fairgate.governance import evidence, registry
from fairgate.storage.base import sha256_bytes
from fairgate.storage.s3 import S3Store

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(300)]


def test_lifecycle_on_s3_writes_every_artifact_with_its_hash(
    lifecycle_dag, s3_client, bucket, monkeypatch, write_policy
):
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", f"s3://{bucket}/fairgate")
    write_policy({"fairness.thresholds": LOOSE})
    dr = run_dag(lifecycle_dag)
    assert dr.state == "success"

    store = S3Store(f"s3://{bucket}/fairgate", client=s3_client)
    rec = evidence.find(store, "adult_income", dr.run_id)["record"]
    assert rec["decision"] == "deployed"
    recorded = {
        rec["data"]["uri"]: rec["data"]["sha256"],
        rec["model"]["uri"]: rec["model"]["sha256"],
        rec["search"]["uri"]: None,
        rec["gate"]["uri"]: None,
        rec["report"]["uri"]: rec["report"]["sha256"],
        rec["model_card"]["uri"]: rec["model_card"]["sha256"],
    }
    for c in rec["search"]["candidates"]:  # every candidate's model and validation figures
        recorded[c["model"]["uri"]] = c["model"]["sha256"]
        recorded[c["result"]["uri"]] = c["result"]["sha256"]
        if c["weights"]:
            recorded[c["weights"]["uri"]] = c["weights"]["sha256"]
    listed = {
        o["Key"]
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    }
    for uri, sha in recorded.items():
        assert uri.startswith(f"s3://{bucket}/fairgate/")
        assert uri.removeprefix(f"s3://{bucket}/") in listed, uri
        if sha:
            assert sha256_bytes(store.get(store.key_of(uri))) == sha, uri
    version = registry.production_version(store, "adult_income")
    assert version == rec["model"]["sha256"]
    assert f"fairgate/registry/adult_income/versions/{version}/model.skops" in listed
    assert evidence.verify(store, "adult_income").ok
    # The release bundle from the S3 store: every member read over HTTP, verified offline.
    from fairgate.governance import bundle

    data = bundle.build(store, "adult_income", version)
    check = bundle.verify(data)
    assert check.ok, check.problems
    seq = rec_seq(store, dr.run_id)  # the run's lifecycle record, after its deployment record
    assert check.index["notes"] == [] and check.index["release_records"] == [seq - 1, seq]


def rec_seq(store, run_id):
    return evidence.find(store, "adult_income", run_id)["seq"]
