"""The S3 backend through boto3 over HTTP to a loopback S3 endpoint: same rules as the local store."""

from __future__ import annotations

import pytest

from fairgate.errors import NotFoundError
from fairgate.storage.base import sha256_bytes
from fairgate.storage.s3 import S3Store, StoreConfigError

pytestmark = pytest.mark.integration


def test_round_trip_list_and_uris(s3_store):
    w = s3_store.put("runs/a/x.bin", b"hello")
    assert w.uri == f"{s3_store.root_uri}/runs/a/x.bin" and w.sha256 == sha256_bytes(b"hello")
    assert s3_store.get("runs/a/x.bin") == b"hello"
    assert s3_store.key_of(w.uri) == "runs/a/x.bin"
    s3_store.put("runs/b/y.bin", b"y")
    assert s3_store.list("runs/") == ["runs/a/x.bin", "runs/b/y.bin"]
    assert s3_store.list("runs/a") == ["runs/a/x.bin"]
    assert s3_store.exists("runs/a/x.bin") and not s3_store.exists("runs/none")
    with pytest.raises(NotFoundError):
        s3_store.get("runs/none")


def test_multipart_upload_is_whole_or_absent(s3_client, bucket):
    store = S3Store(f"s3://{bucket}/p", client=s3_client, multipart_threshold=1024)
    big = bytes(range(256)) * (40 * 1024)  # 10 MiB: two parts
    assert store.put("big.bin", big).sha256 == sha256_bytes(big)
    assert store.get("big.bin") == big

    calls = {"n": 0}

    def fail_second_part(params, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("worker lost mid-upload")

    s3_client.meta.events.register("before-call.s3.UploadPart", fail_second_part)
    try:
        with pytest.raises(ConnectionError):
            store.put("half.bin", big)
    finally:
        s3_client.meta.events.unregister("before-call.s3.UploadPart", fail_second_part)
    assert not store.exists("half.bin")
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_deterministic_errors_say_what_to_fix(s3_client):
    with pytest.raises(StoreConfigError, match="Bucket 'no-such-bucket' does not exist"):
        S3Store("s3://no-such-bucket/x", client=s3_client).put("a", b"1")


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **kwargs):
        yield self._body


def _inject(client, failures: int, status: int = 503, code: str = "SlowDown"):
    """Answer the next ``failures`` requests with an S3 error instead of sending them."""
    from botocore.awsrequest import AWSResponse

    left = {"n": failures}
    body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()

    def handler(request, **kwargs):
        if left["n"] > 0:
            left["n"] -= 1
            return AWSResponse(request.url, status, {"Content-Type": "application/xml"}, _Raw(body))
        return None

    client.meta.events.register_first("before-send.s3", handler)
    return handler, left


@pytest.mark.parametrize("status,code", [(503, "SlowDown"), (500, "InternalError")])
def test_transient_errors_are_retried(s3_client, s3_store, status, code):
    handler, left = _inject(s3_client, failures=2, status=status, code=code)
    try:
        s3_store.put("retry/x.bin", b"payload")
    finally:
        s3_client.meta.events.unregister("before-send.s3", handler)
    assert left["n"] == 0 and s3_store.get("retry/x.bin") == b"payload"


def test_faults_beyond_the_retry_budget_fail_and_leave_nothing(s3_client, s3_store):
    handler, _ = _inject(s3_client, failures=100)
    try:
        with pytest.raises(Exception, match="SlowDown"):
            s3_store.put("retry/y.bin", b"payload")
    finally:
        s3_client.meta.events.unregister("before-send.s3", handler)
    assert not s3_store.exists("retry/y.bin")
