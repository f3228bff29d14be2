"""An attack probe run as the tests run it: ``python -m tests.support.attacks.<module> <attack> ...``
in a process of its own (its connections, memory and CPU are not the test's), from the repository's
root. ``started`` once it says its attack is under way, ``result`` its last line (JSON) once it ends."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from tests.support.paths import REPO


class AttackProcess:
    """``module``'s attack with ``args``; ``result_s``: how long its end may take to come."""

    def __init__(self, module: str, *args: str, result_s: float = 60) -> None:
        self.result_s = result_s
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"tests.support.attacks.{module}", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    async def started(self) -> None:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 60)
        assert line.strip() == "started", line + (self.proc.stderr.read() if self.proc.stderr else "")

    async def result(self) -> dict[str, Any]:
        out, err = await asyncio.wait_for(asyncio.to_thread(self.proc.communicate), self.result_s)
        assert self.proc.returncode == 0, err
        got: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return got

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
