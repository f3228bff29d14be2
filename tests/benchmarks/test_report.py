"""The load generator's statistics (benchmarks/tools/report.py) and its pure parts on plain values, and
its command's refusals (the end-to-end run is test_loadgen_run.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.tools import report  # the repo root is on pythonpath (pyproject's pytest section)
from benchmarks.tools.report import BatchObs, InterimObs, ProcCpu, SegmentObs, StreamObs
from tests.support.loadgen import loadgen

pytestmark = [pytest.mark.unit, pytest.mark.slow(2)]  # seconds, for the schedule (conftest.py)

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
    assert r["server_queue_ms"]["max"] == 0.0  # segments that carry no split count as 0, not missing
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


# -- external servers: accounting, captions, flood, CPU, the front-end ramp ------------------------


def test_batches_not_observed_are_null_not_zero() -> None:
    a, b = _streams()
    assert report.batch_summary(None) is None
    assert report.realtime_summary([a, b], None, speed=1.0, chunk_ms=100)["batches"] is None
    assert report.saturation_summary([a, b], None)["batches"] is None
    assert report.batch_summary([])["batches"] == 0  # observed, and none ran: that is a zero


def test_segments_expected_are_what_the_server_cut_on_streams_that_ended() -> None:
    a, b = _streams()
    a = StreamObs(0, "a.wav", 2000.0, 100.0, 102.0, 102.3, a.segments, segments_total=2)
    b = StreamObs(1, "b.wav", 4000.0, 101.0, 105.0, 105.5, b.segments, segments_total=3)  # 1 received of 3
    refused = StreamObs(2, "c.wav", 1000.0, 101.0, 102.0, None, (), error="RESOURCE_EXHAUSTED: at capacity")
    acc = report.segment_accounting([a, b, refused])
    assert acc == {"segments_expected": 5, "segments_received": 3, "segments_lost": 2, "segments_extra": 0}
    assert report.stream_failures([a, b, refused]) == {"RESOURCE_EXHAUSTED": 1}
    assert report.status_code(None) == "OK" and report.status_code("UNAVAILABLE: gone") == "UNAVAILABLE"
    r = report.realtime_summary([a, b, refused], None, speed=1.0, chunk_ms=100)
    assert r["segments_lost"] == 2 and r["stream_failures"] == {"RESOURCE_EXHAUSTED": 1}


def test_first_caption_latency_from_the_send_of_the_segments_start() -> None:
    # 20 ms messages at 1x from t=100: audio up to 1000 ms is sent at 101.0, up to 3000 ms at 103.0
    segs = (
        SegmentObs(0, 2500, 103.0, True, 0, 50.0, start_ms=1000),
        SegmentObs(1, 5000, 105.6, True, 0, 50.0, start_ms=3000),
        SegmentObs(2, 7000, 107.5, True, 0, 50.0, start_ms=6000),  # no interim: no caption latency
    )
    interims = (
        InterimObs(0, 1000, 2000, 102.3),  # first caption of segment 0: 1.3 s after its start was sent
        InterimObs(0, 1000, 2500, 102.9),
        InterimObs(1, 3010, 4000, 104.2),  # the result's start_ms (3000) wins over the interim's
        InterimObs(1, 3010, 4500, 105.7),  # after its final: a contract breach, counted
    )
    s = StreamObs(0, "a.wav", 8000.0, 100.0, 108.0, 108.1, segs, interims=interims)
    got = dict(report.first_caption_latencies_ms(s, speed=1.0, chunk_ms=20))
    assert got == pytest.approx({0: 1300.0, 1: 1200.0})
    c = report.caption_summary([s], speed=1.0, chunk_ms=20)
    assert c["interims"] == 4 and c["segments_with_caption"] == 2 and c["interims_after_final"] == 1
    assert c["first_caption_latency_ms"]["max"] == pytest.approx(1300.0)
    # per interim: arrival - send of its end_ms: 300, 400, 200 and 1200 ms
    assert c["interim_latency_ms"]["count"] == 4 and c["interim_latency_ms"]["p50"] == pytest.approx(350.0)
    # an interim of a segment whose result never came: its own start_ms
    lone = StreamObs(0, "a.wav", 8000.0, 100.0, 108.0, None, (), interims=(InterimObs(5, 500, 1500, 101.0),))
    assert report.first_caption_latencies_ms(lone, speed=1.0, chunk_ms=20) == [(5, pytest.approx(500.0))]
    assert report.caption_summary([], speed=1.0, chunk_ms=20)["first_caption_latency_ms"]["p95"] is None


def test_flood_summary_counts_how_flood_streams_ended_and_measures_from_the_actual_send() -> None:
    sent = tuple(10.0 + 0.001 * k for k in range(1000))  # 1000 messages of 20 ms (20 s of audio) in 1 s
    ok = StreamObs(
        5, "flood:a", 20_000.0, 10.0, 11.0, 11.5, (SegmentObs(0, 1000, 10.249, True, 0, 5.0),),
        segments_total=1, audio_messages=1000, chunk_ms=20.0, sent_s=sent,
    )  # fmt: skip
    refused = StreamObs(
        6, "flood:b", 20_000.0, 10.0, 10.5, None, (), error="RESOURCE_EXHAUSTED: queue full",
        audio_messages=500, chunk_ms=20.0, sent_s=sent[:500],
    )  # fmt: skip
    f = report.flood_summary([ok, refused])
    assert f["ended_with"] == {"OK": 1, "RESOURCE_EXHAUSTED": 1}
    assert f["audio_s"] == pytest.approx(30.0) and f["wall_s"] == pytest.approx(1.5)
    assert f["throughput"] == pytest.approx(20.0)
    # segment 0 ends at 1000 ms: message 49 (sent at 10.049) carried it; arrived at 10.249
    assert f["latency_ms"]["max"] == pytest.approx(200.0)
    assert f["segments_expected"] == 1 and f["segments_lost"] == 0
    assert f["speed_per_stream"][0] == pytest.approx(20.0 / 1.5)


def test_parse_proc_stat_reads_past_odd_command_names() -> None:
    fields = ["S"] + ["0"] * 10 + ["250", "50"] + ["0"] * 30  # utime (field 14) 250, stime 50 ticks
    assert report.parse_proc_stat("42 (a (b) c) " + " ".join(fields), 100) == ("a (b) c", 3.0)


def test_cpu_use_gives_cores_and_cpu_per_message() -> None:
    before, after = ProcCpu(10.0, 5.0, 1000), ProcCpu(20.0, 14.0, 31_000)
    u = report.cpu_use(before, after)
    assert u["cores"] == pytest.approx(0.9) and u["cpu_us_per_message"] == pytest.approx(300.0)
    assert report.cpu_use(None, after)["cores"] is None
    assert report.cpu_use(before, ProcCpu(20.0, 14.0, 1000))["cpu_us_per_message"] is None  # no messages
    threads = report.thread_cpu(
        ProcCpu(0, 0, threads=(("loop", 1.0), ("vad", 0.5))),
        ProcCpu(1, 0, threads=(("loop", 3.0), ("vad", 0.5), ("new", 0.2))),
    )
    assert threads == {"loop": 2.0, "new": 0.2}
    samples = [ProcCpu(float(t), float(t)) for t in range(10)]
    assert report.steady_window(samples, 2.5, 7.0) == (samples[3], samples[7])
    assert report.steady_window(samples, 2.5, 3.0) is None


def _step(**kw: Any) -> dict[str, Any]:
    base = {
        "streams": 50, "server_cores": 0.5, "p95_latency_ms": 300.0, "slo_ms": 1000.0, "segments_expected": 10,
        "segments_lost": 0, "failed_segments": 0, "streams_failed": 0, "streams_behind": 0,
    }  # fmt: skip
    return {**base, **kw}


def test_kept_up_needs_cpu_headroom_no_loss_and_the_latency_slo() -> None:
    assert report.kept_up(_step()) == (True, [])
    for bad, phrase in (
        ({"server_cores": 0.95}, "cores"),
        ({"server_cores": None}, "not measured"),
        ({"segments_lost": 2}, "lost"),
        ({"failed_segments": 1, "segment_failures": {"RESOURCE_EXHAUSTED": 1}}, "RESOURCE_EXHAUSTED x1"),
        ({"streams_failed": 3, "stream_failures": {"RESOURCE_EXHAUSTED": 3}}, "3 streams failed"),
        ({"streams_behind": 1}, "behind"),
        ({"p95_latency_ms": 1200.0}, "p95 latency"),
        ({"p95_latency_ms": None}, "no segment latency"),
    ):
        ok, why = report.kept_up(_step(**bad))
        assert not ok and any(phrase in w for w in why), (bad, why)
    # no segment cut at all (a VAD threshold of 0.99): nothing to time, judged on the rest
    assert report.kept_up(_step(p95_latency_ms=None, segments_expected=0))[0]
    assert not report.kept_up(_step(server_cores=0.6), max_cores=0.5)[0]


def test_streams_per_core_is_the_largest_step_that_kept_up() -> None:
    steps = [
        {"streams": 25, "kept_up": True},
        {"streams": 50, "kept_up": True},
        {"streams": 100, "kept_up": False, "reasons": ["server used 0.97 cores (>= 0.9)"]},
    ]
    r = report.streams_per_core(steps)
    assert r["streams_per_core"] == 50 and not r["all_kept_up"]
    assert r["first_failure"] == {"streams": 100, "reasons": ["server used 0.97 cores (>= 0.9)"]}
    assert report.streams_per_core(steps[:2]) == {"streams_per_core": 50, "first_failure": None, "all_kept_up": True}
    none = report.streams_per_core([{"streams": 25, "kept_up": False, "reasons": ["x"]}])
    assert none["streams_per_core"] is None and none["first_failure"]["streams"] == 25


def test_model_caveat_for_an_external_server_of_unknown_size() -> None:
    caveat = report.model_caveat(True, None)
    assert caveat is not None and "noise" in caveat
    assert report.model_caveat(False, None) is None


def test_loadgen_refuses_opus_with_other_message_lengths_and_pid_without_target() -> None:
    proc = loadgen("--encoding", "opus", "--chunk-ms", "100", timeout=60)
    assert proc.returncode == 2 and "20 ms Opus packet" in proc.stdout + proc.stderr
    proc = loadgen("--server-pid", str(os.getpid()), timeout=60)
    assert proc.returncode == 2 and "needs --target" in proc.stdout + proc.stderr


def test_opus_packets_are_20_ms_each_and_clips_fit_to_length() -> None:
    from benchmarks.tools.loadgen.clips import Clip, encode_clips, fit_clip, opus_packets

    pcm = (np.sin(np.arange(16000) / 5.0) * 8000).astype(np.int16)  # 1 s
    packets = opus_packets(pcm)
    assert 50 <= len(packets) <= 52 and all(0 < len(p) < 400 for p in packets)  # the encoder's delay: +1 or 2
    a = Clip("a.wav", pcm)
    looped = fit_clip(a, 2.5)
    assert looped.name == "a.wav[2.5s]" and len(looped.pcm) == 40000
    np.testing.assert_array_equal(looped.pcm[16000:32000], pcm)
    assert fit_clip(a, 0) is a and len(fit_clip(a, 0.5).pcm) == 8000
    enc = encode_clips([a, a], "opus")
    assert enc[0].packets is enc[1].packets and enc[0].audio_ms == 20.0 * len(packets)  # encoded once
    assert encode_clips([a], "linear16") == [a]


# -- the real thing, small -----------------------------------------------------------------------


def test_optional_settings_are_passed_through_or_refused(tmp_path: Path) -> None:
    """--forced-tokens-per-s, --forced-units-per-s, --cpu-threads, --warmup reach the settings if the build has them."""
    from benchmarks.tools.loadgen import options as loadgen

    opts = loadgen.RunOptions(
        streams=1, model=tmp_path, device="cpu", dtype="float32", max_batch_size=8, max_wait_ms=5.0, speed=1.0,
        stagger_s=0.0, chunk_ms=100, saturation_chunk_ms=1000, files=("jfk.flac",), targets=("spa",), speech=True,
        configs=("on",), slo_ms=1000.0, behind_s=2.0, timeout_s=60.0,
        cpu_threads=1, forced_tokens_per_s=12.5, forced_units_per_s=40.0, warmup="one",
    )  # fmt: skip
    where = {o: loadgen.settings_field_for(o) for o in loadgen.SETTINGS_FIELDS}
    if None in where.values():
        with pytest.raises(ValueError, match="not supported by this build"):
            loadgen.build_settings(opts, 8)
        missing = next(o for o, w in where.items() if w is None)
        proc = loadgen(f"--{missing.replace('_', '-')}", "1", timeout=60)
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


def test_further_copies_of_a_file_are_rotated_so_streams_differ() -> None:
    from benchmarks.tools.loadgen.clips import Clip, stream_clips

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


def test_the_server_time_is_split_into_queue_and_model() -> None:
    """Each segment's own Timing.queue_ms and model_ms, summarized beside server_total_ms: where a
    slow segment's time went (waiting for the model, or in it)."""
    segs = tuple(
        SegmentObs(i, 1000 * (i + 1), 101.0 + i + 0.3, True, 0, server_total_ms=q + m, queue_ms=q, model_ms=m)
        for i, (q, m) in enumerate([(5.0, 60.0), (100.0, 200.0), (10.0, 70.0)])
    )
    s = StreamObs(0, "a.wav", 3000.0, 100.0, 103.0, 103.5, segs)
    r = report.realtime_summary([s], [], speed=1.0, chunk_ms=100)
    assert r["server_queue_ms"]["p50"] == pytest.approx(10.0) and r["server_queue_ms"]["max"] == pytest.approx(100.0)
    assert r["server_model_ms"]["p50"] == pytest.approx(70.0) and r["server_model_ms"]["max"] == pytest.approx(200.0)
    assert r["server_total_ms"]["max"] == pytest.approx(300.0)
