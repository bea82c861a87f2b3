"""Served decisions: what logging every answer costs, how many are logged per second, none lost on SIGKILL,
and no failed request while production moves.

Two lifecycle runs on the bundled Adult data (loose thresholds, so both deploy; logistic regression;
two seeds, so two versions) in a throw-away local store. Then, with `mlflow models serve`:

1. latency, one record per request, one persistent connection, each server alone on the machine:
   Fairgate's served model (decision, score, three reasons, the decision written to the prediction
   log before the answer) against the same fitted scikit-learn pipeline saved with `mlflow.sklearn`
   (its `predict` only): p50 / p99;
2. throughput: 4 client threads for ``SECONDS`` against Fairgate's server (2 workers): answers and
   decisions logged per second;
3. SIGKILL under that load: the server's process group is killed mid-stream; every decision a client
   received must be in the log (the log may also hold decisions made but never delivered);
4. production moved under load: a rollback to the first version and back while the 4 clients send;
   failed requests, and whether each client saw the versions change exactly twice.

    python benchmarks/served_decisions.py [REQUESTS] [SECONDS]     default: 500 15
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from mlflow_serving import LOOSE, _port, _wait  # noqa: E402  (the sibling benchmark's helpers)

BIN = Path(sys.executable).parent


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _serve(folder: Path, workers: int, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    port = _port()
    command = [str(BIN / "mlflow"), "models", "serve", "-m", str(folder), "--env-manager", "local"]
    proc = subprocess.Popen(
        [*command, "-h", "127.0.0.1", "-p", str(port), "-w", str(workers)],
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait(f"http://127.0.0.1:{port}/ping", proc, 180)
    return proc, port


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    os.killpg(proc.pid, sig)
    proc.wait(30)


def _post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, dict]:
    conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def _latency(port: int, records: list[dict], n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for i in range(n + 50):  # the first 50 warm up
        body = json.dumps({"dataframe_records": [records[i % len(records)]]}).encode()
        t0 = time.perf_counter()
        status, out = _post(conn, body)
        if status != 200:
            raise SystemExit(f"HTTP {status}: {out}")
        if i >= 50:
            times.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return times


class Clients:
    """4 threads sending one record per request until stopped: what each received, and what failed."""

    def __init__(self, port: int, records: list[dict], tag: str) -> None:
        self.port, self.records, self.tag = port, records, tag
        self.answers: list[list[dict]] = [[] for _ in range(4)]
        self.failed: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(4)]

    def _run(self, i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        n = 0
        while not self.stop.is_set():
            n += 1
            record = {**self.records[(i * 997 + n) % len(self.records)], "row_id": f"{self.tag}-{i}-{n}"}
            try:
                status, out = _post(conn, json.dumps({"dataframe_records": [record]}).encode())
            except (OSError, http.client.HTTPException) as exc:
                if not self.stop.is_set():
                    self.failed.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            if status == 200:
                self.answers[i].append(out["predictions"][0])
            else:
                self.failed.append(f"HTTP {status}: {out}")

    def __enter__(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def received(self) -> list[dict]:
        return [a for answers in self.answers for a in answers]


def main(argv: list[str]) -> int:
    import mlflow.sklearn

    from fairgate.data.simulation import day_batch
    from fairgate.governance import registry
    from fairgate.integrations import tracking
    from fairgate.monitoring import served_log
    from fairgate.policy.loader import load_policy
    from fairgate.stages import lifecycle
    from fairgate.stages.lifecycle import RunInfo
    from fairgate.storage.local import LocalStore

    requests, seconds = (int(argv[0]) if argv else 500), (float(argv[1]) if len(argv) > 1 else 15.0)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    tmp = Path(tempfile.mkdtemp(prefix="fairgate-bench-served-"))
    store = LocalStore(tmp / "store")
    raw = yaml.safe_load((REPO / "include" / "config" / "policy.yaml").read_text())
    raw.pop("mitigation", None)
    raw["fairness"]["thresholds"] = LOOSE
    for run, seed in (("v1", 7), ("v2", 42)):
        raw["model"]["seed"] = seed
        (tmp / f"{run}.yaml").write_text(yaml.safe_dump(raw))
        recorded = lifecycle.run_in_process(store, load_policy(tmp / f"{run}.yaml"), RunInfo(dag_id="b", run_id=run))
        assert recorded.decision == "deployed", recorded.decision
    policy = load_policy(tmp / "v2.yaml")
    v1, v2 = (m["version"] for m in registry.list_versions(store, policy.model_name))
    assert registry.production_version(store, policy.model_name) == v2
    fairgate_model = tracking.save_served_model(
        store, policy, v2, tmp / "fairgate", policy_file=(tmp / "v2.yaml").read_bytes()
    )
    mlflow.sklearn.save_model(registry.load_model(store, policy.model_name, v2), str(tmp / "sklearn"))
    batch = day_batch(date(2026, 6, 1), policy, scenario="stable", rows=2000)
    for col, bounds in policy.quality.ranges.items():
        batch[col] = batch[col].clip(bounds.min, bounds.max)
    columns = list(dict.fromkeys([policy.dataset.row_key, *policy.features, *policy.protected_columns]))
    records = json.loads(batch[columns].to_json(orient="records"))
    env = {"FAIRGATE_ARTIFACT_ROOT": str(store.root), "FAIRGATE_FOLLOW_SECONDS": "1"}

    print(f"\n1. One record per request, {requests} requests, one connection, one worker each (ms):")
    plain_records = [{k: v for k, v in r.items() if k in policy.features} for r in records]
    results = {}
    for name, folder, rows in (("sklearn", tmp / "sklearn", plain_records), ("fairgate", fairgate_model, records)):
        proc, port = _serve(folder, 1, env)
        try:
            results[name] = _latency(port, rows, requests)
        finally:
            _stop(proc)
    for name, label in (("sklearn", "scikit-learn pipeline, predict only"), ("fairgate", "Fairgate: reasons + logged")):
        t = results[name]
        print(f"   {label:40s} p50 {_pct(t, 50):6.1f}   p99 {_pct(t, 99):6.1f}")
    ratio = _pct(results["fairgate"], 99) / _pct(results["sklearn"], 99)
    print(f"   p99 ratio: {ratio:.2f}x (goal: at most 1.5x)")

    print(f"\n2. Four clients for {seconds:.0f} s, Fairgate's server with 2 workers:")
    proc, port = _serve(fairgate_model, 2, env)
    day = datetime.now(UTC).date()
    try:
        with Clients(port, records, "load") as clients:
            time.sleep(seconds)
        got = clients.received()
        logged = served_log.read_online(store, served_log.rules_for(store, policy), day)
        ours = logged[logged["row_id"].str.startswith("load-")]
        covered = {a["decision_id"] for a in got} <= set(ours["decision_id"])
        print(
            f"   answered {len(got) / seconds:6.1f} decisions/s, logged {len(ours) / seconds:6.1f}/s; "
            f"failed {len(clients.failed)}; every answer logged: {covered}"
        )

        print("\n3. SIGKILL of the server under that load:")
        with Clients(port, records, "kill") as clients:
            time.sleep(seconds / 2)
            _stop(proc, signal.SIGKILL)
            time.sleep(1)
        got = clients.received()
        logged = served_log.read_online(store, served_log.rules_for(store, policy), day)
        ours = set(logged.loc[logged["row_id"].str.startswith("kill-"), "decision_id"])
        lost = {a["decision_id"] for a in got} - ours
        print(
            f"   decisions received by clients {len(got)}, in the log {len(ours)}, received but not logged {len(lost)}"
        )
    finally:
        if proc.poll() is None:
            _stop(proc)

    print("\n4. Production rolled back and forth under the same load (server restarted, 2 workers):")
    proc, port = _serve(fairgate_model, 2, env)
    try:
        with Clients(port, records, "swap") as clients:
            time.sleep(3)
            lifecycle.rollback(store, policy, to_version=v1, actor="bench", reason="rollback", run_id="rb1")
            time.sleep(seconds / 2)
            lifecycle.rollback(store, policy, to_version=v2, actor="bench", reason="deploy again", run_id="rb2")
            time.sleep(seconds / 2)
        changes = []
        for answers in clients.answers:
            said = [a["model_version"] for a in answers]
            changes.append([v[:8] for i, v in enumerate(said) if i == 0 or v != said[i - 1]])
        ok = all(c == [v2[:8], v1[:8], v2[:8]] for c in changes)
        print(
            f"   requests {len(clients.received())}, failed {len(clients.failed)}; "
            f"every client saw {v2[:8]} -> {v1[:8]} -> {v2[:8]} once: {ok}"
        )
    finally:
        _stop(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
