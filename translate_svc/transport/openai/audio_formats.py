"""The audio REST endpoints' answers, sans I/O: a clip's segments as OpenAI's ``response_format``s
(``json``, ``text``, ``srt``, ``vtt``, ``verbose_json``) and as server-sent events
(``transcript.text.delta`` per segment, then ``transcript.text.done``).

Each segment of the stream core is one timed piece of text: a ``verbose_json`` segment, an SRT or
WebVTT cue (a segment with no text has no cue). What the model does not give is filled as whisper's
clients read it: ``tokens`` empty, ``temperature`` 0 (greedy decoding); ``compression_ratio`` is
whisper's, of the text. ``avg_logprob`` is the model's own: the mean log-probability of the tokens
it chose for the segment's text (absent where not computed); ``no_speech_prob`` is left
out, for SeamlessM4T has no no-speech token to read one from (the VAD decides what is speech).
With word timings (``timestamp_granularities[]=word``): ``verbose_json`` has ``words`` (each
transcript word, ``{word, start, end}`` in seconds, as OpenAI's transcription object, and its
tokens' mean log-probability as ``x_avg_logprob`` where computed), and SRT and
WebVTT cues are shaped from the words (``subtitles.word_cues``, the CLI's ``--word-cues`` rule: at
most two lines of 42 characters, never across two segments). Documents: ``subtitles`` (``srt``,
``webvtt-py``).
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from translate_svc.session.events import ClipResult
from translate_svc.subtitles import Cue, srt_document, vtt_document, word_cues
from translate_svc.types import ModelCard, SegmentResult, WordTiming

#: each format's content type
CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "diarized_json": "application/json",
    "text": "text/plain",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
}


@dataclass(frozen=True)
class Piece:
    """One segment's text on the clip's timeline."""

    segment_id: int
    start_ms: int
    end_ms: int
    text: str
    language: str | None  # the model's code of the text's language, where known
    #: the transcript's words on the clip's timeline (word timings asked for; a translation: none)
    words: tuple[WordTiming, ...] = ()
    #: its speaker label (``diarized_json``; 0: not labelled)
    speaker: int = 0
    #: the text's mean token log-probability (confidence); None: not computed
    avg_logprob: float | None = None
    #: the transcript's tokens and their log-probabilities (``include[]=logprobs``)
    tokens: tuple[tuple[str, float], ...] = ()
    #: a translation's source where it was detected (a conversation's segment): its model code
    source: str | None = None

    @property
    def span(self) -> dict[str, int]:
        return {"segment_id": self.segment_id, "start_ms": self.start_ms, "end_ms": self.end_ms}


def piece(r: SegmentResult, translate: bool) -> Piece:
    """A (successful) segment's text: its translation, or its transcript."""
    words: tuple[WordTiming, ...] = ()
    tokens: tuple[tuple[str, float], ...] = ()
    logprob = None
    if translate:
        t = r.translations[0] if r.translations else None
        text, language = (t.text, t.target_language) if t is not None else ("", None)
        logprob = t.avg_logprob if t is not None else None
    else:
        text = r.transcript.text if r.transcript is not None else ""
        language = r.transcript.language if r.transcript is not None else None
        words = r.transcript.words if r.transcript is not None else ()
        logprob = r.transcript.avg_logprob if r.transcript is not None else None
        tokens = r.transcript.tokens if r.transcript is not None else ()
    source = r.detected.language if translate and r.detected is not None else None
    return Piece(r.segment_id, r.start_ms, r.end_ms, _clean(text), language, words, r.speaker, logprob, tokens, source)


def body(
    fmt: str,
    clip: ClipResult,
    *,
    translate: bool,
    language: str | None,
    card: ModelCard | None,
    words: bool = False,
    logprobs: bool = False,
) -> tuple[str, str]:
    """The answer for ``fmt`` (its text and content type) of a clip whose segments all succeeded;
    ``words``: word timings were asked for (``verbose_json``'s ``words``, SRT and WebVTT cues of words)."""
    pieces = [piece(r, translate) for r in clip.segments]
    text = joined(pieces)
    duration = round(clip.audio_duration_ms / 1000, 3)
    if fmt == "text":
        out = text + "\n"
    elif fmt in ("srt", "vtt"):
        cues = _word_cues(pieces) if words else _segment_cues(pieces)
        out = srt_document(cues) if fmt == "srt" else vtt_document(cues)
    elif fmt == "verbose_json":
        answer = _verbose(pieces, text, duration, translate, language, card)
        if words:
            answer["words"] = [_word(w) for p in pieces for w in p.words]
        out = json.dumps(answer)
    elif fmt == "diarized_json":
        out = json.dumps(_diarized(pieces, text, duration))
    else:
        answer = {"text": text}
        if logprobs:
            answer["logprobs"] = token_logprobs([t for p in pieces for t in p.tokens])
        if not translate:
            answer["usage"] = {"type": "duration", "seconds": duration}
        out = json.dumps(answer)
    return out, CONTENT_TYPES[fmt]


def _segment_cues(pieces: Sequence[Piece]) -> list[Cue]:
    """A cue per segment with text, timed by its span."""
    return [(p.start_ms, _end(p), p.text) for p in pieces if p.text]


