"""What must not go wrong on S3: a killed upload, a replaced model file, a forged evidence record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from fairgate.errors import ModelIntegrityError
from fairgate.governance import approval, registry
from fairgate.storage.s3 import S3Store

pytestmark = pytest.mark.integration

UPLOADER = textwrap.dedent("""
    import sys, time, boto3
    from botocore.config import Config
    from fairgate.storage.s3 import S3Store
    endpoint, bucket, pause = sys.argv[1], sys.argv[2], sys.argv[3] == "pause"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          config=Config(s3={"addressing_style": "path"}))
    parts = {"n": 0}
    def after_part(**kwargs):
        parts["n"] += 1
        if pause and parts["n"] == 1:
            print("one part uploaded", flush=True)
            time.sleep(60)
    client.meta.events.register("after-call.s3.UploadPart", after_part)
    S3Store(f"s3://{bucket}/p", client=client, multipart_threshold=1024).put("big.bin", b"x" * (20 * 1024 * 1024))
    print("done", flush=True)
""")


def test_worker_killed_mid_upload_leaves_no_object_and_a_rerun_completes(s3_env, s3_client, bucket):
    env = {**os.environ}
    proc = subprocess.Popen(
        [sys.executable, "-c", UPLOADER, s3_env, bucket, "pause"], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "one part uploaded"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    store = S3Store(f"s3://{bucket}/p", client=s3_client)
    assert not store.exists("big.bin")
    # The orphaned upload is invisible; a bucket lifecycle rule (AbortIncompleteMultipartUpload) reclaims it.
    assert len(s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    out = subprocess.run(
        [sys.executable, "-c", UPLOADER, s3_env, bucket, "go"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.stdout.strip() == "done", out.stderr
    assert store.get("big.bin") == b"x" * (20 * 1024 * 1024)


@pytest.fixture
def deployed_s3(s3_store, adult):
    from fairgate.models.training import dump_model, fit
    from fairgate.policy.loader import load_policy

    data = dump_model(fit(adult.head(3000), load_policy()))
    v = registry.register(s3_store, "m", data, {"approved": True, "registered_at": "1"})["version"]
    approval.deploy_recorded(s3_store, "m", v, run_id="r", dag_id="t", gate_outcome="pass", replaces=None, approver="t")
    return s3_store, v


def test_replaced_model_file_is_refused_and_the_version_named(deployed_s3):
    import pickle

    store, v = deployed_s3
    assert registry.load_model(store, "m", v) is not None
    store.put(f"registry/m/versions/{v}/model.skops", pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelIntegrityError, match=f"m version {v[:12]} .* does not match the recorded"):
        registry.load_model(store, "m", v)


def test_cli_rollback_and_verify_log_on_s3(deployed_s3, monkeypatch, s3_env, capsys, write_policy):
    from fairgate.cli.main import main
    from fairgate.governance import evidence

    store, v1 = deployed_s3
    write_policy({"model_name": "m"})
    v2 = registry.register(store, "m", b"second", {"approved": True, "registered_at": "2"})["version"]
    approval.deploy_recorded(store, "m", v2, run_id="r2", dag_id="t", gate_outcome="pass", replaces=v1, approver="t")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env)
    monkeypatch.setenv("FAIRGATE_ARTIFACT_ROOT", store.root_uri)
    assert main(["rollback", "--reason", "nightly audit degraded", "--json"]) == 0
    moved = json.loads(capsys.readouterr().out)
    assert (moved["from_version"], moved["to_version"]) == (v2, v1)
    assert registry.production_version(store, "m") == v1
    assert main(["verify-log"]) == 0
    entry = json.loads(store.get("evidence/m/records/0000000001.json"))
    entry["record"]["reason"] = "edited later"
    store.put("evidence/m/records/0000000001.json", json.dumps(entry).encode())
    capsys.readouterr()
    assert main(["verify-log"]) == 2
    assert "content does not match its hash" in capsys.readouterr().out
    assert not evidence.verify(store, "m").ok
