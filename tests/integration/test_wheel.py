"""The package as a user installs it: a wheel, not the editable checkout.

The wheel is built from the checkout and installed without ``-e`` into a scratch virtual
environment that sees the project's third-party packages but not its source tree; a lifecycle
then runs there from the domain package alone (as from a notebook: no Airflow), on the bundled
policy and data, and writes its pages. Anything read with a path relative to the source tree
instead of through ``importlib.resources`` fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from fairgate_dev.local import REPO

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LIFECYCLE = r"""
import json, sys
from fairgate.stages import lifecycle
from fairgate.stages.lifecycle import RunInfo
from fairgate.policy.loader import load_policy, policy_path
from fairgate.storage.local import LocalStore

store, policy = LocalStore(sys.argv[1]), load_policy()
run = RunInfo(dag_id="notebook", run_id="wheel-1")
snapshot = lifecycle.collect(store, policy, run)
quality = lifecycle.validate(store, policy, run, snapshot)
bias = lifecycle.check_bias(store, policy, run, quality)
if bias.detected:  # the mitigation search, one candidate after another
    plan = lifecycle.search_plan(store, policy, run, bias)
    fitted = [lifecycle.fit_candidate(store, policy, run, bias, p["candidate"]) for p in plan]
    trained = lifecycle.select_candidate(store, policy, run, bias, fitted)
else:
    trained = lifecycle.train(store, policy, run, bias)
gate = lifecycle.evaluate(store, policy, run, trained)
passed = gate.outcome == "pass"
decided = lifecycle.deploy(store, policy, run, gate) if passed else lifecycle.reject(store, policy, gate)
recorded = lifecycle.record(store, policy, run, deployment=decided)
import fairgate
print(json.dumps({"module": fairgate.__file__, "policy": str(policy_path()), "rows": snapshot.rows,
                  "decision": recorded.decision, "gate": gate.outcome, "report": recorded.report.key}))
"""


def test_a_wheel_install_runs_a_lifecycle_on_its_bundled_policy_and_data(tmp_path):
    import shutil

    source, wheels = tmp_path / "source", tmp_path / "wheels"  # built from a copy: no build/ in the checkout
    for name in ("include", "plugins"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
        timeout=600,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("fairgate-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    target = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", purelib], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    # Third-party packages from the project's environment, appended after the venv's own (so the
    # wheel's fairgate wins); the checkout's editable finder is a .pth there and is not run.
    (target / "project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )

    env = {k: v for k, v in os.environ.items() if k not in ("FAIRGATE_POLICY", "PYTHONPATH")}
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", LIFECYCLE, str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["module"].startswith(str(target)), result  # the wheel's copy, not the checkout
    assert result["policy"].startswith(str(target)) and result["policy"].endswith("fairgate/config/policy.yaml")
    assert result["rows"] == 30162  # the bundled Adult data, from package data
    assert result["decision"] == "rejected" and result["gate"] == "fail"  # the default policy on Adult
    page = (tmp_path / "store" / result["report"]).read_text()
    assert "<style>" in page and "border-collapse" in page  # the stylesheet and templates came with the wheel
