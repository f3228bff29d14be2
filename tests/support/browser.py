"""The browser the browser tests drive (through Playwright): Debian's headless Chromium, which
``make chromium`` installs, or the one ``CHROMIUM`` names."""

from __future__ import annotations

import os
import shutil

import pytest


def chromium() -> str:
    """The Chromium executable's path; the test fails saying what to install where there is none."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium-headless-shell") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "the browser test needs Chromium: `make test` installs Debian's chromium-headless-shell "
            "(apt-get install chromium-headless-shell, as root); or set CHROMIUM=/path/to/chrome"
        )
    return found