def _word_cues(pieces: Sequence[Piece]) -> list[Cue]:
    """Cues of the segments' words (``subtitles.word_cues``: the CLI's ``--word-cues``)."""
    return word_cues([[(w.start_ms, w.end_ms, w.word) for w in p.words] for p in pieces])


def _word(w: WordTiming) -> dict[str, Any]:
    """A word of ``verbose_json``: OpenAI's ``{word, start, end}`` and its confidence where computed."""
    out: dict[str, Any] = {"word": w.word, "start": w.start_ms / 1000, "end": w.end_ms / 1000}
    if w.logprob is not None:
        out["x_avg_logprob"] = w.logprob
    return out


def joined(pieces: Sequence[Piece]) -> str:
    return " ".join(p.text for p in pieces if p.text)


def delta_event(p: Piece, first: bool, *, logprobs: bool = False) -> dict[str, Any]:
    """A segment's text as one ``transcript.text.delta`` (appended: a space before all but the first),
    with its tokens' ``logprobs`` when asked."""
    event: dict[str, Any] = {"type": "transcript.text.delta", "delta": p.text if first else " " + p.text}
    event["x_segment"] = p.span
    if logprobs:
        event["logprobs"] = token_logprobs(p.tokens)
    return event


def done_event(text: str, duration_ms: int, pieces: Sequence[Piece] | None = None) -> dict[str, Any]:
    """``transcript.text.done``; with ``pieces`` (``include[]=logprobs``), every token's ``logprobs``."""
    event: dict[str, Any] = {"type": "transcript.text.done", "text": text, "x_audio_duration_ms": duration_ms}
    if pieces is not None:
        event["logprobs"] = token_logprobs([t for p in pieces for t in p.tokens])
    return event


def token_logprobs(tokens: Sequence[tuple[str, float]]) -> list[dict[str, Any]]:
    """OpenAI's ``logprobs``: each token of a transcript, ``{token, logprob, bytes}``."""
    return [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in tokens]


def sse(event: dict[str, Any]) -> bytes:
    """One server-sent event (``data:`` only, as OpenAI's streams; the SDK reads its JSON)."""
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _diarized(pieces: Sequence[Piece], text: str, duration: float) -> dict[str, Any]:
    """OpenAI's ``diarized_json``: each segment with its speaker, ``A``, ``B``, ... in order of
    first appearance (our labels 1, 2, ...), and the segment's id in the stream core (``x_segment_id``)."""
    segments = [
        {
            "type": "transcript.text.segment",
            "id": f"seg_{n}",
            "start": p.start_ms / 1000,
            "end": _end(p) / 1000,
            "text": p.text,
            "speaker": _speaker_name(p.speaker),
            "x_segment_id": p.segment_id,
        }
        for n, p in enumerate(pieces)
    ]
    return {
        "task": "transcribe",
        "duration": duration,
        "text": text,
        "segments": segments,
        "usage": {"type": "duration", "seconds": duration},
    }


def _speaker_name(label: int) -> str:
    return chr(ord("A") + label - 1) if label > 0 else ""


def _verbose(
    pieces: Sequence[Piece],
    text: str,
    duration: float,
    translate: bool,
    language: str | None,
    card: ModelCard | None,
) -> dict[str, Any]:
    if language is None:  # detected: the language most segments were in
        found = Counter(p.language for p in pieces if p.language)
        language = found.most_common(1)[0][0] if found else None
    segments: list[dict[str, Any]] = [
        {
            "id": n,
            "seek": p.start_ms // 10,
            "start": p.start_ms / 1000,
            "end": _end(p) / 1000,
            "text": p.text,
            "tokens": [],
            "temperature": 0.0,
            **({} if p.avg_logprob is None else {"avg_logprob": p.avg_logprob}),
            "compression_ratio": _compression_ratio(p.text),
            "x_segment_id": p.segment_id,
            # a conversation's segment: the language it was heard in, and the one it is translated into
            **({} if p.source is None else {"x_source_language": p.source, "x_language": p.language}),
        }
        for n, p in enumerate(pieces)
    ]
    out: dict[str, Any] = {
        "task": "translate" if translate else "transcribe",
        "language": language_name(language, card),
        "duration": duration,
        "text": text,
        "segments": segments,
    }
    if not translate:
        out["usage"] = {"type": "duration", "seconds": duration}
    return out


def language_name(code: str | None, card: ModelCard | None) -> str:
    """A model code as OpenAI names languages in ``verbose_json`` (``english``); the code itself
    when the model's card has no name for it."""
    if code is None:
        return ""
    if card is not None:
        for lang in card.languages:
            if lang.code == code:
                return lang.name.lower()
    return code


def _compression_ratio(text: str) -> float:
    data = text.encode()
    return round(len(data) / len(zlib.compress(data)), 3) if data else 0.0


def _end(p: Piece) -> int:
    return max(p.end_ms, p.start_ms + 1)  # a cue lasts


def _clean(text: str) -> str:
    """One line of text: a blank line would end an SRT or WebVTT cue."""
    return " ".join(text.split())
