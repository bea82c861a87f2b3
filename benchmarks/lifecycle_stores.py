"""Wall time of one ``fairgate_lifecycle`` run (dag.test, Adult, deploy outcome) per artifact store.

    .venv/bin/python benchmarks/lifecycle_stores.py

Runs once on the local store to warm imports, then times the local store and an S3 endpoint
on loopback (moto server; a real S3 or MinIO adds network latency on top). Last line is JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import yaml

from fairgate_dev.local import REPO, configure

LOOSE = {"disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20.0}}


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="fairgate-bench-"))
    configure(tmp / "home")
    policy = yaml.safe_load((REPO / "include/config/policy.yaml").read_text())
    policy["fairness"]["thresholds"] = LOOSE
    (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
    os.environ["FAIRGATE_POLICY"] = str(tmp / "policy.yaml")

    import boto3
    from moto.server import ThreadedMotoServer

    from fairgate_dev.local import init_db, load_dag

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        FAIRGATE_AWS_CONN_ID="bench_s3",
        AIRFLOW_CONN_BENCH_S3=json.dumps(
            {"conn_type": "aws", "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
        ),
    )
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
    init_db()
    dag = load_dag("fairgate_lifecycle")

    times = {}
    for label, root in [("warm-up", tmp / "warm"), ("local", tmp / "local"), ("s3", "s3://bench/fairgate")]:
        os.environ["FAIRGATE_ARTIFACT_ROOT"] = str(root)
        t = time.perf_counter()
        dr = dag.test()
        times[label] = time.perf_counter() - t
        assert dr.state == "success", dr.state
        print(f"{label:8s} {times[label]:6.1f} s", flush=True)
    server.stop()
    print(json.dumps({"local_s": round(times["local"], 2), "s3_loopback_s": round(times["s3"], 2)}))


if __name__ == "__main__":
    main()
