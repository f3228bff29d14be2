"""The Riva door's events out (split from transport/riva/convert.py): each segment's transcript or
translation as Riva's results, with its words and ``confidence``, a segment's speech,
and our extension fields in the response's ``id``. Sans I/O."""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Sequence
from typing import Any

from riva.client.proto import riva_asr_pb2 as asr
from riva.client.proto import riva_common_pb2 as common
from riva.client.proto import riva_nmt_pb2 as nmt

from translate_svc.types import InterimResult, SegmentResult, WordTiming
from translate_svc.wire.pcm import float_to_pcm16


def segment_fields(r: SegmentResult | InterimResult) -> common.RequestId:
    """Our extension in Riva's own field: the segment's id, span and timing as a query string in the
    response's ``id.value`` (``interim=1`` for a caption; ``status``/``message`` for a failed segment)."""
    fields: dict[str, Any] = {"segment": r.segment_id, "start_ms": r.start_ms, "end_ms": r.end_ms}
    if isinstance(r, InterimResult):
        fields["interim"] = 1
    else:
        t = r.timing
        fields.update(queue_ms=round(t.queue_ms), model_ms=round(t.model_ms), total_ms=round(t.total_ms))
        if r.error is not None:
            fields.update(status=r.error.code, message=r.error.message)
    return common.RequestId(value=urllib.parse.urlencode(fields))


def parse_segment_fields(value: str) -> dict[str, str]:
    """``segment_fields`` back (for clients and tests)."""
    return dict(urllib.parse.parse_qsl(value))


def speech_response(r: SegmentResult) -> nmt.StreamingTranslateSpeechToSpeechResponse:
    """One segment's speech (PCM16 at the asked rate; its text in ``meta.text``). A failed segment:
    no audio, and its status in ``id``."""
    out = nmt.StreamingTranslateSpeechToSpeechResponse(id=segment_fields(r))
    for t in r.translations:
        if t.audio is not None:
            out.speech.audio = float_to_pcm16(t.audio).astype("<i2").tobytes()
        out.speech.meta.text = t.text
    return out


def confidence(avg_logprob: float | None) -> float:
    """Riva's ``confidence`` in [0, 1]: exp of the mean token log-probability (the geometric mean of
    the chosen tokens' probabilities, docs/riva-compat.md); 0.0 where not computed, as Riva leaves it."""
    return 0.0 if avg_logprob is None else math.exp(avg_logprob)


def _result(
    text: str,
    language: str,
    r: SegmentResult | InterimResult,
    stability: float | None = None,
    logprob: float | None = None,
) -> asr.StreamingRecognitionResult:
    final = isinstance(r, SegmentResult)
    alternative = asr.SpeechRecognitionAlternative(
        transcript=text, language_code=[language] if language else [], confidence=confidence(logprob)
    )
    return asr.StreamingRecognitionResult(
        alternatives=[alternative],
        is_final=final,
        stability=(1.0 if final else 0.0) if stability is None else stability,
        audio_processed=r.end_ms / 1000,
    )


#: ``stability`` of a caption's settled words (simultaneous mode's committed words: never changed)
#: and of the words after them, which may still change
STABLE, UNSTABLE = 1.0, 0.0


def text_result(r: SegmentResult | InterimResult, target: str) -> nmt.StreamingTranslateSpeechToTextResponse:
    """One segment's translation (final) or a caption of the open speech (interim). A caption with
    settled words is two results, as Google's and Riva's streaming recognisers split an interim:
    the settled words (``stability`` 1.0: no later caption or final changes them), then the words
    that may still change (0.0); joined, they are the caption."""
    t = next(iter(r.translations), None)
    text = t.text if t is not None else ""
    if isinstance(r, InterimResult) and t is not None and t.stable_text:
        rest = text[len(t.stable_text) :]
        results = [_result(t.stable_text, target, r, STABLE), _result(rest, target, r, UNSTABLE)]
        return nmt.StreamingTranslateSpeechToTextResponse(results=results, id=segment_fields(r))
    logprob = t.avg_logprob if isinstance(r, SegmentResult) and t is not None else None
    response = nmt.StreamingTranslateSpeechToTextResponse(
        results=[_result(text, target, r, logprob=logprob)], id=segment_fields(r)
    )
    if isinstance(r, SegmentResult) and t is not None:
        _add_words(response.results[0].alternatives[0], t.words)
    return response


def transcript_result(r: SegmentResult | InterimResult, source: str) -> asr.StreamingRecognizeResponse:
    """One segment's transcript (final) or a caption of the open speech (interim)."""
    text = r.transcript.text if r.transcript is not None else ""
    language = r.transcript.language if r.transcript is not None else source
    logprob = r.transcript.avg_logprob if isinstance(r, SegmentResult) and r.transcript is not None else None
    response = asr.StreamingRecognizeResponse(
        results=[_result(text, language, r, logprob=logprob)], id=segment_fields(r)
    )
    if r.transcript is not None:
        _add_words(response.results[0].alternatives[0], r.transcript.words)
    return response


def _add_words(alternative: asr.SpeechRecognitionAlternative, words: Sequence[WordTiming]) -> None:
    """Riva's ``words``: each word with its ``start_time`` and ``end_time`` in milliseconds (on the
    stream's timeline for a transcript; in the translation's own speech for a translation), and its
    ``confidence``."""
    alternative.words.extend(
        asr.WordInfo(
            word=w.word,
            start_time=w.start_ms,
            end_time=w.end_ms,
            speaker_tag=w.speaker,
            confidence=confidence(w.logprob),
        )
        for w in words
    )
