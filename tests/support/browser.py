"""Debian's Chromium for the browser tests (driven by Playwright; nothing is downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]


def require_browser():
    if not Path(CHROMIUM).exists():
        msg = "Debian's chromium is not installed (apt-get install chromium); .ci/run installs it."
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    pytest.importorskip("playwright.sync_api")
