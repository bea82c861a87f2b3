"""Cost of MLflow: tracking one lifecycle run, and serving the production model over HTTP.

One lifecycle run on the bundled Adult data (loose thresholds, so it deploys; logistic regression,
14 inputs) in a throw-away store. Then:

- tracking: the `track_mlflow` step for that run (an MLflow run with its params, metrics and pages,
  the pyfunc version, the alias), against the embedded SQLite store and against a real
  `mlflow server` on the local PostgreSQL (skipped when PostgreSQL is not running);
- serving: `mlflow models serve -m models:/adult_income@production`, one persistent HTTP connection,
  p50 / p99 of 1-record and 1,000-record requests, with and without reasons in the answer (every
  decision is logged, with its reasons, either way); beside it the same answer in process (no HTTP,
  not logged), and the model's bare `predict_proba`.

    python benchmarks/mlflow_serving.py [REQUESTS_OF_1] [REQUESTS_OF_1000]     default: 300 40
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOOSE = {
    "disparate_impact": {"kind": "ratio_band", "min": 0.05, "max": 20.0},
    "statistical_parity_difference": {"kind": "abs_difference", "max": 0.9},
    "equal_opportunity_difference": {"kind": "abs_difference", "max": 0.9},
    "average_odds_difference": {"kind": "abs_difference", "max": 0.9},
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer in {timeout:.0f} s")


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def _track(store, policy, uri: str) -> float:
    from fairgate.integrations import tracking

    t0 = time.perf_counter()
    out = tracking.track(store, policy, uri=uri, run_id="release")
    assert out.logged, out
    return time.perf_counter() - t0


def _postgres_server(tmp: Path) -> tuple[subprocess.Popen, str, str] | None:
    try:
        import psycopg2

        conn = psycopg2.connect(dbname="postgres", host="127.0.0.1", user="postgres", connect_timeout=3)
    except Exception:
        return None
    db = f"fairgate_mlflow_bench_{os.getpid()}"
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {db}")
    port = _port()
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
            "--artifacts-destination",
            (tmp / "pg-artifacts").as_uri(),
        ],
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait(f"http://127.0.0.1:{port}/health", proc)
    return proc, f"http://127.0.0.1:{port}", db


def main(argv: list[str]) -> int:
    import pandas as pd

    from fairgate.governance import registry
    from fairgate.integrations import serving
    from fairgate.models import training
    from fairgate.policy.loader import load_policy
    from fairgate.stages import lifecycle
    from fairgate.stages.lifecycle import RunInfo
    from fairgate.storage.local import LocalStore

    singles, batches = (int(argv[0]) if argv else 300), (int(argv[1]) if len(argv) > 1 else 40)
    tmp = Path(tempfile.mkdtemp(prefix="fairgate-bench-"))
    raw = yaml.safe_load((REPO / "include" / "config" / "policy.yaml").read_text())
    raw.pop("mitigation", None)
    raw["fairness"]["thresholds"] = LOOSE
    (tmp / "policy.yaml").write_text(yaml.safe_dump(raw))
    policy = load_policy(tmp / "policy.yaml")
    store = LocalStore(tmp / "store")
    t0 = time.perf_counter()
    assert lifecycle.run_in_process(store, policy, RunInfo(dag_id="bench", run_id="release")).decision == "deployed"
    lifecycle_s = time.perf_counter() - t0

    embedded = f"sqlite:///{tmp}/.mlflow/mlflow.db"
    (tmp / ".mlflow").mkdir()
    print("Tracking one lifecycle run (MLflow run, pages, pyfunc version, alias):")
    print(f"  the lifecycle itself, in process:       {lifecycle_s:6.2f} s")
    print(f"  track_mlflow, embedded SQLite (first):  {_track(store, policy, embedded):6.2f} s")
    print(f"  track_mlflow again (already there):     {_track(store, policy, embedded):6.2f} s")
    pg = _postgres_server(tmp)
    if pg:
        proc, url, db = pg
        try:
            print(f"  track_mlflow, mlflow server + PostgreSQL: {_track(store, policy, url):6.2f} s")
        finally:
            os.killpg(proc.pid, 15)  # the server and the job consumers it starts
            proc.wait(30)
            import psycopg2

            conn = psycopg2.connect(dbname="postgres", host="127.0.0.1", user="postgres")
            conn.autocommit = True
            conn.cursor().execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    else:
        print("  (PostgreSQL not running: the mlflow server row is skipped)")

    port = _port()
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{policy.model_name}@production",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env={
            **os.environ,
            "MLFLOW_TRACKING_URI": embedded,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "FAIRGATE_ARTIFACT_ROOT": str(store.root),  # the server checks the evidence and logs there
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/ping", proc)
        data = pd.read_parquet(tmp / "store" / "runs" / "bench" / "release" / "snapshot.parquet")
        records = json.loads(
            data[list(dict.fromkeys([policy.dataset.row_key, *policy.features, *policy.protected_columns]))]
            .head(1000)
            .to_json(orient="records")
        )
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def post(rows: list[dict], reasons: bool) -> float:
            body = json.dumps({"dataframe_records": rows, "params": {"reasons": reasons}})
            t = time.perf_counter()
            conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            payload = resp.read()
            elapsed = time.perf_counter() - t
            assert resp.status == 200, payload[:300]
            return elapsed * 1000

        for _ in range(20):  # warm-up
            post(records[:1], True)
        print(f"\nServing models:/{policy.model_name}@production over HTTP (one connection, ms):")
        print(f"  {'records':>8} {'reasons':>8} {'p50':>8} {'p99':>8} {'requests':>9}")
        figures = {}
        for size, count in ((1, singles), (1000, batches)):
            for reasons in (False, True):
                times = [
                    post(records[i % len(records) : i % len(records) + size] if size == 1 else records[:size], reasons)
                    for i in range(count)
                ]
                figures[(size, reasons)] = _pct(times, 50)
                print(
                    f"  {size:>8} {'yes' if reasons else 'no':>8} {_pct(times, 50):8.1f} {_pct(times, 99):8.1f} "
                    f"{count:>9}"
                )
        print(
            f"  (every decision is logged with its reasons either way; a 1,000-record answer takes "
            f"{figures[(1000, False)]:.1f} ms without them in the answer, {figures[(1000, True)]:.1f} ms with)"
        )
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)

    version = registry.production_version(store, policy.model_name)
    folder = serving.write_bundle(store, policy, version, tmp / "served")
    served = serving.load({f: str(folder / f) for f in serving.FILES}, version=version)
    frame = pd.DataFrame(records)
    print("\nThe same 1,000 records in process (no HTTP, ms, median of 10):")
    for label, fn in (
        ("predict_proba alone", lambda: training.predict(served.model, frame, policy)),
        ("answer without reasons", lambda: serving.answer(served, frame, reasons=False)),
        ("answer with reasons", lambda: serving.answer(served, frame, reasons=True)),
    ):
        times = []
        for _ in range(10):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        print(f"  {label:<24} {statistics.median(times):8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
