"""How long the scheduler's DAG parsing takes with many models: the four DAG files, in a fresh
interpreter each (as the dag-processor does), with 1, 10 and 50 policy files in FAIRGATE_POLICIES.

Prints, per file and policy count, the parse time (best of three) and the number of DAGs made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROBE = r"""
import json, sys, time, runpy
import airflow.sdk  # every DAG file needs it; not counted
t = time.perf_counter()
ns = runpy.run_path(sys.argv[1], run_name="dagfile")
elapsed = time.perf_counter() - t
print(json.dumps({"elapsed": elapsed}))
"""


def parse_time(path: Path, env: dict[str, str]) -> float:
    best = float("inf")
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(path)], env=env, capture_output=True, text=True, check=True
        )
        best = min(best, json.loads(out.stdout.strip().splitlines()[-1])["elapsed"])
    return best


def main() -> int:
    base = yaml.safe_load((REPO / "include" / "config" / "policy.yaml").read_text())
    print(f"{'policies':>8}  " + "  ".join(f"{p.stem:>20}" for p in sorted((REPO / "dags").glob("*.py"))))
    for count in (1, 10, 50):
        with tempfile.TemporaryDirectory() as folder:
            for i in range(count):
                (Path(folder) / f"model_{i:03d}.yaml").write_text(yaml.safe_dump({**base, "model_name": f"m{i:03d}"}))
            env = {**os.environ, "FAIRGATE_POLICIES": folder, "AIRFLOW_HOME": tempfile.mkdtemp()}
            times = [parse_time(p, env) for p in sorted((REPO / "dags").glob("*.py"))]
        print(f"{count:>8}  " + "  ".join(f"{t * 1000:>18.0f}ms" for t in times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
