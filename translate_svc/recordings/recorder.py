"""One session's recorder, on the event loop: what the stream core taps, handed to the writer thread.

``SessionRecorder`` implements ``session.recording.Recorder``. It turns each final result into its
JSON line at once (a small dict: the segment's timings, transcript, translations and word
timings, and where each translation's speech lies in that language's speech file) and hands it,
with the speech (``record=audio``) and the input audio, to the ``RecordingWriter``. It never blocks
and never raises: a full queue, a failed write or a bug of its own ends the recording (marked
incomplete), never the call. Event loop only.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from translate_svc.observability import metrics
from translate_svc.recordings.writer import Piece, Recording, RecordingWriter, speech_file
from translate_svc.types import SegmentResult, WordTiming

logger = logging.getLogger(__name__)


def _words(words: tuple[WordTiming, ...]) -> list[dict[str, Any]]:
    return [{"word": w.word, "start_ms": w.start_ms, "end_ms": w.end_ms, "avg_logprob": w.logprob} for w in words]


def segment_line(
    result: SegmentResult, speech_ms: dict[str, float], *, audio: bool
) -> tuple[bytes, tuple[tuple[str, np.ndarray, int], ...]]:
    """A result's JSON line, and its speech per language (``audio``: kept). ``speech_ms``: each
    language's speech file's length so far (ms), advanced here."""
    translations: list[dict[str, Any]] = []
    speech: list[tuple[str, np.ndarray, int]] = []
    for t in result.translations:
        entry: dict[str, Any] = {
            "language": t.target_language,
            "text": t.text,
            "words": _words(t.words),
            "avg_logprob": t.avg_logprob,  # confidence; null: not computed
        }
        if audio and t.audio is not None and len(t.audio):
            at = speech_ms.get(t.target_language, 0.0)
            duration = len(t.audio) * 1000 / t.sample_rate_hz
            speech_ms[t.target_language] = at + duration
            entry["speech"] = {
                "file": speech_file(t.target_language),
                "offset_ms": round(at, 3),
                "duration_ms": round(duration, 3),
            }
            speech.append((t.target_language, t.audio, t.sample_rate_hz))
        translations.append(entry)
    tr = result.transcript
    record: dict[str, Any] = {
        "segment_id": result.segment_id,
        "start_ms": result.start_ms,
        "end_ms": result.end_ms,
        "transcript": (
            {"language": tr.language, "text": tr.text, "words": _words(tr.words), "avg_logprob": tr.avg_logprob}
            if tr is not None
            else None
        ),
        "translations": translations,
        "detected": (
            {"language": result.detected.language, "scores": [list(s) for s in result.detected.scores]}
            if result.detected is not None
            else None
        ),
        "error": {"code": result.error.code, "message": result.error.message} if result.error is not None else None,
    }
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
    return line.encode("utf-8"), tuple(speech)


class SessionRecorder:
    """A session's recording as its stream core feeds it. Event loop only."""

    def __init__(self, writer: RecordingWriter, recording: Recording) -> None:
        self._writer = writer
        self._rec = recording
        self._audio = recording.audio
        self._speech_ms: dict[str, float] = {}
        #: ended early on this side (its reason); nothing more is handed on
        self._ended: str | None = None
        self._closed = False
        writer.open(recording)

    def audio(self, samples: np.ndarray) -> None:
        if self._audio and self._ended is None:
            self._send(Piece(self._rec, samples.nbytes, audio=samples))

    def result(self, result: SegmentResult) -> None:
        if self._ended is not None:
            return
        try:
            line, speech = segment_line(result, self._speech_ms, audio=self._audio)
        except Exception:  # a bug here must end the recording, not the call
            logger.exception("a result could not be recorded", extra=self._rec.log)
            self._end("write_error")
            return
        size = len(line) + sum(a.nbytes for _, a, _ in speech)
        self._send(Piece(self._rec, size, line=line, speech=speech))

    def _send(self, piece: Piece) -> None:
        if self._rec.failed is not None:  # the writer ended it (a full disk)
            self._ended = self._rec.failed
            return
        if not self._writer.reserve(piece.size):
            self._end("queue_full")
            return
        self._writer.put(piece)

    def _end(self, reason: str) -> None:
        self._ended = reason
        logger.warning(
            "recording %s ends early (%s); the call goes on", self._rec.manifest["id"], reason, extra=self._rec.log
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        reason = self._ended if self._ended is not None and self._rec.failed is None else None
        self._writer.finish(self._rec, reason)


def count_no_key() -> None:
    metrics.RECORDINGS_INCOMPLETE.labels("no_key").inc()
