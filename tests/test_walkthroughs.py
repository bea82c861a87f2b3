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

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("Makefile", "pyproject.toml", "requirements.txt", "requirements-dev.txt", ".venv", "include", "plugins")
PROJECT += ("dags", "dev")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, flags=re.S)


def test_the_readme_walkthrough_runs_as_printed(tmp_path):
    (block,) = shell_blocks((REPO / "README.md").read_text())
    for name in PROJECT:
        (tmp_path / name).symlink_to(REPO / name)
    # the linked .venv is installed and up to date (make would otherwise reinstall it from this directory)
    assert subprocess.run(["make", "-q", ".venv/.installed"], cwd=tmp_path).returncode == 0, "run make install"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRGATE_", "AIRFLOW"))}
    env["FAIRGATE_ARTIFACT_ROOT"] = str(tmp_path / ".artifacts")  # this directory's store, not the checkout's
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=850,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    out = done.stdout
    assert "Wrote 20,000 synthetic applications to loans.csv (injected DI 0.6)" in out
    assert "Running fairgate_lifecycle__loans with dag.test()" in out  # the model's own DAG id
    assert re.search(r"^  collect_data: success \(\d+\.\d s\)$", out, flags=re.M)  # progress, task by task
    assert re.search(r"^  fit_candidate\[[^]]+\]: success", out, flags=re.M)  # one line per mapped candidate
    assert re.search(r"Decision: (DEPLOYED|REJECTED)", out)
    assert "check it with: .venv/bin/fairgate --model loans verify-log" in out
    assert (tmp_path / ".airflow").is_dir() and (tmp_path / ".artifacts" / "evidence" / "loans").is_dir()
