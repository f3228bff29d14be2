"""The load generator (``benchmarks/tools/loadgen``) run as its command, as a user runs it: from
the repository's root with it on the path, its output kept."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.paths import REPO


def loadgen(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks.tools.loadgen args``, within ``timeout`` seconds: its exit and output."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.tools.loadgen", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
