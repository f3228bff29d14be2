"""The load generator end to end, small (``benchmarks/tools/loadgen``): two streams of jfk.flac at
4x real time against the test checkpoint, batching on and off, its JSON report checked against
what the server's segmenter cuts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.loadgen import loadgen
from tests.support.paths import SHARED_AUDIO

pytestmark = [pytest.mark.integration, pytest.mark.slow(30)]  # seconds, for the schedule (conftest.py)


def res_streams(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["results"]["batching_on"]["streams"]["realtime"]


def test_loadgen_end_to_end_two_streams(tmp_path: Path) -> None:
    """2 streams of jfk.flac at 4x real time against the test checkpoint, batching ON and OFF."""
    shared = SHARED_AUDIO / "jfk.flac"
    if not shared.is_file():
        pytest.fail(f"the shared test audio is missing: {shared}")
    out = tmp_path / "bench.json"
    args = ["--streams", "2", "--files", "jfk.flac", "--speed", "4", "--stagger-s", "0.5"]
    proc = loadgen(*args, "--cpu-threads", "1", "--json", str(out), "--log-level", "WARNING", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "TEST MODEL" in proc.stdout and "ON / OFF" in proc.stdout

    doc = json.loads(out.read_text())
    assert doc["model"]["is_test_model"] is True and "TEST checkpoint" in doc["model"]["caveat"]
    assert doc["model"]["torch_threads"] == 1  # --cpu-threads reached the runner
    assert len(doc["git"]["commit"]) == 40 or doc["git"]["commit"] == "unknown"

    assert doc["machine"]["torch"] and doc["machine"]["cpu_count"] >= 1
    assert "benchmarks.tools.loadgen" in doc["command"] and doc["config"]["streams"] == 2
    assert set(doc["results"]) == {"batching_on", "batching_off"}
    # the second stream plays jfk.flac rotated by --shift-s: what the server's segmenter cuts from both
    from benchmarks.tools.loadgen.clips import load_clips, stream_clips
    from benchmarks.tools.profile_stages import segments_of
    from translate_svc.client_cli.load.clips import DEFAULT_SHIFT_S

    clips = stream_clips(load_clips(("jfk.flac",)), 2, DEFAULT_SHIFT_S)
    expected = sum(len(segments_of(c.pcm)) for c in clips)
    assert [s["file"] for s in res_streams(doc)] == ["jfk.flac", f"jfk.flac@{DEFAULT_SHIFT_S:.2f}s"]
    for name, res in doc["results"].items():
        rt, sat = res["realtime"], res["saturation"]
        assert res["model"]["started_messages"] == [
            {"name": doc["model"]["name"], "revision": doc["model"]["revision"], "is_test_model": True}
        ]
        assert rt["segments"] == expected and rt["failed_segments"] == 0 and rt["streams_failed"] == 0, name
        assert sat["segments"] == expected and sat["failed_segments"] == 0, name
        # every segment in exactly one batch
        assert rt["batches"]["segments"] == expected and sat["batches"]["segments"] == expected
        # the segmenter waits for silence, so no result can come before its audio was sent
        assert 0 < rt["latency_ms"]["p50"] <= rt["latency_ms"]["p95"] <= rt["latency_ms"]["max"]
        # the server reports the VAD's share: the closing silence (min_silence 100 ms less the 30 ms pad,
        # in 32 ms windows) up to the end of the 100 ms chunk that completed it
        assert 70 <= rt["vad_wait_ms"]["p50"] <= rt["vad_wait_ms"]["max"] <= 100 + 2 * 32 + 100
        assert rt["audio_s"] == pytest.approx(22.0, abs=0.1) and sat["audio_s"] == pytest.approx(22.0, abs=0.1)
        assert sat["throughput"] > 0
    assert max(int(k) for k in doc["results"]["batching_off"]["saturation"]["batches"]["size_histogram"]) == 1
    assert {r["path"] for r in doc["ratios"]} == {
        "saturation.throughput",
        "realtime.throughput",
        "realtime.latency_ms.p95",
    }
