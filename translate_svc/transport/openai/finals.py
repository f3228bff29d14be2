"""A segment's end, its live captions and the server's notices on the realtime door's wire, sans
I/O: the done events clients build final captions and talk ends from, captions, and the reports
that end no session, as events of their own kinds (``protocol.py`` renders with these).

- **Done events** (on by default; ``x_done_events: false`` in ``session.update`` turns them off):
  at each segment's end, after its deltas, ``session.input_transcript.done {transcript}`` (when a
  transcript was asked for and made), then per target ``session.output_transcript.done
  {transcript}`` (the segment's whole translation) and ``session.output_audio.done`` (with speech
  on), each with ``elapsed_ms`` (the segment's end) and our ``x_segment`` span and ``x_language``
  (the transcripts' also ``x_avg_logprob``, their confidence, where computed).
  OpenAI's translation event list names no done events; the clients that read them are real (a
  conference proxy forwards finals only and ends a talk on ``output_audio.done``). The ``openai``
  Python SDK parses an event type it does not know as a ``RealtimeErrorEvent`` whose ``type`` is
  still the event's own and whose ``error`` is None, so code that switches on ``type`` (every
  example's) is not affected.
- **Notices are not errors** (DESIGN.md pitfall 30): many clients close on any ``error``, so what
  ends no session has a type of its own that a strict client ignores: the drain's notice is
  ``session.x_draining`` (the session is served to its deadline, then ``session.closed`` with
  ``x_resume`` and the socket's 1012), a failed segment is ``session.x_segment_failed`` (its
  ``error`` object as an ``error`` event had it; the session goes on, and the segment still gets
  its done events, with ``x_failed``, so a talk opened by its commits is ended).

Pure: JSON text out (``wire.wire_event``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from translate_svc.errors import ErrorCode, InvalidInput
from translate_svc.transport.http.errors import error_type
from translate_svc.transport.openai.wire import wire_event
from translate_svc.types import InterimResult

INPUT_DONE = "session.input_transcript.done"
OUTPUT_DONE = "session.output_transcript.done"
AUDIO_DONE = "session.output_audio.done"
DRAINING = "session.x_draining"
SEGMENT_FAILED = "session.x_segment_failed"


def done_setting(session: dict[str, Any], current: bool) -> bool:
    """``x_done_events`` of a ``session.update`` (absent: as it was)."""
    value = session.get("x_done_events", current)
    if not isinstance(value, bool):
        raise InvalidInput("x_done_events must be true or false (false: no done events at a segment's end)")
    return value


def segment_done(
    span: dict[str, int],
    *,
    transcript: tuple[str, str] | None,
    outputs: list[tuple[str, str]],
    speech: bool,
    timing: dict[str, float] | None = None,
    failed: bool = False,
    transcript_logprob: float | None = None,
    output_logprobs: Sequence[float | None] = (),
    output_extra: dict[str, Any] | None = None,
    **extra: Any,
) -> Iterator[str]:
    """The done events of one segment (``span``: its ``x_segment``): the input transcript's
    (``transcript``: its text and language, None for none), then each target's (``outputs``: its
    tag and whole text) transcript and, with ``speech``, audio. ``failed``: the segment failed
    (the texts are what was committed before). ``transcript_logprob`` and ``output_logprobs`` (one
    per output; None or absent: not computed): the texts' confidence, as ``x_avg_logprob``.
    ``extra`` rides on the input transcript's event (``x_detected``), ``output_extra`` on each
    output's (``x_source_language``)."""
    at = span["end_ms"]
    marks: dict[str, Any] = {"x_failed": True} if failed else {}
    if transcript is not None:
        text, language = transcript
        sure = {} if transcript_logprob is None else {"x_avg_logprob": transcript_logprob}
        yield wire_event(
            INPUT_DONE, transcript=text, elapsed_ms=at, x_segment=span, x_language=language, **extra, **sure, **marks
        )
    for n, (tag, text) in enumerate(outputs):
        timed: dict[str, Any] = {"x_timing": timing} if timing is not None else {}
        timed.update(output_extra or {})
        logprob = output_logprobs[n] if n < len(output_logprobs) else None
        if logprob is not None:
            timed["x_avg_logprob"] = logprob
        yield wire_event(OUTPUT_DONE, transcript=text, elapsed_ms=at, x_segment=span, x_language=tag, **timed, **marks)
        if speech:
            yield wire_event(AUDIO_DONE, elapsed_ms=at, x_segment=span, x_language=tag, **(output_extra or {}), **marks)


def draining_notice(remaining_ms: int, deadline_unix_ms: int) -> str:
    """The drain's notice: the session is served for ``remaining_ms`` more, then closes (1012)."""
    return wire_event(
        DRAINING,
        code="server_shutting_down",
        message=(
            f"this server is shutting down: the session ends in {remaining_ms} ms; reconnect (to another "
            "server) to go on, with x_resume from session.closed"
        ),
        remaining_ms=remaining_ms,
        deadline_unix_ms=deadline_unix_ms,
    )


def segment_failed(code: ErrorCode, message: str, span: dict[str, int]) -> str:
    """A segment that failed (the session goes on): its error, in an ``error`` event's shape."""
    kind, wire_code = error_type(code)
    return wire_event(SEGMENT_FAILED, error={"message": message, "type": kind, "code": wire_code}, x_segment=span)


def caption_event(r: InterimResult, tag_of: dict[str, str]) -> str:
    """A live caption (our extension): an empty transcript delta, the caption in ``x_interim``
    (superseded by the segment's own deltas), each target named by the client's tag (``tag_of``).
    ``stable_translations``: each translation's settled start (simultaneous mode's committed words;
    empty in segment mode): later captions and the final never change it."""
    caption = {
        "segment_id": r.segment_id,
        "start_ms": r.start_ms,
        "end_ms": r.end_ms,
        "transcript": r.transcript.text if r.transcript is not None else None,
        "translations": {tag_of.get(t.target_language, t.target_language): t.text for t in r.translations},
        "stable_translations": {
            tag_of.get(t.target_language, t.target_language): t.stable_text for t in r.translations
        },
    }
    return wire_event("session.input_transcript.delta", delta="", elapsed_ms=r.end_ms, x_interim=caption)
