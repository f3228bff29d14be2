"""The ``translate-svc`` command as a user runs it, for the CLI's tests and the SDK's: its exit
codes, a run's code and output (in this process through typer's runner, or the installed script),
a failure's one ``error:`` line, and the JSON lines ``stream --jsonl`` writes with their summary."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from tests.support.server_process import CLI
from translate_svc.cli import app

#: the exit codes a user sees (written here, not taken from client_cli/common.py: the tests hold it to them)
EXIT_FAILED, EXIT_USAGE, EXIT_CONNECT, EXIT_AUTH, EXIT_INTERRUPTED = 1, 2, 3, 4, 130


@dataclass(frozen=True)
class Run:
    """A finished run: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def error_line(self) -> str:
        lines = [line for line in self.err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, f"want one error line:\n{self.err}"
        return lines[0]


def run_cli(
    *args: str | Path,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
    process: bool = False,
) -> Run:
    """Run ``translate-svc args``: in this process through typer's runner (the same ``app`` the
    script calls, with its exit codes and its stdout and stderr apart), or as the installed script
    in a subprocess when ``process`` or ``stdin`` asks for a real one (a real stdin file descriptor,
    the script's entry point, signals)."""
    drop = [k for k in os.environ if k.startswith(("TRANSLATE_SVC_TOKEN", "TRANSLATE_SVC_TLS"))]
    if process or stdin is not None:
        base_env = {k: v for k, v in os.environ.items() if k not in drop}
        p = subprocess.run(
            [*CLI, *map(str, args)],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            env={**base_env, "COLUMNS": "200", **(env or {})},
            cwd=cwd,
            timeout=timeout,
        )
        r = Run(p.returncode, p.stdout.decode(), p.stderr.decode())
    else:
        here = Path.cwd()
        os.chdir(cwd or here)
        try:
            # catch_exceptions=False: an unexpected exception fails the test with its traceback
            res = CliRunner().invoke(
                app, [str(a) for a in args], env={**dict.fromkeys(drop), **(env or {})}, catch_exceptions=False
            )
        finally:
            os.chdir(here)
        r = Run(res.exit_code, res.stdout, res.stderr)
    assert "Traceback" not in r.text, r.text
    return r


def fails(r: Run, code: int, *needles: str) -> str:
    """``r`` exited with ``code`` and said why in exactly one ``error:`` line holding ``needles``."""
    assert r.code == code, f"exit {r.code}, want {code}:\n{r.text}"
    line = r.error_line()
    for n in needles:
        assert n in line, f"{n!r} not in {line!r}"
    return line


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines file's records."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_summary(lines: Sequence[dict[str, Any]], *, interrupted: bool) -> dict[str, Any]:
    """The last record is the run's summary, and its counts and latencies are the segments'."""
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["interrupted"] is interrupted
    segs = [x for x in lines if x["type"] == "segment"]
    assert summary["segments"] == len(segs)
    lat = summary["latency_ms"]
    if segs:
        assert lat["n"] == len(segs) and lat["p50"] <= lat["p95"] <= lat["max"]
        assert lat["max"] == max(x["latency_ms"] for x in segs)
    else:
        assert lat is None
    return summary
