"""A room listener's WebSocket (docs/rooms.md "Listening over a WebSocket"), sans I/O:
what the handshake asks for, and the session API's listener events (``session/rooms/listener.py``) as the
socket's frames. No socket and no web framework here (DESIGN.md pitfall 25): ``door.py``
reads the handshake, sends the frames and closes.

``GET /v1/rooms/<room>/listen?language=<code or tag>[&participant=<id>][&speed=<0.5..2>][&original=true]``
(``speed``: the speaking rate of the room's speech for this listener; ``original``: a conversation's
turns heard in this language with their own audio); the server sends, the client
sends nothing (a message from it closes the socket, 1003). Events are JSON text:

- ``room.started`` {room, language, participant, backlog, speakers: [{id, first_segment_id}]}:
  first; ``backlog`` ``room.segment`` events with ``backlog: true`` follow at once;
- ``room.segment`` {speaker, backlog, segment_id, start_ms, end_ms, language, text, transcript
  {text, language} | null, error {code, message} | null, audio {format: "pcm16", sample_rate,
  samples, speech_rate} | null, detected {language, source} | null}: a speaker's final result in
  this language (``detected``: where the speaker's language is detected or a conversation's). A
  conversation's turn heard in this language is not translated: ``language``, ``text`` and
  ``avg_logprob`` are its transcript's, ``audio`` null (not re-spoken).
  With ``audio``, one binary frame follows at once: its speech, PCM16 little-endian mono at
  ``sample_rate`` (``LISTEN_RATE``).
  Backlog segments carry text only (a late joiner reads what was said; it is not played again);
- ``room.caption`` {speaker, segment_id, start_ms, end_ms, language, text, stable_text,
  transcript}: a live caption of a speaker's open segment (superseded by its ``room.segment``);
- ``room.dropped`` {count, total}: this listener fell behind; its ``count`` oldest events were
  dropped (a notice: the listen goes on);
- ``room.draining`` {remaining_ms, deadline_unix_ms}: the server shuts down; at the deadline
  ``room.closed`` {reason, message} and the close code 1012: listen again (the backlog is resent).
- ``room.closed`` {reason, message} then the close, when the server ends the listen: ``reason``
  ``server_shutting_down`` (close 1012, above), ``revoked`` (the token was removed from the tokens
  file or no longer covers the room: close 1008), ``max_listen_duration`` (``rooms.max_listen_s``:
  close 1000; listen again to go on); anything else 1011.

Each live result is encoded once per language: its frames (the JSON and the PCM) are kept in the
door's own ``Encodings``, keyed by the ``RoomOutput`` that every listener of the language is
pushed, and every listener is sent the same bytes. Pure but for that cache (event loop only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from translate_svc.audio.resample import resample
from translate_svc.errors import ErrorCode, InvalidInput, ServiceError
from translate_svc.languages import guess_model_code
from translate_svc.session.calls.listen import ListenRequest
from translate_svc.session.events import Draining
from translate_svc.session.rooms.listener import ListenEvent, ListenStarted, OutputDropped, RoomOutput
from translate_svc.transport.http.errors import error_type
from translate_svc.types import SPEED_MAX, SPEED_MIN, InterimResult, OptionError, SegmentResult, Transcript, check_speed
from translate_svc.wire.pcm import float_to_pcm16

#: the subprotocol a browser offers (with ``openai-insecure-api-key.<key>`` beside it to present a key)
LISTEN_SUBPROTOCOL = "translate-svc.rooms.v1"
#: listeners' speech: the model's own rate (a speaker that asked for 24 or 48 kHz is sent at 16)
LISTEN_RATE = 16000
#: the close code after a drain ("service restart") and for a message from the client ("unsupported data")
RESTART_CLOSE_CODE = 1012
UNSUPPORTED_CLOSE_CODE = 1003
#: the close code of a listen whose token was revoked ("policy violation"), and of one that reached
#: its longest ("normal closure": it is over, listen again)
REVOKED_CLOSE_CODE = 1008
DONE_CLOSE_CODE = 1000
#: a query value's longest (a language tag; a participant id is checked by the registry: 64)
MAX_QUERY_CHARS = 64


@dataclass(frozen=True)
class Frame:
    """One WebSocket frame to send: JSON text (``text``) or binary speech."""

    data: bytes
    text: bool = True


#: a door's room outputs as frames (``frames``), each encoded once and sent to every listener of its
#: language; a weak key: an entry goes with its output, once no listener holds it
Encodings = WeakKeyDictionary[RoomOutput, tuple[Frame, ...]]


def listen_ask(room: str, query: Mapping[str, str]) -> ListenRequest:
    """The handshake's room (from the path) and query, shape checked (``InvalidInput``); the room's
    own rules (its name, the language's, the participant's) are the registry's."""
    unknown = sorted(set(query) - {"language", "participant", "speed", "original"})
    if unknown:
        raise InvalidInput(
            "a room listener's query takes `language` (required), `participant`, `speed` and `original` only: drop "
            f"the others ({len(unknown)} given)"
        )
    original = query.get("original", "false").lower()
    if original not in ("true", "false", "1", "0"):
        raise InvalidInput("original: true (a conversation's turns heard in your language in their own voice) or false")
    language = query.get("language", "").strip()
    participant = query.get("participant", "")
    if not language or len(language) > MAX_QUERY_CHARS or len(participant) > MAX_QUERY_CHARS:
        raise InvalidInput(
            "send ?language=<code> (a model code from ListLanguages such as spa, or a tag such as es; at most "
            f"{MAX_QUERY_CHARS} characters), and at most one participant id of at most {MAX_QUERY_CHARS} characters"
        )
    return ListenRequest(
        room, guess_model_code(language), participant, _speed(query.get("speed")), original in ("true", "1")
    )


