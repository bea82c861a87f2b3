"""The documentation: a README short enough to read, a site that builds with no warning, its home the README."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_readme_is_short_and_the_site_home_is_the_readme():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert (REPO / "docs" / "index.md").read_text() == readme.replace("](docs/", "](")


def test_the_docs_site_builds_strict(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for page in ("getting-started", "policy", "operations", "evidence", "mlflow", "benchmarks", "architecture"):
        assert (tmp_path / "site" / page / "index.html").is_file(), page
