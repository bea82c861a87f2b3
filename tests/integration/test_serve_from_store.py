"""``fairgate serve`` with no MLflow tracking server: straight from the artifact store.

Before, on the embedded store (the default of ``make demo`` and of a team without a tracking server)
``fairgate serve`` failed with "Registered Model ... not found" and left an ``mlflow.db`` in the working
directory: the ``models:/`` download resolved against MLflow's default registry there. The store is the
authority anyway: the served folder is written from the files the promotion record binds, checked as a
downloaded one is, and served. Synthetic credit data, a real server process, strict JSON.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from tests.support.policies import synthetic_credit_policy

from fairgate.policy.loader import load_policy
from fairgate.stages import lifecycle
from fairgate.stages.lifecycle import RunInfo
from fairgate.storage.local import LocalStore
from fairgate_dev.synthetic import credit_applications

pytestmark = [pytest.mark.integration, pytest.mark.lifecycle]
BIN = Path(sys.executable).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _strict(text: bytes) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_fairgate_serve_with_no_tracking_server_serves_from_the_store_and_writes_nothing_in_the_cwd(tmp_path):
    path, _ = synthetic_credit_policy(tmp_path, 3000, seed=5)
    store_root = tmp_path / "store"
    assert lifecycle.run_in_process(LocalStore(store_root), load_policy(path), RunInfo("nb", "v1")).decision == (
        "deployed"
    )
    cwd = tmp_path / "somewhere-else"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    port, log = _port(), tmp_path / "serve.log"
    proc = subprocess.Popen(
        [
            str(BIN / "fairgate"),
            "--artifact-root",
            str(store_root),
            "--policy",
            str(path),
            "serve",
            "--port",
            str(port),
        ],
        cwd=cwd,
        env={**env, "PATH": f"{BIN}:{env['PATH']}", "FAIRGATE_FOLLOW_SECONDS": "0"},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        records = credit_applications(3, seed=11).drop(columns=["approved"])
        body = json.dumps({"dataframe_records": json.loads(records.to_json(orient="records"))}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            answers = _strict(resp.read())["predictions"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert "from the artifact store" in log.read_text()
    assert len(answers) == 3 and all(a["logged"] is True for a in answers)
    assert sorted(p.name for p in cwd.iterdir()) == []  # no mlflow.db, no mlruns
    assert list((store_root / "predictions" / "model=credit").glob("date=*/online/*.json"))  # logged in the store
