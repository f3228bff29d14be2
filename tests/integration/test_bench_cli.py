"""``translate-svc bench`` against a real server on loopback (the test checkpoint): every mode,
a tiny ramp, a few seconds a stream; the JSON's shape, and segments measured with the server's
own queue and model time and its /metrics."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.conftest import make_settings, serving

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]


async def test_bench_drives_every_mode_and_writes_the_capacity(test_model_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.metrics_port = 0
    out = tmp_path / "bench.json"
    async with serving(settings) as live:
        assert live.server.realtime is not None and live.server.metrics_port is not None
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "translate_svc.cli", "bench",
            "--server", f"127.0.0.1:{live.port}",
            "--openai", f"http://127.0.0.1:{live.server.realtime.port}",
            "--metrics", f"http://127.0.0.1:{live.server.metrics_port}/metrics",
            "--ramp", "1,2", "--seconds", "4", "--p95-ms", "60000", "--json", str(out),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, stderr.decode()
    assert "capacity" in stdout.decode() and "max_streams" in stdout.decode()
    doc = json.loads(out.read_text())
    assert doc["ramp"] == [1, 2] and doc["modes"] == ["segment", "simultaneous", "openai"]
    steps = doc["steps"]
    assert [(s["mode"], s["streams"]) for s in steps] == [
        (m, n) for m in ("segment", "simultaneous", "openai") for n in (1, 2)
    ]
    for s in steps:
        assert s["errors"] == 0 and s["failed_segments"] == 0, s
        # each stream's 4 s of speech ends in at least one final (the half-close closes open speech)
        assert s["segments"] >= s["streams"], s
        assert s["p50_ms"] is not None and s["p95_ms"] >= s["p50_ms"] and s["max_ms"] >= s["p95_ms"]
        assert s["model_p50_ms"] > 0  # the server's own timing, per segment
        assert s["server"]["cpu_cores"] > 0 and s["server"]["rss_max_mb"] > 0  # from its /metrics
        assert s["audio_s"] == pytest.approx(4 * s["streams"], abs=0.05)
    grpc_steps = [s for s in steps if s["mode"] != "openai"]
    assert all(s["queue_p50_ms"] is not None for s in grpc_steps)  # only gRPC reports queue time
    assert all(s["queue_p95_ms"] >= s["queue_p50_ms"] for s in grpc_steps)
    # commits are not asserted: whether random weights' steps agree on a word is up to the weights
    suggestions = {g["mode"]: g for g in doc["suggestions"]}
    assert set(suggestions) == {"segment", "simultaneous", "openai"}
    for g in suggestions.values():
        kept = [s["streams"] for s in steps if s["mode"] == g["mode"] and s["kept"]]
        assert g["max_streams"] == (max(kept) if kept == [1, 2][: len(kept)] and kept else None)
        if g["max_streams"] is not None:
            assert 1 <= g["autoscaler_target"] <= g["max_streams"]
