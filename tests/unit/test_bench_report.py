"""The load generator's statistics (benchmarks/report.py) on plain values, and one end-to-end smoke run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import report  # the repo root is on pythonpath (pyproject's pytest section)

REPO = Path(__file__).resolve().parents[2]
from benchmarks.report import BatchObs, SegmentObs, StreamObs  # noqa: E402

# -- percentiles and summaries -----------------------------------------------------------------


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    xs = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert report.percentile(xs, 0) == 10.0
    assert report.percentile(xs, 50) == 30.0
    assert report.percentile(xs, 100) == 50.0
    assert report.percentile(xs, 25) == 20.0
    assert report.percentile(xs, 95) == pytest.approx(48.0)  # rank 3.8: 40 + 0.8 * 10
    assert report.percentile([40.0, 10.0, 30.0, 20.0], 50) == pytest.approx(25.0)  # unsorted input
    assert report.percentile([7.0], 99) == 7.0


def test_percentile_refuses_no_values_and_bad_q() -> None:
    with pytest.raises(ValueError):
        report.percentile([], 50)
    with pytest.raises(ValueError):
        report.percentile([1.0], 101)


def test_summarize() -> None:
    s = report.summarize([float(v) for v in range(1, 101)])  # 1..100
    assert s.count == 100 and s.max == 100.0 and s.mean == pytest.approx(50.5)
    assert s.p50 == pytest.approx(50.5) and s.p95 == pytest.approx(95.05) and s.p99 == pytest.approx(99.01)
    empty = report.summarize([])
    assert empty.count == 0 and empty.p95 is None and empty.max is None


def test_histogram_and_its_text() -> None:
    h = report.histogram([3, 1, 1, 16, 3, 1])
    assert h == {1: 3, 3: 2, 16: 1}
    assert list(h) == [1, 3, 16]
    assert report.format_histogram(h) == "1x3 3x2 16x1"
    assert report.format_histogram({}) == "-"


def test_throughput_and_ratio() -> None:
    assert report.throughput(120.0, 10.0) == 12.0
    assert report.throughput(120.0, 0.0) is None
    assert report.throughput(120.0, None) is None
    assert report.ratio(30.0, 10.0) == 3.0
    assert report.ratio(30.0, 0.0) is None
    assert report.ratio(None, 1.0) is None


# -- pacing, falling behind, sustained -----------------------------------------------------------


def test_audio_sent_at_rounds_up_to_the_chunk_that_carries_the_offset() -> None:
    kw: dict[str, Any] = {"speed": 1.0, "chunk_ms": 100, "total_ms": 11_000.0}
    assert report.audio_sent_at(5.0, 0, **kw) == 5.0
    assert report.audio_sent_at(5.0, 2300, **kw) == pytest.approx(7.3)  # a chunk boundary: start + t
    assert report.audio_sent_at(5.0, 2301, **kw) == pytest.approx(7.4)  # inside chunk 23: its end
    assert report.audio_sent_at(5.0, 10_990, **kw) == pytest.approx(16.0)  # the short last chunk ends at 11 s
    assert report.audio_sent_at(5.0, 2300, speed=4.0, chunk_ms=100, total_ms=11_000.0) == pytest.approx(5.575)
    with pytest.raises(ValueError):
        report.audio_sent_at(5.0, 100, speed=0.0, chunk_ms=100, total_ms=1000.0)


def test_fell_behind() -> None:
    assert not report.fell_behind(10.0, 11.9)
    assert not report.fell_behind(10.0, 12.0)
    assert report.fell_behind(10.0, 12.1)
    assert report.fell_behind(10.0, None)  # never ended
    assert report.fell_behind(10.0, 10.6, behind_s=0.5)


def test_streams_sustained_needs_every_condition() -> None:
    ok = {"streams_behind": 0, "streams_failed": 0, "failed_segments": 0}
    assert report.streams_sustained(16, 999.0, **ok) == 16
    assert report.streams_sustained(16, 1000.0, **ok) == 16
    assert report.streams_sustained(16, 1000.1, **ok) == 0
    assert report.streams_sustained(16, None, **ok) == 0  # no segments: nothing shown
    assert report.streams_sustained(16, 10.0, **{**ok, "streams_behind": 1}) == 0
    assert report.streams_sustained(16, 10.0, **{**ok, "streams_failed": 1}) == 0
    assert report.streams_sustained(16, 10.0, **{**ok, "failed_segments": 1}) == 0
    assert report.streams_sustained(4, 1500.0, **ok, slo_ms=2000.0) == 4


def test_foreign_cpu_is_the_machine_busy_time_not_spent_by_this_process() -> None:
    before = report.CpuSnapshot(machine_busy_s=100.0, process_s=10.0)
    after = report.CpuSnapshot(machine_busy_s=118.0, process_s=25.0)  # machine +18 s, us +15 s: others 3 s
    f = report.foreign_cpu(before, after, wall_s=10.0, cpus=2)
    assert f["seconds"] == pytest.approx(3.0) and f["share"] == pytest.approx(0.15)
    assert report.foreign_cpu(before, report.CpuSnapshot(105.0, 20.0), 10.0, 2)["seconds"] == 0.0  # clipped at 0
    assert report.foreign_cpu(None, after, 10.0, 2) == {"seconds": None, "share": None}
    assert report.foreign_cpu(before, after, None, 2)["share"] is None


# -- phase summaries -----------------------------------------------------------------------------


def _seg(sid: int, end_ms: int, arrival: float, ok: bool = True, speech_ms: int = 500) -> SegmentObs:
    return SegmentObs(sid, end_ms, arrival, ok, speech_ms, server_total_ms=50.0)


def _streams() -> list[StreamObs]:
    # stream 0 starts at t=100, 2 s of audio in 100 ms chunks at 1x; audio up to 1000 ms is sent at 101.0
    a = StreamObs(0, "a.wav", 2000.0, 100.0, 102.0, 102.3, (_seg(0, 1000, 101.2), _seg(1, 1950, 102.3)))
    # stream 1 starts at t=101, 4 s of audio; its end comes 3 s after its last audio: behind
    b = StreamObs(1, "b.wav", 4000.0, 101.0, 105.0, 108.0, (_seg(0, 500, 101.9, speech_ms=0),))
    return [a, b]


def test_realtime_summary_from_plain_observations() -> None:
    batches = [BatchObs(1, 1.0, 80.0, (5.0,)), BatchObs(2, 3.0, 120.0, (10.0, 1.0))]
    r = report.realtime_summary(_streams(), batches, speed=1.0, chunk_ms=100)
    # latencies: 101.2-101.0 = 200 ms; 102.3-102.0 = 300 ms; 101.9-101.5 = 400 ms
    assert r["segments"] == 3
    assert r["latency_ms"]["p50"] == pytest.approx(300.0)
    assert r["latency_ms"]["max"] == pytest.approx(400.0)
    assert r["first_audio_latency_ms"]["count"] == 2  # the segment without speech is left out
    assert r["first_audio_latency_ms"]["max"] == pytest.approx(300.0)
    assert r["audio_s"] == 6.0 and r["wall_s"] == pytest.approx(8.0)  # first send 100, last end 108
    assert r["throughput"] == pytest.approx(0.75)
    assert r["streams_behind"] == 1 and r["streams_sustained"] == 0  # p95 is fine, but a stream fell behind
    b = r["batches"]
    assert b["size_histogram"] == {1: 1, 2: 1} and b["mean_size"] == 1.5 and b["segments"] == 3
    assert b["queue_ms"]["p50"] == 5.0
    assert b["model_ms_per_batch"]["mean"] == pytest.approx(100.0)
    assert b["model_ms_per_segment"] == pytest.approx(200.0 / 3)


def test_realtime_summary_sustained_when_nothing_goes_wrong() -> None:
    a, b = _streams()
    b = StreamObs(1, "b.wav", 4000.0, 101.0, 105.0, 105.5, b.segments)
    r = report.realtime_summary([a, b], [], speed=1.0, chunk_ms=100)
    assert r["streams_behind"] == 0 and r["streams_sustained"] == 2
    assert r["batches"]["mean_size"] is None and r["batches"]["queue_ms"]["p95"] is None


def test_failed_streams_count_and_do_not_add_throughput() -> None:
    a, _ = _streams()
    failed = StreamObs(1, "b.wav", 4000.0, 101.0, 105.0, None, (), error="UNAVAILABLE: gone")
    r = report.saturation_summary([a, failed], [])
    assert r["streams_failed"] == 1 and r["errors"] == ["UNAVAILABLE: gone"]
    assert r["audio_s"] == 2.0 and r["wall_s"] == pytest.approx(2.3)  # only the completed stream
    # a failed call means the run measured overload, not capacity: no throughput figure
    assert r["throughput"] is None and r["throughput_with_failures"] == pytest.approx(2.0 / 2.3)
    assert report.saturation_summary([failed], [])["throughput_with_failures"] is None
    assert report.saturation_summary([a], [])["throughput"] == pytest.approx(2.0 / 2.3)


def test_refused_segments_are_counted_by_status_and_void_throughput() -> None:
    a, b = _streams()
    refused = SegmentObs(1, 900, 101.8, False, 0, server_total_ms=0.0, failure="RESOURCE_EXHAUSTED")
    b = StreamObs(1, "b.wav", 4000.0, 101.0, 105.0, 105.5, (*b.segments, refused))
    for r in (
        report.saturation_summary([a, b], []),
        report.realtime_summary([a, b], [], speed=1.0, chunk_ms=100),
    ):
        assert r["failed_segments"] == 1 and r["segment_failures"] == {"RESOURCE_EXHAUSTED": 1}
        assert r["throughput"] is None and r["throughput_with_failures"] == pytest.approx(6.0 / 5.5)
    assert report.realtime_summary([a, b], [], speed=1.0, chunk_ms=100)["streams_sustained"] == 0


def test_ratio_table() -> None:
    on = {"saturation": {"throughput": 30.0}, "realtime": {"throughput": 8.0, "latency_ms": {"p95": 400.0}}}
    off = {"saturation": {"throughput": 10.0}, "realtime": {"throughput": 8.0, "latency_ms": {"p95": 1600.0}}}
    rows = {r["path"]: r for r in report.ratio_table(on, off)}
    assert rows["saturation.throughput"]["ratio"] == pytest.approx(3.0)
    assert rows["realtime.throughput"]["ratio"] == pytest.approx(1.0)
    assert rows["realtime.latency_ms.p95"]["ratio"] == pytest.approx(0.25)
    assert rows["realtime.latency_ms.p95"]["higher_is_better"] is False
    missing = report.ratio_table({}, off)
    assert all(r["ratio"] is None and r["on"] is None for r in missing)


# -- the real thing, small -----------------------------------------------------------------------


def _loadgen(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_optional_settings_are_passed_through_or_refused(tmp_path: Path) -> None:
    """--forced-tokens-per-s / --forced-units-per-s / --cpu-threads reach the settings when the build has them."""
    from benchmarks import loadgen

    opts = loadgen.RunOptions(
        streams=1, model=tmp_path, device="cpu", dtype="float32", max_batch_size=8, max_wait_ms=5.0, speed=1.0,
        stagger_s=0.0, chunk_ms=100, saturation_chunk_ms=1000, files=("jfk.flac",), targets=("spa",), speech=True,
        configs=("on",), slo_ms=1000.0, behind_s=2.0, timeout_s=60.0,
        cpu_threads=1, forced_tokens_per_s=12.5, forced_units_per_s=40.0,
    )  # fmt: skip
    where = {o: loadgen.settings_field_for(o) for o in loadgen.SETTINGS_FIELDS}
    if None in where.values():
        with pytest.raises(ValueError, match="not supported by this build"):
            loadgen.build_settings(opts, 8)
        missing = next(o for o, w in where.items() if w is None)
        proc = _loadgen(f"--{missing.replace('_', '-')}", "1", timeout=60)
        assert proc.returncode == 2 and "not supported by this build" in proc.stderr, proc.stderr
        return
    settings = loadgen.build_settings(opts, 8)
    for option, found in where.items():
        assert found is not None
        section, field = found
        assert getattr(getattr(settings, section), field) == getattr(opts, option)
    assert settings.engine.max_batch_size == 8 and settings.server.port == 0
    assert loadgen.build_settings(opts, 1).engine.max_batch_size == 1


def test_model_caveat_says_plainly_what_was_measured() -> None:
    assert report.model_caveat(False, 2_300_000_000) is None
    tiny = report.model_caveat(True, 1_200_000)
    assert tiny is not None and "TEST checkpoint" in tiny and "noise" in tiny and "1.2 M" in tiny
    full = report.model_caveat(True, 2_300_000_000)
    assert full is not None and "WITHOUT forced lengths" in full
    forced = report.model_caveat(True, 2_300_000_000, 12.0, 50.0)
    assert forced is not None and "FORCED" in forced and "12 text tokens/s, 50 units/s" in forced


def res_streams(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["results"]["batching_on"]["streams"]["realtime"]


def test_further_copies_of_a_file_are_rotated_so_streams_differ() -> None:
    from benchmarks.loadgen import Clip, stream_clips

    pcm = np.arange(32000, dtype=np.int16)  # 2 s
    a, b = Clip("a.wav", pcm), Clip("b.wav", pcm[:16000])
    got = stream_clips([a, b], 5, 0.5)
    assert [c.name for c in got] == ["a.wav", "b.wav", "a.wav@0.50s", "b.wav@0.50s", "a.wav@1.00s"]
    assert got[0] is a and got[1] is b
    np.testing.assert_array_equal(got[2].pcm, np.roll(pcm, -8000))
    np.testing.assert_array_equal(got[3].pcm, np.roll(pcm[:16000], -8000))
    np.testing.assert_array_equal(got[4].pcm, np.roll(pcm, -16000))
    assert all(len(c.pcm) == len(src.pcm) for c, src in zip(got, [a, b, a, b, a], strict=True))
    assert [c.name for c in stream_clips([a], 2, 0.0)] == ["a.wav", "a.wav"]  # 0: identical copies


def test_loadgen_end_to_end_two_streams(tmp_path: Path) -> None:
    """2 streams of jfk.flac at 4x real time against the test checkpoint, batching ON and OFF."""
    shared = REPO.parent / "shared" / "audio" / "jfk.flac"
    if not shared.is_file():
        pytest.fail(f"the shared test audio is missing: {shared}")
    out = tmp_path / "bench.json"
    args = ["--streams", "2", "--files", "jfk.flac", "--speed", "4", "--stagger-s", "0.5"]
    proc = _loadgen(*args, "--cpu-threads", "1", "--json", str(out), "--log-level", "WARNING", timeout=85)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "TEST MODEL" in proc.stdout and "ON / OFF" in proc.stdout

    doc = json.loads(out.read_text())
    assert doc["model"]["is_test_model"] is True and "TEST checkpoint" in doc["model"]["caveat"]
    assert doc["model"]["torch_threads"] == 1  # --cpu-threads reached the runner
    assert len(doc["git"]["commit"]) == 40 or doc["git"]["commit"] == "unknown"

    assert doc["machine"]["torch"] and doc["machine"]["cpu_count"] >= 1
    assert "benchmarks.loadgen" in doc["command"] and doc["config"]["streams"] == 2
    assert set(doc["results"]) == {"batching_on", "batching_off"}
    # the second stream plays jfk.flac rotated by --shift-s: what the server's segmenter cuts from both
    from benchmarks.loadgen import DEFAULT_SHIFT_S, load_clips, stream_clips
    from benchmarks.profile_stages import segments_of

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
