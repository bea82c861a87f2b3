"""What checking production against the evidence costs: ``approval.production`` against the chain's length.

Every scoring run, server start, MLflow alias sync, bundle and ``fairgate status`` asks
``approval.production``, which re-hashes the model's whole chain up to HEAD and reads it back to
find the record that put the pointer's version there. This measures that on a local store and on
S3 over HTTP (a moto server on loopback), with a deployment followed by N audit-sized records
(~1 KB each), with and without an evidence key.

    python benchmarks/approval.py [RECORDS ...]     default: 10 365 3650
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

AUDIT = {
    "kind": "audit",
    "status": "healthy",
    "reasons": [],
    "policy_sha256": "ab" * 32,
    "code_version": "bench",
    "judged_version": None,
    "model_versions": [],
    "audit_uri": "file:///bench/audit.json",
    "audit_sha256": "cd" * 32,
    "padding": "x" * 700,  # an audit record's size
}


def _store(kind: str, tmp: Path):
    from fairgate.storage.local import LocalStore

    if kind == "local":
        return LocalStore(tmp / "store"), None
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    client = boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )
    bucket = f"bench-{uuid.uuid4().hex[:8]}"  # moto keeps its buckets for the whole process: a new one each time
    client.create_bucket(Bucket=bucket)
    from fairgate.storage.s3 import S3Store

    return S3Store(f"s3://{bucket}/fairgate", client=client), server


def measure(kind: str, records: int, signed: bool) -> tuple[float, float]:
    """Seconds of one ``approval.production`` (median of 5) and of one append, at ``records`` records."""
    from fairgate.governance import approval, evidence, registry

    if signed:
        os.environ["FAIRGATE_EVIDENCE_KEY"] = "bench-key"
    else:
        os.environ.pop("FAIRGATE_EVIDENCE_KEY", None)
    with tempfile.TemporaryDirectory() as tmp:
        store, server = _store(kind, Path(tmp))
        try:
            manifest = {"approved": True, "gate_outcome": "pass", "registered_at": "t"}
            v = registry.register(store, "m", b"model", manifest)["version"]
            approval.deploy_recorded(
                store, "m", v, run_id="r", dag_id="b", gate_outcome="pass", replaces=None, approver="b"
            )
            started = time.perf_counter()
            for i in range(records):
                evidence.append(store, "m", {**AUDIT, "run_id": f"a{i}", "date": f"d{i}"})
            append_s = (time.perf_counter() - started) / max(records, 1)
            runs = []
            for _ in range(5):
                t = time.perf_counter()
                assert approval.production(store, "m").version == v
                runs.append(time.perf_counter() - t)
            return statistics.median(runs), append_s
        finally:
            if server is not None:
                server.stop()


def main(argv: list[str]) -> int:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    sizes = [int(a) for a in argv] or [10, 365, 3650]
    print(f"{'store':6} {'records':>8} {'key':>4} {'production() s':>15} {'per record ms':>14} {'append ms':>10}")
    for kind in ("local", "s3"):
        for n in sizes:
            for signed in (False, True):
                seconds, append = measure(kind, n, signed)
                print(
                    f"{kind:6} {n + 1:>8} {'yes' if signed else 'no':>4} {seconds:>15.3f} "
                    f"{seconds / (n + 1) * 1000:>14.3f} {append * 1000:>10.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
