"""``make test-fast``, as the README prints it, runs the fast layers and leaves the lifecycle tests out."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


FAST_LAYERS = ("tests/unit", "tests/operators", "tests/test_structure.py")


@pytest.mark.timeout(600)
def test_make_test_fast_runs_the_fast_layers_only():
    assert "make test-fast" in (REPO / "README.md").read_text()
    out = subprocess.run(
        ["make", "test-fast"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = re.search(r"(\d+) passed", out.stdout)
    assert summary, out.stdout[-2000:]
    every = subprocess.run(  # the same layers with the lifecycle-marked tests counted in
        [str(REPO / ".venv" / "bin" / "python"), "-m", "pytest", "--collect-only", "-q", *FAST_LAYERS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
    )
    collected = int(re.search(r"(\d+) tests? collected", every.stdout)[1])
    assert 150 < int(summary[1]) < collected - 20  # the lifecycle-marked tests were left out
    assert "tests/dags" not in out.stdout and "tests/integration" not in out.stdout
