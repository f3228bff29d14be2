"""The segmenter's semantic end of turn (``eagerness``) on synthetic probabilities, the
end-of-turn model's answers scripted: a mid-sentence pause it calls incomplete is not cut, a
complete turn closes at the pause as the silence rule would, a pause it calls incomplete closes at
the eagerness's bound, and the segments depend on the answers, never on when they come or how the
audio was chunked. Defaults: min_silence 100 ms (the question comes at the 4th silent window),
pad 30 ms, min_speech 250 ms; medium eagerness: complete at 0.5, bound 4 s."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from tests.support.segmenter_probs import DEFAULT, SIL, SPEECH, W, as_values, index_stream, prob_runs, segment
from translate_svc.errors import InvalidInput
from translate_svc.vad.segmenter import (
    EAGERNESS,
    TURN_CONTEXT_SAMPLES,
    EagerEnd,
    EndReason,
    Segmenter,
    SegmenterConfig,
    SegmenterEvent,
    SegmentReady,
    SpeechDiscarded,
    SpeechEnded,
    SpeechResumed,
    SpeechStarted,
    TurnQuestion,
)

pytestmark = pytest.mark.unit

MEDIUM = dataclasses.replace(DEFAULT, eagerness="medium")
#: speech 1 s (31 windows), a 320 ms pause (10 windows), speech 1 s, then 2 s of silence
SENTENCE = prob_runs((SIL, 10), (SPEECH, 31), (SIL, 10), (SPEECH, 31), (SIL, 62))


def run(
    probs: Sequence[float],
    config: SegmenterConfig,
    answers: Callable[[TurnQuestion], float],
    *,
    chunk: int | None = None,
    finish: bool = True,
) -> tuple[list[object], list[TurnQuestion]]:
    """Feed ``probs`` in ``chunk``-sample pieces; answer each question at once with ``answers``.
    Returns the events as values (the questions left out) and the questions."""
    length = len(probs) * W
    x = index_stream(length)
    p = np.asarray(probs, dtype=np.float32)
    seg = Segmenter(config)
    events: list[SegmenterEvent] = []
    asked: list[TurnQuestion] = []

    def take(new: list[SegmenterEvent]) -> None:
        for e in new:
            if isinstance(e, TurnQuestion):
                asked.append(e)
                take(seg.answer(e, answers(e)))
            else:
                events.append(e)

    step = chunk or length
    done = 0
    for i in range(0, length, step):
        piece = x[i : i + step]
        ready = min((i + piece.size) // W, p.size)
        take(seg.push(piece, p[done:ready]))
        done = ready
    if finish:
        take(seg.finish())
    return as_values(events, x), asked


def test_the_silence_rule_cuts_a_mid_sentence_pause_and_the_semantic_rule_does_not() -> None:
    silence, none_asked = run(SENTENCE, DEFAULT, lambda q: pytest.fail("the silence rule asks nothing"))
    assert none_asked == []
    # speech windows 10..40 and 51..81: two segments, each closed by silence
    assert silence == [
        SpeechStarted(10 * W - 480),
        segment(10 * W - 480, 41 * W + 480),
        SpeechEnded(41 * W + 480),
        SpeechStarted(51 * W - 480),
        segment(51 * W - 480, 82 * W + 480),
        SpeechEnded(82 * W + 480),
    ]

    # the first pause is called incomplete, the second complete: one segment, closed by the model
    semantic, asked = run(SENTENCE, MEDIUM, lambda q: 0.1 if q.pause == 41 * W else 0.9)
    assert [q.pause for q in asked] == [41 * W, 82 * W]
    assert semantic == [
        SpeechStarted(10 * W - 480),
        segment(10 * W - 480, 82 * W + 480, EndReason.TURN),
        SpeechEnded(82 * W + 480),
    ]


def test_a_question_comes_at_min_silence_with_the_turns_audio_to_the_window_that_asked() -> None:
    _, asked = run(SENTENCE, MEDIUM, lambda q: 0.9)
    first = asked[0]
    # silent windows from 41: the 4th past the first (100 ms = 1600 samples) is window 45
    assert (first.pause, first.sample) == (41 * W, 46 * W)
    np.testing.assert_array_equal(first.samples, index_stream(46 * W)[10 * W - 480 :])


def test_a_question_carries_at_most_the_turns_last_eight_seconds() -> None:
    probs = prob_runs((SPEECH, 300), (SIL, 40))  # 9.6 s of speech
    config = dataclasses.replace(MEDIUM, max_segment_ms=15_000)
    _, asked = run(probs, config, lambda q: 0.9)
    (q,) = asked
    assert len(q.samples) == TURN_CONTEXT_SAMPLES
    assert q.samples[-1] == q.sample - 1


def test_a_pause_called_incomplete_closes_at_the_eagerness_bound_as_silence() -> None:
    for name, rule in EAGERNESS.items():
        bound_windows = -(-rule.bound_ms * 16 // W)
        probs = prob_runs((SIL, 5), (SPEECH, 31), (SIL, bound_windows + 20))
        config = dataclasses.replace(DEFAULT, eagerness=name)
        values, asked = run(probs, config, lambda q: 0.0, finish=False)
        assert len(asked) == 1, name  # once a pause
        assert values == [SpeechStarted(5 * W - 480), segment(5 * W - 480, 36 * W + 480), SpeechEnded(36 * W + 480)]
        # it closed once the pause lasted the bound, not before
        shorter = prob_runs((SIL, 5), (SPEECH, 31), (SIL, bound_windows - 1))
        open_values, _ = run(shorter, config, lambda q: 0.0, finish=False)
        assert open_values == [SpeechStarted(5 * W - 480)], name


def test_the_eagerness_sets_how_sure_the_model_must_be() -> None:
    for name, rule in EAGERNESS.items():
        config = dataclasses.replace(DEFAULT, eagerness=name)
        sure, _ = run(SENTENCE, config, lambda q, p=rule.threshold: p)
        unsure, _ = run(SENTENCE, config, lambda q, p=rule.threshold - 0.01: p)
        assert [v[3] for v in sure if isinstance(v, tuple)] == [EndReason.TURN, EndReason.TURN], name
        assert len([v for v in unsure if isinstance(v, tuple)]) == 1, name


def test_segments_are_the_same_however_the_audio_is_chunked_and_whenever_the_answers_come() -> None:
    rng = np.random.default_rng(7)
    for trial in range(30):
        walk = np.abs((np.cumsum(rng.normal(0, 0.25, 600)) + 1) % 2 - 1)
        eagerness = str(rng.choice(list(EAGERNESS)))
        config = dataclasses.replace(
            DEFAULT,
            eagerness=eagerness,
            max_segment_ms=int(rng.choice([2500, 15000])),
            eager_threshold=float(rng.choice([0.0, EAGERNESS[eagerness].threshold / 2])),
        )

        def answers(q: TurnQuestion) -> float:
            return float(np.sin(q.pause) * 0.5 + 0.5)  # a fixed answer per pause

        whole, asked = run(walk.tolist(), config, answers)
        assert asked, trial
        where = [(q.pause, q.sample) for q in asked]
        for chunk in (W, 320, 5000):
            values, again = run(walk.tolist(), config, answers, chunk=chunk)
            assert values == whole, (trial, chunk)
            assert [(q.pause, q.sample) for q in again] == where, (trial, chunk)
        # answers that come late, after more audio was pushed, change nothing
        assert late_answers(walk, config, answers) == whole, trial


def late_answers(walk: np.ndarray, config: SegmenterConfig, answers: Callable[[TurnQuestion], float]) -> list[object]:
    """Push window by window; answer each question only after three more windows were pushed."""
    x = index_stream(len(walk) * W)
    seg = Segmenter(config)
    events: list[SegmenterEvent] = []
    waiting: list[tuple[TurnQuestion, int]] = []

    def take(new: list[SegmenterEvent], i: int) -> None:
        for e in new:
            if isinstance(e, TurnQuestion):
                waiting.append((e, i + 3))
            else:
                events.append(e)

    for i, p in enumerate(walk):
        take(seg.push(x[i * W : (i + 1) * W], np.array([p], np.float32)), i)
        while waiting and waiting[0][1] <= i:
            q, _ = waiting.pop(0)
            take(seg.answer(q, answers(q)), i)
    while waiting:
        q, _ = waiting.pop(0)
        take(seg.answer(q, answers(q)), len(walk))
    events += seg.finish()
    return as_values(events, x)


def test_a_flush_while_asking_closes_and_the_late_answer_changes_nothing() -> None:
    probs = prob_runs((SIL, 5), (SPEECH, 31), (SIL, 6), (SPEECH, 10))
    x = index_stream(len(probs) * W)
    seg = Segmenter(MEDIUM)
    events = seg.push(x, np.asarray(probs, np.float32))
    (q,) = [e for e in events if isinstance(e, TurnQuestion)]
    assert seg.asking is q
    flushed = seg.flush()
    assert [e for e in flushed if isinstance(e, SpeechEnded)], flushed
    assert seg.asking is None
    assert seg.answer(q, 0.9) == []
    # the windows that waited for the answer are processed by the next push: the speech after it
    later = seg.push(np.zeros(0, np.float32), np.zeros(0, np.float32))
    assert [e for e in later if isinstance(e, SpeechStarted)] == [SpeechStarted(42 * W - 480)]


def test_finish_before_the_answer_is_a_bug_of_the_caller() -> None:
    probs = prob_runs((SIL, 5), (SPEECH, 31), (SIL, 10))
    seg = Segmenter(MEDIUM)
    seg.push(index_stream(len(probs) * W), np.asarray(probs, np.float32))
    assert seg.asking is not None
    with pytest.raises(RuntimeError, match="TurnQuestion"):
        seg.finish()


def test_speech_too_short_to_keep_is_dropped_at_min_silence_unasked_as_by_the_silence_rule() -> None:
    short = prob_runs((SIL, 5), (SPEECH, 6), (SIL, 20), (SPEECH, 31), (SIL, 10))  # 192 ms, then a pause
    values, asked = run(short, MEDIUM, lambda q: 0.9)
    silence, _ = run(short, DEFAULT, lambda q: 0.9)
    assert [q.pause for q in asked] == [62 * W]  # only after the longer speech
    assert values[0] == silence[0] == SpeechDiscarded(5 * W, 11 * W)


def test_the_end_of_the_stream_closes_a_pause_held_open_where_the_speech_ended() -> None:
    # a pause that reaches min_silence only in the stream's last windows: no question, the end closes it
    ending = prob_runs((SIL, 5), (SPEECH, 31), (SIL, 3))
    values, asked = run(ending, MEDIUM, lambda q: 0.9)
    assert asked == []
    assert values[-2:] == [segment(5 * W - 480, 36 * W + 480, EndReason.END_OF_STREAM), SpeechEnded(36 * W + 480)]
    # a pause called incomplete and still held at the end: the segment ends at the pause, not with the stream
    held = prob_runs((SIL, 5), (SPEECH, 31), (SIL, 60))
    values, asked = run(held, MEDIUM, lambda q: 0.0)
    assert len(asked) == 1
    assert values[-2:] == [segment(5 * W - 480, 36 * W + 480, EndReason.END_OF_STREAM), SpeechEnded(36 * W + 480)]
    # speech with no pause in progress runs to the end of the stream, as silero's does, by either rule
    unpaused = prob_runs((SIL, 5), (SPEECH, 10), (0.4, 40))  # above the hysteresis' 0.35: still speech
    for config in (DEFAULT, MEDIUM):
        assert run(unpaused, config, lambda q: 0.0)[0][-2:] == [
            segment(5 * W - 480, 55 * W, EndReason.END_OF_STREAM),
            SpeechEnded(55 * W),
        ]
    # a blip before the stream's last second of silence is dropped by either rule (jfk.flac's tail)
    blip = prob_runs((SIL, 5), (SPEECH, 3), (0.0, 40))
    for config in (DEFAULT, MEDIUM):
        assert run(blip, config, lambda q: 0.0) == ([SpeechDiscarded(5 * W, 8 * W)], [])


def test_the_cap_closes_at_a_pause_the_semantic_rule_holds_open() -> None:
    config = dataclasses.replace(MEDIUM, max_segment_ms=2_500)
    probs = prob_runs((SIL, 2), (SPEECH, 60), (SIL, 40), (SPEECH, 20), (SIL, 20))
    values, asked = run(probs, config, lambda q: 0.0)
    assert asked
    # the pause began at window 62; the cap (2.5 s from 2 W - 480) fires inside it: the segment ends at the pause
    assert values[:3] == [SpeechStarted(2 * W - 480), segment(2 * W - 480, 62 * W + 480), SpeechEnded(62 * W + 480)]


def test_an_eagerness_the_server_does_not_know_is_refused_naming_the_values() -> None:
    with pytest.raises(InvalidInput, match=r"vad\.eagerness='eager'.*low, medium, high, auto"):
        dataclasses.replace(DEFAULT, eagerness="eager")
    assert DEFAULT.eagerness_rule is None
    assert dataclasses.replace(DEFAULT, eagerness="auto").eagerness_rule == EAGERNESS["medium"]


# -- the eager end of turn (``eager_threshold``) ------------------------------------------------------

EAGER = dataclasses.replace(MEDIUM, eager_threshold=0.2)


def eager_event(value: object) -> bool:
    """An ``EagerEnd`` (as ``as_values`` shows it) or a ``SpeechResumed``."""
    return isinstance(value, SpeechResumed) or (isinstance(value, tuple) and value[0] == "eager")


def test_an_eager_end_whose_speech_resumes_is_said_and_the_segments_are_the_rules_own() -> None:
    plain, _ = run(SENTENCE, MEDIUM, lambda q: 0.3 if q.pause == 41 * W else 0.9)
    eager, asked = run(SENTENCE, EAGER, lambda q: 0.3 if q.pause == 41 * W else 0.9)
    assert [q.pause for q in asked] == [41 * W, 82 * W]
    # at the first pause (incomplete at 0.3, eager at 0.2): the segment as the pause would close
    # it, then speech resumes at window 51; the segments are those without the eager end
    assert eager == [
        SpeechStarted(10 * W - 480),
        ("eager", 41 * W, 10 * W - 480, 41 * W + 480),
        SpeechResumed(41 * W, 51 * W),
        segment(10 * W - 480, 82 * W + 480, EndReason.TURN),
        SpeechEnded(82 * W + 480),
    ]
    assert [v for v in eager if not eager_event(v)] == plain


def test_an_eager_end_the_bound_confirms_is_the_segment_that_closes() -> None:
    bound_windows = -(-EAGERNESS["medium"].bound_ms * 16 // W)
    probs = prob_runs((SIL, 5), (SPEECH, 31), (SIL, bound_windows + 20))
    values, _ = run(probs, EAGER, lambda q: 0.25, finish=False)
    eager = [v for v in values if eager_event(v)]
    closed = [v for v in values if isinstance(v, tuple) and v[0] == "segment"]
    assert closed == [segment(5 * W - 480, 36 * W + 480)]  # the eager end's span: its work is kept
    assert eager == [("eager", 36 * W, 5 * W - 480, 36 * W + 480)]  # and no SpeechResumed


def test_no_eager_end_below_its_threshold_nor_without_the_setting() -> None:
    for config, p in ((EAGER, 0.19), (MEDIUM, 0.45)):
        values, asked = run(SENTENCE, config, lambda q, p=p: p)
        assert asked
        assert not [v for v in values if eager_event(v)]


def test_a_flush_after_an_eager_end_closes_its_segment_and_nothing_resumes() -> None:
    probs = prob_runs((SIL, 5), (SPEECH, 31), (SIL, 8))
    x = index_stream(len(probs) * W)
    seg = Segmenter(EAGER)
    events = seg.push(x, np.asarray(probs, np.float32))
    (q,) = [e for e in events if isinstance(e, TurnQuestion)]
    (eager,) = [e for e in seg.answer(q, 0.3) if isinstance(e, EagerEnd)]
    flushed = seg.flush()
    (closed,) = [e for e in flushed if isinstance(e, SegmentReady)]
    assert (closed.start_sample, closed.end_sample) == (eager.start_sample, eager.end_sample)
    more = seg.push(index_stream(10 * W), np.full(10, SPEECH, np.float32))
    assert not [e for e in more if isinstance(e, SpeechResumed)]


def test_an_eager_threshold_asked_needs_an_eagerness_and_sits_below_its_threshold() -> None:
    with pytest.raises(InvalidInput, match=r"vad\.eager_threshold=0\.2 needs a semantic end of turn"):
        dataclasses.replace(DEFAULT, eager_threshold=0.2).check_eager()
    with pytest.raises(
        InvalidInput, match=r"vad\.eager_threshold=0\.5 is out of range: use a value above 0 and below 0\.5"
    ):
        dataclasses.replace(MEDIUM, eager_threshold=0.5).check_eager()
    with pytest.raises(InvalidInput, match=r"vad\.eager_threshold=-0\.1 is out of range"):
        dataclasses.replace(MEDIUM, eager_threshold=-0.1)
    dataclasses.replace(MEDIUM, eager_threshold=0.49).check_eager()
    # a server's default applies where the stream's eagerness allows it, and is not an error elsewhere
    server = dataclasses.replace(DEFAULT, eager_threshold=0.4)
    assert server.eager == 0.0
    assert [dataclasses.replace(server, eagerness=e).eager for e in ("low", "medium", "high")] == [0.4, 0.4, 0.0]
    values, _ = run(SENTENCE, dataclasses.replace(server, eagerness="high"), lambda q: 0.29)
    assert not [v for v in values if eager_event(v)]