def _speed(value: str | None) -> float | None:
    """``?speed=``: the speaking rate, a number from 0.5 to 2.0; absent: as each speaker speaks."""
    if value is None:
        return None
    try:
        number = float(value) if len(value) <= MAX_QUERY_CHARS else float("nan")
    except ValueError:
        number = float("nan")
    try:
        return check_speed(number, "speed")
    except OptionError:
        raise InvalidInput(
            f"speed must be a number from {SPEED_MIN} to {SPEED_MAX} (1 is the model's own rate): send ?speed=1.25, "
            "or leave it out to hear each speaker's rate"
        ) from None


def frames(ev: ListenEvent, encoded: Encodings) -> list[Frame]:
    """One listener event as the frames to send, in order (a room output's from ``encoded``, the
    door's cache, once made)."""
    if isinstance(ev, RoomOutput):
        made = encoded.get(ev)
        if made is None:
            made = encoded[ev] = _output(ev)
        return list(made)
    if isinstance(ev, ListenStarted):
        speakers = [{"id": sid, "first_segment_id": first} for sid, first in ev.speakers]
        body: dict[str, Any] = {
            "type": "room.started",
            "room": ev.room,
            "language": ev.language,
            "participant": ev.participant,
            "backlog": ev.backlog,
            "speakers": speakers,
        }
    elif isinstance(ev, OutputDropped):
        body = {"type": "room.dropped", "count": ev.count, "total": ev.total}
    else:
        assert isinstance(ev, Draining)
        body = {"type": "room.draining", "remaining_ms": ev.remaining_ms, "deadline_unix_ms": ev.deadline_unix_ms}
    return [Frame(_json(body))]


def closed(e: ServiceError) -> tuple[Frame, int]:
    """How a listen the server ends is closed: ``room.closed`` and the close code (1012 after a
    drain: listen again; 1008 revoked; 1000 at ``rooms.max_listen_s``; 1011 otherwise)."""
    _, reason = error_type(e.code)
    close = 1011
    if e.code == ErrorCode.UNAVAILABLE:
        reason, close = "server_shutting_down", RESTART_CLOSE_CODE
    elif e.reason == "revoked":
        reason, close = "revoked", REVOKED_CLOSE_CODE
    elif e.reason == "max_listen_duration":
        reason, close = "max_listen_duration", DONE_CLOSE_CODE
    body = {"type": "room.closed", "reason": reason, "message": e.message}
    return Frame(_json(body)), close


def _output(out: RoomOutput) -> tuple[Frame, ...]:
    """A speaker's result or caption (a backlog copy is the listener's own, and carries no speech)."""
    ev = out.event
    pcm = None
    if isinstance(ev, SegmentResult):
        body, pcm = _segment(out.speaker, ev, out.said, speech=not out.backlog)
    else:
        body = _caption(out.speaker, ev, out.said)
    body["backlog"] = out.backlog
    data = _json(body)
    return (Frame(data),) if pcm is None else (Frame(data), Frame(pcm, text=False))


def _segment(
    speaker: str, r: SegmentResult, said: Transcript | None, *, speech: bool
) -> tuple[dict[str, Any], bytes | None]:
    """``said``: a conversation's turn heard in this language (``RoomOutput.said``), shown as said."""
    t = r.translations[0] if r.translations else None
    pcm = None
    audio = None
    if speech and t is not None and t.audio is not None and len(t.audio):
        samples = resample(t.audio, t.sample_rate_hz, LISTEN_RATE)
        pcm = float_to_pcm16(samples).astype("<i2").tobytes()
        audio = {"format": "pcm16", "sample_rate": LISTEN_RATE, "samples": len(pcm) // 2, "speech_rate": t.speech_rate}
    body = {
        "type": "room.segment",
        "speaker": speaker,
        "segment_id": r.segment_id,
        "start_ms": r.start_ms,
        "end_ms": r.end_ms,
        "language": t.target_language if t is not None else said.language if said is not None else None,
        "text": t.text if t is not None else said.text if said is not None else "",
        # confidence (docs/api.md): the mean token log-probability; null: not computed
        "avg_logprob": t.avg_logprob if t is not None else said.avg_logprob if said is not None else None,
        "transcript": _transcript(r.transcript, scored=True),
        "error": {"code": r.error.code, "message": r.error.message} if r.error is not None else None,
        "audio": audio,
        # a detected (or a conversation's) language, and what chose it: identified, previous_turn, stated
        "detected": {"language": r.detected.language, "source": r.detected.source.value} if r.detected else None,
    }
    return body, pcm


def _caption(speaker: str, c: InterimResult, said: Transcript | None) -> dict[str, Any]:
    """``said``: as ``_segment``'s."""
    t = c.translations[0] if c.translations else None
    return {
        "type": "room.caption",
        "speaker": speaker,
        "segment_id": c.segment_id,
        "start_ms": c.start_ms,
        "end_ms": c.end_ms,
        "language": t.target_language if t is not None else said.language if said is not None else None,
        "text": t.text if t is not None else said.text if said is not None else "",
        "stable_text": t.stable_text if t is not None else "",
        "transcript": _transcript(c.transcript),
    }


def _transcript(t: Transcript | None, *, scored: bool = False) -> dict[str, Any] | None:
    """A transcript's fields; ``scored`` (a final's): with its ``avg_logprob`` (a caption has none)."""
    if t is None:
        return None
    body: dict[str, Any] = {"text": t.text, "language": t.language}
    if scored:
        body["avg_logprob"] = t.avg_logprob
    return body


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
