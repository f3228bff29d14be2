"""The MCP tools' answers: results as JSON (``structuredContent``, and the same JSON as text for
clients that read only text), speech as MCP audio content (WAV, PCM16), and errors as a tool result
with ``isError`` that an agent can act on.

- A result's JSON keeps the gRPC door's fields and numbers (segment ids, spans in ms, texts,
  detected languages, each speech's sample count), so an answer compares field for field with
  ``Translate``/``TranslateText``'s.
- Speech: one WAV per target language (``translate_audio``: the segments' speech one after the
  other, each segment's place in it given as ``offset_samples`` and ``samples``; ``translate_text``:
  one per text and language), exactly the PCM16 the gRPC door sends.
- Errors (``tool_error``): ``isError`` true, the message saying what to change, and
  ``structuredContent.error`` with a ``code`` to branch on: the gRPC status name
  (``INVALID_ARGUMENT``, ``PERMISSION_DENIED``, ``RESOURCE_EXHAUSTED``...), the limit or cap that
  refused (``reason``: ``clip_too_large``, ``url_not_allowed``, ``quota``...), the field at fault
  (``param``) and, at a cap, ``retry_after_ms``. The MCP spec puts a tool's own failures in its
  result, not in a JSON-RPC error, so that the model sees them and can correct its call.
"""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import Sequence
from typing import Any

import mcp_types as types
import numpy as np

from translate_svc.errors import ServiceError
from translate_svc.session.calls.detect import DetectResult
from translate_svc.session.calls.text import TextsResult
from translate_svc.session.events import ClipResult
from translate_svc.types import ModelCard, SegmentResult, Translation, WordTiming
from translate_svc.wire.pcm import float_to_pcm16


def answer(result: dict[str, Any], audio: Sequence[types.AudioContent] = ()) -> types.CallToolResult:
    """A tool's answer: its JSON (structured, and as text), then its audio."""
    content: list[types.ContentBlock] = [types.TextContent(type="text", text=json.dumps(result, ensure_ascii=False))]
    content.extend(audio)
    return types.CallToolResult(content=content, structured_content=result)


def tool_error(
    message: str, code: str, *, reason: str | None = None, param: str | None = None, retry_after_ms: int | None = None
) -> types.CallToolResult:
    error: dict[str, Any] = {"code": code, "message": message}
    if reason is not None:
        error["reason"] = reason
    if param is not None:
        error["param"] = param
    if retry_after_ms is not None:
        error["retry_after_ms"] = retry_after_ms
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], structured_content={"error": error}, is_error=True
    )


def service_error(e: ServiceError) -> types.CallToolResult:
    return tool_error(
        e.message, e.code.value, reason=e.reason, param=getattr(e, "param", None), retry_after_ms=e.retry_after_ms
    )


def model_json(card: ModelCard) -> dict[str, Any]:
    info = card.info
    return {"name": info.name, "revision": info.revision, "is_test_model": info.is_test_model}


def _words(words: Sequence[WordTiming]) -> list[dict[str, Any]]:
    return [
        {"word": w.word, "start_ms": w.start_ms, "end_ms": w.end_ms, **_logprob(w.logprob), **_speaker(w.speaker)}
        for w in words
    ]


def _speaker(label: int) -> dict[str, int]:
    """A speaker label (``speakers``: 1..N), where the clip asked for labels."""
    return {"speaker": label} if label else {}


def _logprob(value: float | None) -> dict[str, float]:
    """Confidence: ``avg_logprob``, the mean log-probability of the tokens, where computed."""
    return {} if value is None else {"avg_logprob": value}


