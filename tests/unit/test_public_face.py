"""The package's own face: the handful of names a notebook calls, each the defining module's own object,
loaded on first use so importing the package (or a DAG file's one module) stays light; its example runs."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys

import pytest

import fairgate
from fairgate_dev.local import REPO


def test_each_public_name_is_the_defining_modules_own_and_says_what_it_does():
    assert sorted(fairgate.__all__) == sorted(["__version__", *fairgate._FACE])
    for name in fairgate._FACE:
        module = importlib.import_module(fairgate._FACE[name])
        found = getattr(fairgate, name)
        assert found is getattr(module, fairgate._RENAMED.get(name, name)), name
        assert (found.__doc__ or "").strip(), f"fairgate.{name} has no docstring"
    with pytest.raises(AttributeError, match="no_such_name"):
        fairgate.no_such_name  # noqa: B018


def test_importing_the_package_loads_none_of_its_modules_nor_pandas():
    code = "import sys, fairgate; print([m for m in sys.modules if m.startswith(('fairgate.', 'pandas', 'sklearn'))])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


@pytest.mark.lifecycle
def test_the_api_pages_example_runs_as_printed_on_a_second_dataset(tmp_path, monkeypatch):
    """The Python API page's example, as printed, in a folder holding a policy for synthetic credit data."""
    from tests.support.policies import synthetic_credit_policy

    from fairgate.governance import evidence
    from fairgate.storage.local import LocalStore

    synthetic_credit_policy(tmp_path, 3000, seed=5)
    page = (REPO / "docs" / "api.md").read_text()
    (example,) = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    monkeypatch.chdir(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    decision, verified = done.stdout.split()[-2:]
    recorded = evidence.find(LocalStore(tmp_path / "fairgate-store"), "credit", kind="lifecycle")["record"]
    assert decision == recorded["decision"] and decision in ("deployed", "rejected") and verified == "True"
