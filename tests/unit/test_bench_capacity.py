"""The bench's pure parts: a step kept or not, the suggestion, the streams' clips, /metrics parsing."""

from __future__ import annotations

import numpy as np

from translate_svc.cli.load.capacity import MAX_LAG_MS, ServerUse, suggest, summarize
from translate_svc.cli.load.clips import SAMPLE_RATE, Clip, fit_pcm, stream_clips
from translate_svc.cli.load.ramp import parse_metrics
from translate_svc.cli.load.streams import SegmentObs, StreamObs


def _stream(*latencies: float, lag: float = 0.0, error: str | None = None, ok: bool = True) -> StreamObs:
    return StreamObs(4.0, tuple(SegmentObs(x, ok, 5.0, 20.0) for x in latencies), lag, error=error)


def test_a_step_is_kept_only_within_the_target_and_without_failures() -> None:
    use = ServerUse()
    good = summarize("segment", [_stream(100, 200), _stream(300)], 5.0, 1000, use)
    assert good.kept and good.segments == 3 and good.p50_ms == 200 and good.max_ms == 300 and good.audio_s == 8
    assert not summarize("segment", [_stream(100, 2000)], 5.0, 1000, use).kept  # p95 over the target
    assert not summarize("segment", [_stream(100), _stream(error="UNAVAILABLE")], 5.0, 1000, use).kept
    assert not summarize("segment", [_stream(100, ok=False)], 5.0, 1000, use).kept
    assert not summarize("segment", [_stream(100, lag=MAX_LAG_MS + 1)], 5.0, 1000, use).kept
    assert not summarize("segment", [_stream()], 5.0, 1000, use).kept  # nothing measured: not kept


def test_the_suggestion_is_the_largest_count_kept_with_every_smaller_one() -> None:
    def step(n: int, p95: float):  # type: ignore[no-untyped-def]
        return summarize("segment", [_stream(p95)] * n, 5.0, 1000, ServerUse())

    got = suggest([step(8, 500), step(1, 100), step(2, 200), step(4, 2000)], headroom=0.2)
    assert (got.max_streams, got.autoscaler_target) == (2, 1)  # 4 failed, so 8 does not count
    got = suggest([step(10, 100), step(20, 100)], headroom=0.2)
    assert (got.max_streams, got.autoscaler_target) == (20, 16)
    assert suggest([step(1, 5000)], headroom=0.2).max_streams is None


def test_each_stream_plays_the_clip_from_further_in_for_the_steps_length() -> None:
    clip = Clip("a.wav", np.arange(3 * SAMPLE_RATE, dtype=np.int16))
    clips = stream_clips(clip, 3, 5.0, shift_s=1.0)
    assert [len(c.pcm) for c in clips] == [5 * SAMPLE_RATE] * 3
    assert [int(c.pcm[0]) for c in clips] == [0, SAMPLE_RATE, 2 * SAMPLE_RATE]
    assert list(fit_pcm(np.arange(3), 7)) == [0, 1, 2, 0, 1, 2, 0]


def test_metrics_parsing_reads_the_process_collector() -> None:
    text = "process_cpu_seconds_total 12.5\nprocess_resident_memory_bytes 1.048576e+08\nother 1\n"
    assert parse_metrics(text) == (12.5, 104857600.0)
    assert parse_metrics("other 1\n") == (None, None)
