"""The README's walkthrough, run as printed: its shell block, in a fresh project directory.

The directory holds the project's files (linked, with the installed ``.venv``) and nothing a
previous run left; the block runs with ``bash -euo pipefail``, so any command that fails fails
the test. The store and Airflow home are the directory's own.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from fairgate.governance import evidence, registry
from fairgate.storage.local import LocalStore

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("Makefile", "pyproject.toml", "requirements.txt", "requirements-dev.txt", ".venv", "include", "plugins")
PROJECT += ("dags", "dev")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1600)]


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, flags=re.S)


# errors, tracebacks and Python warnings (a finding Fairgate logs as a warning, e.g. a proxy, is output)
NOISE = re.compile(r"\[error\s*\]|Traceback|\[py\.warnings\]|^\S*(Error|Warning):", flags=re.M)


def run_as_printed(folder: Path, script: str, *, timeout: int = 850) -> subprocess.CompletedProcess:
    """``script`` in ``folder`` (the project linked in, nothing else) with ``bash -euo pipefail``."""
    for name in PROJECT:
        (folder / name).symlink_to(REPO / name)
    # the linked .venv is installed and up to date (make would otherwise reinstall it from this directory)
    assert subprocess.run(["make", "-q", ".venv/.installed"], cwd=folder).returncode == 0, "run make install"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRGATE_", "AIRFLOW"))}
    env["FAIRGATE_ARTIFACT_ROOT"] = str(folder / ".artifacts")  # this directory's store, not the checkout's
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    noise = [line for line in (done.stdout + done.stderr).splitlines() if NOISE.search(line)]
    assert not noise, noise[:5]  # a walkthrough that works prints no error and no Python warning
    return done


def test_the_readme_walkthrough_runs_as_printed(tmp_path):
    (block,) = shell_blocks((REPO / "README.md").read_text())
    done = run_as_printed(tmp_path, block)
    out = done.stdout
    assert "Wrote 20,000 synthetic applications to loans.csv (injected DI 0.6)" in out
    assert "Running fairgate_lifecycle__loans with dag.test()" in out  # the model's own DAG id
    assert re.search(r"^  collect_data: success \(\d+\.\d s\)$", out, flags=re.M)  # progress, task by task
    assert re.search(r"^  fit_candidate\[[^]]+\]: success", out, flags=re.M)  # one line per mapped candidate
    assert re.search(r"Decision: (DEPLOYED|REJECTED)", out)
    assert "check it with: .venv/bin/fairgate --model loans verify-log" in out
    assert (tmp_path / ".airflow").is_dir() and (tmp_path / ".artifacts" / "evidence" / "loans").is_dir()


def test_the_own_data_walkthrough_runs_as_printed_through_deployment_scoring_and_audit(tmp_path):
    """docs/own-data.md: the policy written, checked and run as the demo, then edited with `policy set` and
    run as the model's own DAGs (`airflow dags test`, the shell pointed at the demo's home by its env file)."""
    first, second = shell_blocks((REPO / "docs" / "own-data.md").read_text())
    out = run_as_printed(tmp_path, first + second, timeout=1500).stdout
    assert "credit.yaml: set audit.incoming, fairness.thresholds.disparate_impact.min" in out
    store = LocalStore(tmp_path / ".artifacts")
    assert registry.production_version(store, "credit_demo") is not None, out[-2000:]  # the lifecycle DAG deployed
    head = evidence.head(store, "credit_demo")["seq"]
    kinds = [evidence.entry(store, "credit_demo", seq)["record"]["kind"] for seq in range(1, head + 1)]
    assert kinds.count("lifecycle") >= 2 and "audit" in kinds, kinds  # the demo's run, the DAG's run, the audit
    assert len(store.list("predictions/model=credit_demo/")) >= 4  # four days scored into the prediction log
