"""The engine's cores side by side (issue 70 item 2): ``engine.core = batch`` (whole batches, each
run to its longest row's end) against ``steps`` (one running decode that segments' rows join and
leave at every step), end-of-speech-to-result latency of N real-time streams.

Run from the repository root::

    python -m benchmarks.studies.step_core --streams 8 --json out/step_core.json

For each core it starts one ``translate-svc serve`` (``--model``, the fast runner, ``--device``,
float32) and runs ``python -m benchmarks.tools.loadgen --target`` against it as a separate process:
``--streams`` real-time streams of ``--stream-s`` seconds, no saturation phase. Reported per core:
the streams' p50 and p95 segment latency (audio end sent to its result), and the segments measured.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from benchmarks.tools.frontend import SERVE, Server
from benchmarks.tools.machine import git_state
from tests.support.paths import REPO, TEST_MODEL

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


@app.command()
def main(
    streams: Annotated[int, typer.Option(min=1, help="real-time streams")] = 8,
    stream_s: Annotated[float, typer.Option(help="each stream's audio (looped file)")] = 30.0,
    cores: Annotated[str, typer.Option(help="the engine cores to run, in order")] = "batch,steps",
    device: Annotated[str, typer.Option(help="model.device")] = "cpu",
    speech: Annotated[bool, typer.Option("--speech/--no-speech", help="ask for translated speech")] = False,
    model: Annotated[Path, typer.Option(help="model directory")] = TEST_MODEL,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the results here")] = None,
) -> None:
    work = Path(tempfile.mkdtemp(prefix="step-core-"))
    runs: dict[str, Any] = {}
    for core in cores.split(","):
        env = {
            **os.environ,
            "TRANSLATE_SVC_MODEL__PATH": str(model),
            "TRANSLATE_SVC_MODEL__RUNNER": "fast",
            "TRANSLATE_SVC_MODEL__DEVICE": device,
            "TRANSLATE_SVC_MODEL__DTYPE": "float32",
            "TRANSLATE_SVC_ENGINE__CORE": core,
        }
        cmd = [str(SERVE), "serve", "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
        server = Server(cmd, env, work / f"server-{core}.log")
        try:
            port = server.wait_ready(300)
            out = work / f"{core}.json"
            load = [
                sys.executable, "-m", "benchmarks.tools.loadgen", "--target", f"127.0.0.1:{port}",
                "--server-pid", str(server.pid), "--streams", str(streams), "--stream-s", f"{stream_s:g}",
                "--stagger-s", "2", "--no-saturation", "--speech" if speech else "--no-speech",
                "--json", str(out), "--log-level", "WARNING",
            ]  # fmt: skip
            subprocess.run(load, cwd=REPO, check=True)
            realtime = json.loads(out.read_text())["results"]["target"]["realtime"]
            runs[core] = {"latency_ms": realtime["latency_ms"], "failed_streams": realtime.get("streams_failed")}
        finally:
            server.stop()
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "git": git_state(),
        "streams": streams,
        "stream_s": stream_s,
        "device": device,
        "speech": speech,
        "runs": runs,
        "server_logs": str(work),
    }
    for core, r in runs.items():
        lat = r["latency_ms"]
        print(f"engine.core={core}: p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms over {lat['count']} segments")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
