"""The production image installs requirements.txt only: no test tool is in it, and the two pin
files do not overlap (one version of each package, in one place)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_TOOLS = {"pytest", "pytest-timeout", "moto", "mypy", "ruff", "playwright", "pandas-stubs", "types-pyyaml"}


def _pins(name: str) -> dict[str, str]:
    out = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            package = re.split(r"[=<>\[ ]", line, maxsplit=1)[0].lower().replace("_", "-")
            out[package] = line
    return out


def test_runtime_pins_hold_no_test_tools_and_the_dev_pins_hold_them_all():
    runtime, dev = _pins("requirements.txt"), _pins("requirements-dev.txt")
    assert not TEST_TOOLS & set(runtime)
    assert set(dev) >= TEST_TOOLS
    assert not set(runtime) & set(dev)
    assert all("==" in pin for pin in [*runtime.values(), *dev.values()])
    assert "requirements-dev.txt" not in (REPO / "Dockerfile").read_text()
