"""``translate-svc bench`` against a real server on loopback: every mode on the test checkpoint (the
JSON's shape, segments measured with the server's own queue and model time and its /metrics), and
simultaneous mode on the stable translator, whose commits and their lag are known from its
configuration (model/testing/stable.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.live_server import make_settings, serving
from translate_svc.model.testing import stable
from translate_svc.transport.openai.protocol import SIMULTANEOUS_AGREEMENT, SIMULTANEOUS_STEP_MS
from translate_svc.types import SimultaneousOptions

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(100)]


async def _bench(live: Any, out: Path, *args: str) -> str:
    """``translate-svc bench`` in its own process against ``live`` (gRPC, the OpenAI door, /metrics)."""
    assert live.server.http is not None and live.server.metrics_port is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "translate_svc.cli", "bench",
        "--server", f"127.0.0.1:{live.port}",
        "--openai", f"http://127.0.0.1:{live.server.http.port}",
        "--metrics", f"http://127.0.0.1:{live.server.metrics_port}/metrics",
        "--json", str(out), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 300)
    assert proc.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_bench_drives_every_mode_and_writes_the_capacity(test_model_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.metrics_port = 0
    out = tmp_path / "bench.json"
    async with serving(settings) as live:
        stdout = await _bench(live, out, "--ramp", "1,2", "--seconds", "4")
    assert "capacity" in stdout and "max_streams" in stdout and "steps skipped" in stdout
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
        # simultaneous steps from /metrics: segment mode runs none; the others run some over 4 s of speech
        run, skipped = s["server"]["steps_run"], s["server"]["steps_skipped"]
        if s["mode"] == "segment":
            assert (run, skipped, s["commits"], s["commit_lag_p50_ms"]) == (0, 0, 0, None), s
        else:
            assert run + skipped >= 1 and skipped >= 0, s
    grpc_steps = [s for s in steps if s["mode"] != "openai"]
    assert all(s["queue_p50_ms"] is not None for s in grpc_steps)  # only gRPC reports queue time
    assert all(s["queue_p95_ms"] >= s["queue_p50_ms"] for s in grpc_steps)
    # what random weights commit is up to the weights: commits are judged on the stable translator below
    suggestions = {g["mode"]: g for g in doc["suggestions"]}
    assert set(suggestions) == {"segment", "simultaneous", "openai"}
    for g in suggestions.values():
        kept = [s["streams"] for s in steps if s["mode"] == g["mode"] and s["kept"]]
        assert g["max_streams"] == (max(kept) if kept == [1, 2][: len(kept)] and kept else None)
        if g["max_streams"] is not None:
            assert 1 <= g["autoscaler_target"] <= g["max_streams"]


#: both doors' simultaneous defaults (the bench asks for neither step nor agreement)
STEP_MS = SimultaneousOptions().step_ms
SECONDS = 8


async def test_bench_reports_the_commits_and_their_lag_that_the_stable_translator_gives(
    test_model_dir: Path, tmp_path: Path
) -> None:
    """The stable translator says one word per ``WORD_S`` (400 ms) of a segment's audio, and with
    agreement 2 each step commits the previous step's whole words (the last word held back). A
    step comes every ``STEP_MS`` (1000 ms) of open speech, over 2 words more than the step before,
    so every step after a segment's first commits (one ``Commit``: one target), and a segment that
    committed ends with one final commit. Per segment of ``r`` steps run: at most ``r`` commits,
    and at least ``r - 2`` (its first step commits nothing, and a step still in flight when the
    segment closes is dropped). The steps due are at most one per ``STEP_MS`` of audio. A commit's
    lag (arrival less the moment its ``source_ms`` of audio was due) is positive (the server had
    that audio), and this translator's steps take microseconds: a commit is out long before the
    next step is due. A 1 s pause closes a segment here, so the sample's speech runs in segments
    of up to the 6 s cap: several steps each."""
    assert SIMULTANEOUS_STEP_MS == STEP_MS and SIMULTANEOUS_AGREEMENT == SimultaneousOptions().agreement == 2
    assert stable.WORD_S * 1000 * 2 <= STEP_MS  # a step brings at least two whole words
    settings = make_settings(test_model_dir)
    settings.model.test_translator = "stable"
    settings.vad = dataclasses.replace(settings.vad, min_silence_ms=1000)
    settings.server.http_port = 0
    settings.server.metrics_port = 0
    out = tmp_path / "bench.json"
    async with serving(settings) as live:
        await _bench(live, out, "--modes", "simultaneous,openai", "--ramp", "1,2", "--seconds", str(SECONDS))
    steps = json.loads(out.read_text())["steps"]
    assert [(s["mode"], s["streams"]) for s in steps] == [(m, n) for m in ("simultaneous", "openai") for n in (1, 2)]
    for s in steps:
        assert s["errors"] == 0 and s["failed_segments"] == 0, s
        run, skipped = s["server"]["steps_run"], s["server"]["steps_skipped"]
        assert run is not None and skipped is not None, s  # read from /metrics
        assert 0 <= skipped and run + skipped <= SECONDS * 1000 // STEP_MS * s["streams"], s
        assert 1 <= s["commits"] and run - 2 * s["segments"] <= s["commits"] <= run, s
        lag = (s["commit_lag_p50_ms"], s["commit_lag_p95_ms"], s["commit_lag_max_ms"])
        assert 0 < lag[0] <= lag[1] <= lag[2] < STEP_MS, s
