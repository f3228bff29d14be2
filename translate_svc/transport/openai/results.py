"""A realtime translation session's results on OpenAI's wire, sans I/O: the stream core's segment
results and simultaneous mode's commits in, the transcript and speech deltas and each segment's
done events out (``protocol.py`` feeds them; docs/openai-compat.md has the mapping).

- A **commit** (simultaneous mode) is a ``session.output_transcript.delta`` of the words it adds
  (appended to the segment's earlier ones) with ``elapsed_ms`` = its ``source_ms`` and
  ``x_commit``, then its speech as ``session.output_audio.delta`` chunks.
- A **segment's result** with commits sends its transcript delta and, per target, one empty
  ``session.output_transcript.delta`` whose ``x_done`` holds the whole text (no speech again);
  without commits (segment mode, or speech too short for a step), one transcript delta, one
  output transcript delta per target and its speech. Then its done events (``finals.py``).
- **Confidence**: OpenAI's translation events have no field for it (its
  ``session.*_transcript.delta`` carry ``delta`` and ``elapsed_ms`` only), so ``x_avg_logprob``
  carries the model's own mean token log-probability (docs/api.md "Confidence"), where it was
  computed: on a commit's text delta (the tokens it adds), a result's transcript and output deltas
  (the segment's whole text: every token, committed ones with their step's value), and the done
  events. Absent where not computed (captions, a commit of speech only, a failed segment).

Event loop only (one per session).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import numpy as np

from translate_svc.audio.limits import REALTIME_RATE_HZ
from translate_svc.errors import ErrorCode
from translate_svc.transport.openai import finals
from translate_svc.transport.openai.wire import Out, Speech, wire_event
from translate_svc.types import Commit, SegmentResult
from translate_svc.wire.pcm import float_to_pcm16

#: speech deltas carry at most this much audio each (200 ms at 24 kHz, OpenAI's frame)
AUDIO_DELTA_SAMPLES = REALTIME_RATE_HZ // 5


def confidence(avg_logprob: float | None) -> dict[str, float]:
    """``x_avg_logprob`` where the model computed one (the extension field's only spelling)."""
    return {} if avg_logprob is None else {"x_avg_logprob": avg_logprob}


class ResultEvents:
    """The server's side of one session's results. ``tag_of``: each target's tag as the client
    named it (the protocol's own dict, updated as targets change); ``tracks``: speech goes to
    WebRTC's tracks (``Speech``), not into ``session.output_audio.delta`` events."""

    def __init__(self, tag_of: dict[str, str], *, tracks: bool) -> None:
        self.tag_of = tag_of
        self.tracks = tracks
        self._committing: dict[str, int] = {}  # target -> the segment its last commit's text was of
        self._committed: dict[str, str] = {}  # target -> that segment's committed text so far
        self._spoken_before: set[str] = set()  # which texts have had a delta (spaces between deltas)

    def result(
        self, r: SegmentResult, targets: tuple[str, ...], *, heard: bool, speech: bool, done_events: bool
    ) -> Iterator[Out]:
        """One segment's result: ``targets`` the session's now (a failed segment ends their talks),
        ``heard``: a transcript was asked for, ``speech``: speech is on, ``done_events``: send them."""
        span = {"segment_id": r.segment_id, "start_ms": r.start_ms, "end_ms": r.end_ms}
        if r.error is not None:  # this segment failed; the session goes on
            yield finals.segment_failed(ErrorCode(r.error.code), r.error.message, span)
            if done_events:  # what its commits said is all there is: a talk they opened ends
                said = [(self.tag_of.get(t, t), self._said(t, r.segment_id)) for t in targets]
                yield from finals.segment_done(span, transcript=None, outputs=said, speech=speech, failed=True)
            return
        timing = {"latency_ms": round(r.timing.total_ms, 1), "model_ms": round(r.timing.model_ms, 1)}
        detected: dict[str, Any] = {}
        source: dict[str, Any] = {}  # the spoken language, on each of the translation's events
        if r.detected is not None:
            detected["x_detected"] = {"language": r.detected.language, "scores": dict(r.detected.scores)}
            source["x_source_language"] = self.tag_of.get(r.detected.language, r.detected.language)
        transcript = r.transcript if heard else None
        if transcript is not None and transcript.text:
            yield wire_event(
                "session.input_transcript.delta",
                delta=self._spaced("transcript", transcript.text),
                elapsed_ms=r.end_ms,
                x_segment=span,
                x_language=transcript.language,
                **detected,
                **confidence(transcript.avg_logprob),
            )
        for t in r.translations:
            tag = self.tag_of.get(t.target_language, t.target_language)
            sure = confidence(t.avg_logprob)
            if r.speech_in_commits:  # the text and speech went out in the commits: only say it is done
                yield wire_event(
                    "session.output_transcript.delta",
                    delta="",
                    elapsed_ms=r.end_ms,
                    x_segment=span,
                    x_language=tag,
                    x_timing=timing,
                    x_done={"text": t.text},
                    **source,
                    **sure,
                )
                continue
            if t.text:
                yield wire_event(
                    "session.output_transcript.delta",
                    delta=self._spaced(t.target_language, t.text),
                    elapsed_ms=r.end_ms,
                    x_segment=span,
                    x_language=tag,
                    x_timing=timing,
                    **source,
                    **sure,
                )
            if t.audio is not None and len(t.audio):
                yield from self._speech(
                    tag, t.audio, t.sample_rate_hz, elapsed_ms=r.end_ms, x_segment=span, x_language=tag, **source
                )
        if done_events:
            yield from finals.segment_done(
                span,
                transcript=(transcript.text, transcript.language) if transcript is not None else None,
                outputs=[(self.tag_of.get(t.target_language, t.target_language), t.text) for t in r.translations],
                speech=speech,
                timing=timing,
                transcript_logprob=transcript.avg_logprob if transcript is not None else None,
                output_logprobs=[t.avg_logprob for t in r.translations],
                output_extra=source,
                **detected,
            )

    def commit(self, c: Commit) -> Iterator[Out]:
        """Simultaneous mode: the words committed for one target (a text delta, appended to the
        segment's earlier ones) and their speech, while the segment is still open."""
        t = c.translation
        tag = self.tag_of.get(t.target_language)
        if tag is None:
            return
        extra: dict[str, Any] = {
            "x_segment": {"segment_id": c.segment_id},  # its span is known with its result
            "x_language": tag,
            "x_commit": {"source_ms": c.source_ms, "final": c.final},
        }
        if t.text:
            first = self._committing.get(t.target_language) != c.segment_id
            self._committing[t.target_language] = c.segment_id
            said = "" if first else self._committed.get(t.target_language, "")
            self._committed[t.target_language] = said + (t.text.lstrip() if first else t.text)
            delta = self._spaced(t.target_language, t.text.lstrip()) if first else t.text
            yield wire_event(
                "session.output_transcript.delta",
                delta=delta,
                elapsed_ms=c.source_ms,
                **extra,
                **confidence(t.avg_logprob),
            )
        if t.audio is not None and len(t.audio):
            yield from self._speech(tag, t.audio, t.sample_rate_hz, elapsed_ms=c.source_ms, **extra)

    def _speech(self, tag: str, audio: np.ndarray, rate: int, **fields: Any) -> Iterator[Out]:
        """Speech for ``tag``'s track (WebRTC), or as ``session.output_audio.delta`` events with
        ``fields``."""
        if self.tracks:
            yield Speech(tag, audio, rate)
            return
        pcm = float_to_pcm16(audio)
        for at in range(0, len(pcm), AUDIO_DELTA_SAMPLES):
            chunk = pcm[at : at + AUDIO_DELTA_SAMPLES].astype("<i2").tobytes()
            yield wire_event(
                "session.output_audio.delta",
                delta=base64.b64encode(chunk).decode("ascii"),
                format="pcm16",
                sample_rate=rate,
                channels=1,
                **fields,
            )

    def _said(self, target: str, segment_id: int) -> str:
        """What the commits of ``segment_id`` said in ``target`` so far."""
        return self._committed.get(target, "") if self._committing.get(target) == segment_id else ""

    def _spaced(self, key: str, text: str) -> str:
        """Deltas are appended as they come: a space before every segment's text but the first."""
        first = key not in self._spoken_before
        self._spoken_before.add(key)
        return text if first else " " + text
