"""Time the Fairness view's page over a store with many runs and audits.

    .venv/bin/python benchmarks/fairness_view.py [--models 10] [--runs 1000] [--audits 1000] [--s3]

Fills a temporary local store with ``--models`` models, each with ``--runs`` lifecycle records
(every tenth one deploying a new registered version) and ``--audits`` daily audits (audit.json,
report and evidence record each), all written through Fairgate's own registry, evidence and
audit functions. Then times the overview (the data behind the page) and the rendered page:
the first request after the writes and the median of the next five. ``--s3`` copies the store
to an S3 endpoint on loopback (a moto server in its own process) and times the same there. Last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fairgate.governance import evidence, registry
from fairgate.monitoring import prediction_log
from fairgate.storage.base import ArtifactStore
from fairgate.storage.local import LocalStore

FIRST_DAY = date(2023, 1, 1)


def _fill(store: ArtifactStore, model: str, runs: int, audits: int) -> None:
    fairness = {"sex": {"metrics": {"disparate_impact": {"value": 0.9, "ci_low": 0.85, "ci_high": 0.95}}}}
    days = [FIRST_DAY + timedelta(days=i) for i in range(max(runs, audits))]
    for i, day in enumerate(days):
        if i < runs:
            deployed = i % 10 == 0
            rec: dict[str, Any] = {
                "kind": "lifecycle",
                "dag_id": f"fairgate_lifecycle__{model}",
                "run_id": f"r{i}",
                "decision": "deployed" if deployed else "rejected",
                "recorded_at": datetime.combine(day, datetime.min.time(), UTC).isoformat(),
                "gate": {
                    "outcome": "pass" if deployed else "fail",
                    "reasons": [] if deployed else ["sex: disparate_impact outside"],
                },
            }
            if deployed:
                m = registry.register(
                    store,
                    model,
                    f"{model}-{i}".encode(),
                    {
                        "registered_at": rec["recorded_at"],
                        "gate_outcome": "pass",
                        "approver": None,
                        "approved": True,
                        "performance": {"balanced_accuracy": 0.8},
                        "run_id": f"r{i}",
                        "dag_id": rec["dag_id"],
                    },
                )
                registry.promote(store, model, m["version"], action="deploy", run_id=f"r{i}", actor="bench", reason="")
                rec["model"] = {"sha256": m["version"]}
            evidence.append(store, model, rec)
        if i < audits:
            prediction_log.save_audit(
                store,
                model,
                {
                    "kind": "audit",
                    "run_id": f"a{i}",
                    "date": day.isoformat(),
                    "status": "healthy",
                    "reasons": [],
                    "policy_sha256": "p",
                    "code_version": "bench",
                    "rows": 1000,
                    "labeled_rows": 600,
                    "fairness": fairness,
                },
                report_html="<html></html>",
            )


def _time(store: ArtifactStore, today: date) -> dict[str, float]:
    from fairgate.reporting.overview import overview
    from fairgate.reporting.report import overview_html

    def once() -> tuple[float, float]:
        t = time.perf_counter()
        data = overview(store, today=today)
        mid = time.perf_counter()
        overview_html(data, user="bench")
        return mid - t, time.perf_counter() - t

    first = once()
    rest = [once() for _ in range(5)]
    return {
        "first_overview_ms": round(first[0] * 1000, 1),
        "first_page_ms": round(first[1] * 1000, 1),
        "overview_ms": round(statistics.median(r[0] for r in rest) * 1000, 1),
        "page_ms": round(statistics.median(r[1] for r in rest) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--audits", type=int, default=1000)
    parser.add_argument("--s3", action="store_true")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="fairgate-view-bench-")
    store = LocalStore(root)
    t = time.perf_counter()
    for k in range(args.models):
        _fill(store, f"model_{k:02d}", args.runs, args.audits)
    objects = len(store.list(""))
    print(f"filled {objects:,} objects in {time.perf_counter() - t:.0f} s", flush=True)
    today = FIRST_DAY + timedelta(days=max(args.runs, args.audits))
    out: dict[str, Any] = {
        "models": args.models,
        "runs": args.models * args.runs,
        "audits": args.models * args.audits,
        "objects": objects,
        "local": _time(store, today),
    }
    print("local:", out["local"], flush=True)
    if args.s3:
        import os
        import socket
        import subprocess
        import sys
        from concurrent.futures import ThreadPoolExecutor
        from pathlib import Path

        import boto3

        from fairgate.storage.s3 import S3Store

        with socket.socket() as sock:  # a free port for a moto server in its own process (its own GIL)
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.1)
        for var, value in (
            ("AWS_ACCESS_KEY_ID", "bench"),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ):
            os.environ.setdefault(var, value)
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="bench")
        keys = store.list("")
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda k: client.put_object(Bucket="bench", Key=f"view/{k}", Body=(Path(root) / k).read_bytes()),
                    keys,
                )
            )
        out["s3"] = _time(S3Store("s3://bench/view", client=client), today)
        print("s3 (loopback):", out["s3"], flush=True)
        server.terminate()
        server.wait()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
