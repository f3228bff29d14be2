"""``translate-svc-client bench`` from this environment (in ``make client-matrix``: the client
distribution alone, no torch, no server) against a real server of this checkout on the stable
translator: both simultaneous doors (gRPC, and the OpenAI door's WebSocket), a few seconds, with
the server's /metrics. The figures' bounds are tests/cli/test_bench.py's; here: that
the bench runs, measures every commit's lag and reads the skipped steps where the server says them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Server, launch, ready, stop

#: simultaneous mode's step on both doors (the server's default; the bench asks for none)
STEP_MS = 1000
SECONDS = 6


@pytest.fixture(scope="module")
def bench_server() -> Iterator[Server]:
    """The stable translator (exact commit points, loads in milliseconds) with its OpenAI door and
    /metrics on free ports; a 1 s pause closes a segment, so the sample's speech gives segments of
    several steps."""
    srv = launch({"SERVER__HTTP_PORT": "0", "SERVER__METRICS_PORT": "0", "VAD__MIN_SILENCE_MS": "1000"}, stable=True)
    try:
        yield ready(srv)
    finally:
        stop(srv)


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "translate-svc-client"  # what pip installed
    return [str(script)] if script.is_file() else [sys.executable, "-m", "translate_svc.client_cli"]


def test_the_client_bench_measures_commits_and_skipped_steps(bench_server: Server, tmp_path: Path) -> None:
    info = bench_server.info
    assert info.get("http_port") and info.get("metrics_port"), info
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [*_cli(), "bench", "--server", bench_server.address,
         "--openai", f"http://127.0.0.1:{info['http_port']}",
         "--metrics", f"http://127.0.0.1:{info['metrics_port']}/metrics",
         "--modes", "simultaneous,openai", "--ramp", "1", "--seconds", str(SECONDS), "--json", str(out)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "commit lag ms" in r.stdout and "steps skipped" in r.stdout, r.stdout
    doc = json.loads(out.read_text())
    assert doc["audio"] == "demo_eng.wav"  # the sample the client distribution ships
    assert [(s["mode"], s["streams"]) for s in doc["steps"]] == [("simultaneous", 1), ("openai", 1)]
    for s in doc["steps"]:
        assert s["errors"] == 0 and s["failed_segments"] == 0 and s["segments"] >= 1, s
        run, skipped = s["server"]["steps_run"], s["server"]["steps_skipped"]
        assert run is not None and skipped is not None and run + skipped <= SECONDS * 1000 // STEP_MS, s
        assert 1 <= s["commits"] <= run, s  # no commit without a step (one target)
        assert 0 < s["commit_lag_p50_ms"] <= s["commit_lag_p95_ms"] <= s["commit_lag_max_ms"] < STEP_MS, s


def test_the_bench_refuses_a_metrics_address_that_is_no_url(bench_server: Server) -> None:
    r = subprocess.run(
        [*_cli(), "bench", "--server", bench_server.address, "--metrics", "127.0.0.1:9090", "--ramp", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "--metrics" in r.stderr and "http://" in r.stderr, r.stderr