class SpeechTracks:
    """Translated speech gathered into one WAV per key (a language; a text and language), as the
    gRPC door's PCM16, in the order it came."""

    def __init__(self) -> None:
        self._tracks: dict[str, list[bytes]] = {}
        self._rates: dict[str, int] = {}
        self._samples: dict[str, int] = {}

    def add(self, key: str, t: Translation) -> dict[str, Any] | None:
        """``t``'s speech appended to track ``key``: where it is in that track (None: no speech)."""
        if t.audio is None:
            return None
        pcm = float_to_pcm16(np.asarray(t.audio)).astype("<i2").tobytes()
        if key not in self._tracks:
            self._tracks[key], self._rates[key], self._samples[key] = [], t.sample_rate_hz, 0
        index = list(self._tracks).index(key)
        offset = self._samples[key]
        self._tracks[key].append(pcm)
        self._samples[key] += len(t.audio)
        return {
            "audio_index": index,
            "offset_samples": offset,
            "samples": len(t.audio),
            "sample_rate_hz": t.sample_rate_hz,
        }

    def content(self) -> list[types.AudioContent]:
        """Each track as MCP audio content (a WAV file, base64), in ``audio_index`` order."""
        out = []
        for key, chunks in self._tracks.items():
            buffer = io.BytesIO()
            with wave.open(buffer, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(self._rates[key])
                w.writeframes(b"".join(chunks))
            out.append(
                types.AudioContent(
                    type="audio", data=base64.b64encode(buffer.getvalue()).decode("ascii"), mime_type="audio/wav"
                )
            )
        return out


def _translations(r: SegmentResult, speech: SpeechTracks, key: str) -> list[dict[str, Any]]:
    out = []
    for t in r.translations:
        item: dict[str, Any] = {"language": t.target_language, "text": t.text, **_logprob(t.avg_logprob)}
        if t.words:
            item["words"] = _words(t.words)
        where = speech.add(f"{key}{t.target_language}", t)
        if where is not None:
            item["speech"] = where
        out.append(item)
    return out


def _error(r: SegmentResult) -> dict[str, Any] | None:
    return None if r.error is None else {"code": r.error.code, "message": r.error.message}


def clip_answer(clip: ClipResult, card: ModelCard) -> types.CallToolResult:
    """``translate_audio``'s answer: the transcript, each segment with its span and translations,
    and each target language's speech as one WAV."""
    speech = SpeechTracks()
    segments = []
    for r in clip.segments:
        seg: dict[str, Any] = {
            "segment_id": r.segment_id,
            "start_ms": r.start_ms,
            "end_ms": r.end_ms,
            "transcript": None
            if r.transcript is None
            else {
                "language": r.transcript.language,
                "text": r.transcript.text,
                "words": _words(r.transcript.words),
                **_logprob(r.transcript.avg_logprob),
            },
            "translations": _translations(r, speech, ""),
            "error": _error(r),
            **_speaker(r.speaker),
        }
        if r.detected is not None:
            seg["detected_language"] = {
                "language": r.detected.language,
                "scores": [{"language": c, "probability": p} for c, p in r.detected.scores],
                "source": r.detected.source.value,  # identified, previous_turn (a conversation's prior) or stated
            }
        segments.append(seg)
    transcript = " ".join(r.transcript.text for r in clip.segments if r.transcript is not None and r.transcript.text)
    result = {
        "audio_duration_ms": clip.audio_duration_ms,
        "transcript": transcript,
        "segments": segments,
        "model": model_json(card),
    }
    return answer(result, speech.content())


def texts_answer(texts: TextsResult, card: ModelCard) -> types.CallToolResult:
    """``translate_text``'s answer: one result per text, in order, with its translations (and
    their speech, one WAV per text and language)."""
    speech = SpeechTracks()
    results = [
        {"index": n, "translations": _translations(r, speech, f"{n}/"), "error": _error(r)}
        for n, r in enumerate(texts.results)
    ]
    return answer({"results": results, "model": model_json(card)}, speech.content())


def detection_answer(found: DetectResult) -> types.CallToolResult:
    """``detect_synthetic_speech``'s answer: whether the clip carries the speech watermark, and where."""
    return answer(
        {
            "marked": found.marked,
            "conclusive": found.conclusive,
            "probability": found.probability,
            "spans": [{"start_ms": a, "end_ms": b} for a, b in found.spans_ms],
            "watermarker": found.watermarker,
            "audio_duration_ms": found.audio_duration_ms,
            "content_credentials": found.credentials_json(),
        }
    )
