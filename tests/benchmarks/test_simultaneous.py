"""The pure parts of benchmarks/tools/simultaneous.py: the continuous input, an event log turned into
what a listener gets (SimulEval's instance), retractions, /metrics figures, the policy's floor."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.tools import simultaneous as bench
from benchmarks.tools.simultaneous import Output

pytestmark = pytest.mark.unit


def test_cut_regions_trims_both_ends_and_drops_short_spans() -> None:
    audio = np.arange(100)
    regions = bench.cut_regions(audio, [(10, 30), (40, 44), (50, 90)], trim=3)
    assert [r.tolist() for r in regions] == [list(range(13, 27)), list(range(53, 87))]


@pytest.mark.parametrize("spans", [[(10, 5)], [(0, 101)], [(20, 30), (25, 40)]])
def test_cut_regions_refuses_bad_spans(spans: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):
        bench.cut_regions(np.zeros(100), spans)


def test_continuous_cycles_the_regions_until_long_enough() -> None:
    a, b = np.full(3, 1), np.full(4, 2)
    out = bench.continuous([a, b], 9)
    assert out.tolist() == [1, 1, 1, 2, 2, 2, 2, 1, 1, 1]  # stops at the end of a region, >= 9
    assert len(bench.continuous([a, b], 7)) == 7
    with pytest.raises(ValueError):
        bench.continuous([np.zeros(0)], 5)


def _commit(seg: int, t: float, text: str, speech: float = 0.0, final: bool = False) -> Output:
    return Output("commit", seg, t, t, text, speech, source_ms=t, final=final)


def _result(seg: int, t: float, text: str, speech: float, *, in_commits: bool, start: int, end: int) -> Output:
    return Output(
        "result", seg, t, t, text, speech, final=True, speech_in_commits=in_commits, start_ms=start, end_ms=end
    )


# Two segments: segment 0 committed in steps (its result repeats the speech: not counted again);
# segment 1 committed nothing before its end (its result is what the listener gets).
LOG = [
    _commit(0, 2000, "w0 w1 ", 0.0),
    _commit(0, 3000, "w2 w3 w4 ", 1000.0),
    _commit(0, 4100, "w5 w6", 400.0, final=True),
    _result(0, 4120, "w0 w1 w2 w3 w4 w5 w6", 1400.0, in_commits=True, start=0, end=4000),
    _result(1, 6500, "w0 w1", 400.0, in_commits=False, start=5000, end=6000),
]


def test_listener_outputs_take_commits_where_a_segment_had_them() -> None:
    inst = bench.listener_outputs(LOG, source_ms=6400)
    assert inst.text_delays == [2000, 2000, 3000, 3000, 3000, 4100, 4100, 6400, 6400]  # NCA capped at the source
    assert inst.text_times == [2000, 2000, 3000, 3000, 3000, 4100, 4100, 6500, 6500]
    assert inst.speech_durations == [1000, 400, 400]
    assert inst.speech_times == [3000, 4100, 6500]
    assert inst.speech_segments == [0, 0, 1]
    assert bench.first_speech_after(inst, onset_ms=100) == 2900
    assert bench.per_segment_first_speech(LOG, inst) == [3000, 1500]


def test_latency_of_the_log() -> None:
    lat = bench.latency(bench.listener_outputs(LOG, 6400), 6400)
    assert lat["text"]["StartOffset"] == 2000 and lat["text"]["EndOffset"] == 0
    assert lat["text"]["EndOffset_CA"] == 100
    # speech timeline: 3000-4000, 4100-4500, 6500-6900
    assert lat["speech"]["StartOffset"] == 3000 and lat["speech"]["EndOffset_CA"] == 500
    assert set(lat["text"]) == {
        f"{m}{s}" for m in ("StartOffset", "EndOffset", "AL", "LAAL", "ATD") for s in ("", "_CA")
    }
    assert bench.latency(bench.Instance(), 1000) == {"text": {}, "speech": {}}


def test_retractions_compare_joined_commits_with_the_final_text() -> None:
    assert bench.retractions(LOG) == []
    changed = [*LOG[:3], _result(0, 4120, "w0 w1 w2 X w4 w5 w6", 1400.0, in_commits=True, start=0, end=4000)]
    assert bench.retractions(changed) == [0]
    assert bench.retractions(LOG[:2]) == [0]  # committed words and no result: lost


def test_parse_metrics_and_delta() -> None:
    page = (
        "# TYPE translate_svc_batch_model_ms histogram\n"
        'translate_svc_batch_model_ms_bucket{le="+Inf"} 3.0\n'
        "translate_svc_batch_model_ms_count 3.0\n"
        "translate_svc_batch_model_ms_sum 12.5\n"
        "# TYPE translate_svc_simultaneous_steps_total counter\n"
        'translate_svc_simultaneous_steps_total{outcome="run"} 7.0\n'
        'translate_svc_simultaneous_steps_total{outcome="skipped"} 2.0\n'
        "# TYPE translate_svc_simultaneous_step_audio_seconds_total counter\n"
        "translate_svc_simultaneous_step_audio_seconds_total 21.5\n"
        "# TYPE translate_svc_tenant_audio_seconds_total counter\n"
        'translate_svc_tenant_audio_seconds_total{tenant="a"} 6.0\n'
        'translate_svc_tenant_audio_seconds_total{tenant="b"} 2.0\n'
    )
    m = bench.parse_metrics(page)
    assert m == {
        "batch_model_ms_sum": 12.5,
        "batch_count": 3.0,
        "steps_run": 7.0,
        "steps_skipped": 2.0,
        "step_audio_s": 21.5,
        "audio_received_s": 8.0,
    }
    assert bench.metrics_delta({"batch_model_ms_sum": 2.5}, m)["batch_model_ms_sum"] == 10.0


def test_predicted_first_speech_of_the_stable_translator() -> None:
    # agreement 2 at 1000 ms steps: words agree at the second step; 5 words (50 units) at the third
    assert bench.predicted_first_speech(1000, 2, 50) == {"text_ms": 2000, "speech_ms": 3000, "words_spoken": 5}
    assert bench.predicted_first_speech(500, 2, 50)["speech_ms"] == 2500
    assert bench.predicted_first_speech(1000, 2, 20)["speech_ms"] == 2000


def test_parse_mode() -> None:
    assert bench.parse_mode("segment") == ("segment", None)
    assert bench.parse_mode("simul:500:2") == ("simul:500:2", (500, 2))
    assert bench.parse_mode("simul:1000:2:60000") == ("simul:1000:2:60000", (1000, 2))
    assert bench.mode_cap("simul:1000:2:60000") == 60000 and bench.mode_cap("simul:1000:2") is None
