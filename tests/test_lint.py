"""The lint baseline from pyproject.toml (ruff, with the Airflow and security rule sets) holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    out = subprocess.run(
        [str(ruff), "check", "include", "plugins", "dags", "dev", "tests", "benchmarks"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_tree_is_formatted():
    ruff = Path(sys.executable).with_name("ruff")
    out = subprocess.run(
        [str(ruff), "format", "--check", "include", "plugins", "dags", "dev", "tests", "benchmarks"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_pre_commit_hook_runs_clean_as_configured():
    """Each hook of .pre-commit-config.yaml, run the way pre-commit runs a local system hook."""
    import shlex

    import yaml

    hooks = [
        h for repo in yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())["repos"] for h in repo["hooks"]
    ]
    assert {h["id"] for h in hooks} >= {"ruff-format", "ruff-lint", "mypy", "layering"}
    for hook in hooks:
        assert hook["language"] == "system" and hook["pass_filenames"] is False, hook["id"]
        out = subprocess.run(shlex.split(hook["entry"]), cwd=REPO, capture_output=True, text=True)
        assert out.returncode == 0, (hook["id"], out.stdout[-2000:], out.stderr[-2000:])


def test_mypy_strict_is_clean_on_the_domain_the_operators_and_the_dags():
    """mypy --strict over include/fairgate, plugins/fairgate_airflow and dags (configured in pyproject.toml)."""
    mypy = Path(sys.executable).with_name("mypy")
    out = subprocess.run([str(mypy)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_type_ignore_says_why():
    import re

    bare = [
        f"{path.relative_to(REPO)}:{i}"
        for folder in ("include", "plugins", "dags")
        for path in sorted((REPO / folder).rglob("*.py"))
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if "type: ignore" in line and not re.search(r"type: ignore\[[\w-]+\]\s+#\s*\S", line)
    ]
    assert bare == [], f"type: ignore without a reason in a comment after it: {bare}"
