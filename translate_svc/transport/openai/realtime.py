"""The OpenAI-compatible door: OpenAI's realtime translation protocol over a WebSocket.

``GET /v1/realtime/translations?model=...`` on the HTTP port (``server.http_port``), JSON events in
and out, as ``openai``'s ``client.realtime.translations.connect()`` speaks them
(docs/openai-compat.md has the whole mapping). This module only converts: each connection is one
stream of the shared stream core (``session.StreamDriver``), so the first-message rule, admission,
limits, the idle timeout and the drain are the gRPC door's, unchanged.

- ``session.update`` (the first one that names ``audio.output.language``) is the stream's config:
  24 kHz PCM16 mono in, that language out (an ISO 639-1 tag, mapped like the CLI's ``--to``),
  the source transcript when ``audio.input.transcription`` is set. Extensions their clients
  ignore: ``audio.output.languages`` (several targets), ``audio.input.language`` (the source
  language; also the ``source_language`` query parameter), ``x_captions_interval_ms`` (live
  captions: the open speech as text every this many ms, as ``session.input_transcript.delta``
  events with an empty ``delta`` and the caption in ``x_interim``).
- ``session.input_audio_buffer.append`` is audio; ``session.close`` half-closes: the open speech is
  translated, every result sent, then ``session.closed``.
- Simultaneous by default (OpenAI's protocol is continuous): the stream runs in simultaneous mode
  (``SimultaneousOptions``: a step every 1000 ms of audio, agreement 2), and each ``Commit``
  becomes a ``session.output_transcript.delta`` (the committed words) and
  ``session.output_audio.delta`` chunks (their speech), with ``elapsed_ms`` = the commit's
  ``source_ms`` and ``x_commit``. The segment's result (``speech_in_commits``) then sends its
  transcript delta and, per target, one empty ``session.output_transcript.delta`` whose
  ``x_done`` holds the whole text (the protocol has no done event), and no speech again. Extension
  ``x_simultaneous_step_ms``: the step (0: off, segment mode).
- A segment's result with nothing committed (segment mode, or speech too short for a step) becomes
  one ``session.input_transcript.delta`` (its whole transcript), one
  ``session.output_transcript.delta`` per target and ``session.output_audio.delta`` chunks of
  24 kHz PCM16, each with ``elapsed_ms`` = the segment's end on the stream's timeline and our exact
  span and timing as extra fields.
- Errors are ``error`` events; an error that ends the stream is followed by the socket's close.

Tokens are the gRPC door's (``Authorization: Bearer``, permission ``stream``), checked before the
WebSocket upgrade, and so are a browser's Origin (``limits.http_allowed_origins``) and the stream's
slots (``SessionManager.admit_stream``): a refused handshake is an HTTP 401, 403, 429 or 503 with an
OpenAI-shaped JSON body, and no socket is opened. The port itself is bounded (``CappedSite``,
docs/openai-compat.md "Bounds of the HTTP port"): connections open at once, and how long and how
large a request's head may be.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import dataclasses
import json
import logging
import math
import resource
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from translate_svc.audio.pcm import float_to_pcm16
from translate_svc.errors import ErrorCode, InvalidInput, NotReady, ServiceError, ShuttingDown
from translate_svc.languages import guess_model_code
from translate_svc.observability import tracing
from translate_svc.observability.access import CallInfo, new_request_id
from translate_svc.session.driver import StreamDriver
from translate_svc.session.events import (
    AudioIn,
    Draining,
    Gone,
    Invalid,
    ModelCard,
    Resume,
    StreamConfig,
    StreamEnded,
    StreamRequest,
    StreamStarted,
    Update,
    Updated,
)
from translate_svc.session.manager import Admission, SessionManager
from translate_svc.session.quota import DEFAULT_TENANT, Tenant
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai.client_secrets import ORIGIN_REFUSED, BadRequest, ClientSecrets, origin_allowed
from translate_svc.transport.openai.client_secrets import PREFIX as SECRET_PREFIX
from translate_svc.transport.openai.client_secrets import parse_request as parse_mint_request
from translate_svc.transport.openai.demo import DEMO_TENANT
from translate_svc.transport.tokens import Permission, Revocation, TokenDigest, TokenStore, bearer
from translate_svc.types import (
    AudioEncoding,
    AudioFormat,
    Commit,
    InterimResult,
    OutputOptions,
    SegmentResult,
    SimultaneousOptions,
)
from translate_svc.vad.segmenter import SegmenterConfig

logger = logging.getLogger(__name__)

PATH = "/v1/realtime/translations"
RATE = 24000  # OpenAI's realtime audio: 24 kHz PCM16 mono, in and out
#: speech deltas carry at most this much audio each (200 ms, OpenAI's frame)
AUDIO_DELTA_SAMPLES = RATE // 5
#: simultaneous mode by default (``x_simultaneous_step_ms``; 0: off): OpenAI's protocol is continuous
SIMULTANEOUS_STEP_MS = 1000
SIMULTANEOUS_AGREEMENT = 2
#: what one ``session.update`` may hold, checked before anything in it is converted (a tag mapped,
#: a value echoed): the targets where the door is given no limit (``limits.max_target_languages``'
#: ceiling), a language tag's characters (BCP-47 tags in use are far shorter), the source language's
#: (``"auto:"`` and a few tags), and ``audio.input.transcription``'s JSON (it is echoed back)
MAX_LANGUAGES = 32
MAX_TAG_CHARS = 35
MAX_SOURCE_CHARS = 200
MAX_TRANSCRIPTION_CHARS = 1024
#: a WebSocket message: one audio append of ``limits.ws_max_append_bytes`` as base64, and room for JSON
WS_MESSAGE_SLACK_BYTES = 64 * 1024
#: what of a client's event is echoed in an error: its ``event_id`` (a string of at most this many
#: characters, else the event is refused), and an unknown ``type`` (cut to this many characters)
MAX_EVENT_ID_CHARS = 64
#: the longest ``x_resume`` taken (a session's settings and a stream position, as base64 JSON)
MAX_RESUME_CHARS = 8192
#: the close code after a drain: "service restart", which the openai SDK treats as recoverable
RESTART_CLOSE_CODE = 1012
SHOWN_TYPE_CHARS = 64
#: a request's head on the HTTP port (aiohttp's parser limits): the request line, one header (name
#: and value: a browser's cookies fit), and the headers' count (a browser sends 15-25, a proxy adds
#: a few), so a request not yet sent whole holds at most 64 x 8 KiB while it waits
HTTP_MAX_LINE_BYTES = 8190
HTTP_MAX_FIELD_BYTES = 8190
HTTP_MAX_HEADERS = 64
#: at most one log line per this many seconds about connections refused at ``http_max_connections``
REFUSED_LOG_EVERY_S = 10.0

#: our error codes -> OpenAI's error ``type`` and ``code``
_ERROR_TYPES: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.INVALID_ARGUMENT: ("invalid_request_error", "invalid_value"),
    ErrorCode.UNAUTHENTICATED: ("invalid_request_error", "invalid_api_key"),
    ErrorCode.FAILED_PRECONDITION: ("invalid_request_error", "unsupported_feature"),
    ErrorCode.OUT_OF_RANGE: ("invalid_request_error", "limit_reached"),
    ErrorCode.RESOURCE_EXHAUSTED: ("server_error", "server_overloaded"),
    ErrorCode.UNAVAILABLE: ("server_error", "server_unavailable"),
    ErrorCode.INTERNAL: ("server_error", "internal_error"),
}


def wire_event(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, "event_id": f"event_{uuid.uuid4().hex[:20]}", **fields})


def error_event(message: str, kind: str, code: str, *, event_id: str | None = None, **extra: Any) -> str:
    return wire_event("error", error={"message": message, "type": kind, "code": code, "event_id": event_id}, **extra)


def service_error_event(e: ServiceError, **extra: Any) -> str:
    return _coded_error_event(e.code, e.message, e, **extra)


def _coded_error_event(ours: ErrorCode, message: str, e: ServiceError | None = None, **extra: Any) -> str:
    kind, code = _ERROR_TYPES.get(ours, ("server_error", "internal_error"))
    if e is None:
        pass
    elif isinstance(e, ShuttingDown):
        code = "server_shutting_down"
    elif e.reason is not None:  # a limit that ends a session, or a tenant's spent audio budget
        code = e.reason
    if e is not None and e.retry_after_ms is not None:
        extra["x_retry_after_ms"] = e.retry_after_ms
    return error_event(message, kind, code, **extra)


#: sends one event to the client (the WebSocket, or WebRTC's data channel)
Send = Callable[[str], Awaitable[None]]
#: plays one segment's translated speech (``tag``, float32 samples, rate) on WebRTC's track
Speak = Callable[[str, np.ndarray, int], None]


def source_or_detection(value: str | None) -> tuple[str, tuple[str, ...] | None]:
    """The source language extension as our config: a tag (``"en"``) is the source; ``"auto"``
    detects it among every language the identifier picks, ``"auto:en,es"`` among those."""
    if not value:
        return "", None
    head, _, rest = value.partition(":")
    if head.strip().lower() != "auto":
        return guess_model_code(value), None
    return "", tuple(guess_model_code(t) for t in rest.split(",") if t.strip())


class RealtimeSession:
    """One session of the protocol, whatever carries it: the client's events as the stream core's
    requests, and the core's events as OpenAI's. ``speak``: speech goes to an audio track (WebRTC),
    not into ``session.output_audio.delta`` events, and audio comes from the track at
    ``input_rate`` (no ``input_audio_buffer.append``)."""

    def __init__(
        self,
        send: Send,
        model: str,
        source: str | None,
        vad: SegmenterConfig,
        *,
        input_rate: int = RATE,
        speak: Speak | None = None,
        max_languages: int = MAX_LANGUAGES,
        max_append_bytes: int = 3 * 1024 * 1024,
        chunk_bytes: int = 1024 * 1024,
        card: ModelCard | None = None,
    ) -> None:
        self._send = send
        self.max_append_bytes = max_append_bytes
        self.chunk_bytes = chunk_bytes // 2 * 2  # whole PCM16 samples
        #: the model as it was when the session opened (None: still loading): what it can speak, and
        #: whether it has a language identifier
        self.card = card
        self.max_languages = max_languages
        self.input_rate = input_rate
        self.speak = speak
        self.vad = vad
        self.model = model
        self.session_id = f"sess_{uuid.uuid4().hex[:16]}"
        self.source = source
        self.targets: tuple[str, ...] = ()
        self.languages: list[str] = []  # as the client named them (their tags)
        #: each target's tag as the client named it, every target the session has had (a segment
        #: closed before an update still carries the targets it had)
        self.tag_of: dict[str, str] = {}
        #: the tags of each update the stream core has not answered yet, oldest first
        self._asked: collections.deque[list[str]] = collections.deque()
        self.transcription: dict[str, Any] | None = None
        self.captions_interval_ms = 0  # live captions (our extension): off
        self.simultaneous_step_ms = SIMULTANEOUS_STEP_MS  # our extension; 0: segment mode
        self.speech = True  # our extension x_speech: false for text only
        self.resume_token = ""  # the stream's (StreamStarted), for x_resume
        #: how the socket closes: 1000, or 1012 (service restart) after a drain (the openai SDK
        #: reconnects on it)
        self.close_code = 1000
        self._committing: dict[str, int] = {}  # target -> the segment its last commit's text was of
        self.configured = False
        self._spoken_before: set[str] = set()  # which texts have had a delta (spaces between deltas)

    def session(self) -> dict[str, Any]:
        out: dict[str, Any] = {"language": self.languages[0] if self.languages else None}
        if len(self.languages) > 1:
            out["languages"] = self.languages
        audio: dict[str, Any] = {"input": {"transcription": self.transcription}, "output": out}
        if self.source:
            audio["input"]["language"] = self.source
        return {
            "id": self.session_id,
            "type": "translation",
            "model": self.model,
            "expires_at": 0,
            "audio": audio,
            "x_speech": self.speech,
            "x_limits": {"max_append_bytes": self.max_append_bytes},
        }

    # -- moving to another server (a drain) ---------------------------------------------------------

    def resume_state(self, ended: StreamEnded) -> str:
        """What a client gives back in the ``x_resume`` query parameter of its next connection, after
        a drain ended this session: the session's settings and where its stream was translated to,
        as URL-safe base64 of JSON. Nothing in it is secret or trusted: the new server checks it as
        it checks a ``session.update`` and a gRPC ``ResumeFrom``."""
        state = {
            "session": {
                "audio": {
                    "output": {"languages": self.languages},
                    "input": {"language": self.source, "transcription": self.transcription},
                },
                "x_captions_interval_ms": self.captions_interval_ms,
                "x_simultaneous_step_ms": self.simultaneous_step_ms,
                "x_speech": self.speech,
            },
            "resume": [self.resume_token, ended.segments_total, ended.resume_offset_ms],
        }
        return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode()

    async def resumed(self, value: str) -> StreamRequest:
        """The first request of a connection that gives back ``x_resume``: the config it holds,
        resuming the drained stream (its segment ids and timeline go on); ``Invalid`` if it cannot
        be used."""
        try:
            if len(value) > MAX_RESUME_CHARS:
                raise ValueError
            state = json.loads(base64.urlsafe_b64decode(value.encode("ascii")))
            token, next_id, offset_ms = state["resume"]
            if not (isinstance(token, str) and type(next_id) is int and type(offset_ms) is int):
                raise ValueError
            config = await self._update(state["session"], None)
        except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
            return Invalid(
                InvalidInput(
                    "x_resume is not what this server's session.closed gave: give it back unchanged, or "
                    "connect without it for a new session"
                )
            )
        except InvalidInput as e:
            return Invalid(e)
        if not isinstance(config, StreamConfig):
            return Invalid(InvalidInput("x_resume names no output language: connect without it for a new session"))
        return dataclasses.replace(config, resume=Resume(token, next_id, offset_ms))

    async def send(self, text: str) -> None:
        await self._send(text)

    # -- the client's side ------------------------------------------------------------------------

    async def requests(
        self, messages: AsyncIterator[str | None], first: StreamRequest | None = None
    ) -> AsyncIterator[StreamRequest]:
        """The stream core's requests from the client's ``messages`` (None: a binary one): the
        config once ``session.update`` names a language (or ``first``, a resumed session's), then
        audio; ends on ``session.close``, or with ``Gone`` when a WebSocket's messages end without it."""
        if first is not None:
            yield first
        async for text in messages:
            if text is None:
                await self.send(
                    error_event("send JSON text events, not binary frames", "invalid_request_error", "invalid_event")
                )
                continue
            try:
                event = json.loads(text)
                kind = event["type"]
            except (ValueError, KeyError, TypeError):
                await self.send(
                    error_event(
                        "each message must be a JSON event with a `type`", "invalid_request_error", "invalid_event"
                    )
                )
                continue
            event_id = event.get("event_id")
            if event_id is not None and (not isinstance(event_id, str) or len(event_id) > MAX_EVENT_ID_CHARS):
                await self.send(
                    error_event(
                        f"event_id must be a string of at most {MAX_EVENT_ID_CHARS} characters (this event was "
                        "not used)",
                        "invalid_request_error",
                        "invalid_value",
                    )
                )
                continue
            if kind == "session.close":
                return
            if kind == "session.update":
                try:
                    config = await self._update(event.get("session") or {}, event_id)
                except InvalidInput as e:
                    yield Invalid(e)
                    continue
                if config is not None:
                    yield config
            elif kind == "session.input_audio_buffer.append" and self.speak is not None:
                await self.send(
                    error_event(
                        "on WebRTC the audio comes on the microphone track, not in events (this audio was not used)",
                        "invalid_request_error",
                        "invalid_event",
                        event_id=event_id,
                    )
                )
            elif kind == "session.input_audio_buffer.append":
                if not self.configured:
                    await self.send(
                        error_event(
                            "audio before the output language: send session.update with "
                            "audio.output.language first (this audio was not used)",
                            "invalid_request_error",
                            "missing_output_language",
                            event_id=event_id,
                        )
                    )
                    continue
                try:
                    data = base64.b64decode(event.get("audio", ""), validate=True)
                except (binascii.Error, ValueError, TypeError):
                    data = None
                if data is None or len(data) % 2:
                    yield Invalid(
                        InvalidInput(
                            "`audio` must be base64 of 24 kHz PCM16 mono little-endian samples (an even "
                            "number of bytes); this server takes no other WebSocket audio format"
                        )
                    )
                    continue
                if len(data) > self.max_append_bytes:  # within the message's slack: refused, not fatal
                    await self.send(
                        error_event(
                            f"this append carries {len(data)} bytes of audio, over this server's "
                            f"{self.max_append_bytes} (x_limits.max_append_bytes): this audio was not used; "
                            "send it again in smaller appends",
                            "invalid_request_error",
                            "append_too_large",
                            event_id=event_id,
                        )
                    )
                    continue
                # any size up to the limit: cut into the stream core's chunks (whole samples)
                for at in range(0, len(data), self.chunk_bytes):
                    yield AudioIn(data[at : at + self.chunk_bytes])
            else:
                await self.send(
                    error_event(
                        f"unknown event type {_shown_type(kind)}",
                        "invalid_request_error",
                        "unknown_event",
                        event_id=event_id,
                    )
                )
        if self.speak is None:  # the socket closed without session.close: the client went away
            yield Gone()

    async def _update(self, session: Any, event_id: str | None) -> StreamConfig | Update | None:
        session, inp, languages = self._checked(session)
        if self.configured:  # the stream runs: its targets may change (issue 35), nothing else
            if languages and list(languages) != self.languages:
                targets = tuple(guess_model_code(x) for x in languages)
                problem = self._text_only(languages, targets)
                if problem is not None:  # answered, not fatal: the session goes on as it was
                    await self.send(error_event(problem, "invalid_request_error", "invalid_value", event_id=event_id))
                    return None
                self._asked.append(list(languages))
                return Update(targets)
            await self.send(wire_event("session.updated", session=self.session()))
            return None
        if "transcription" in inp:
            self.transcription = inp["transcription"]
        if inp.get("language"):
            self.source = str(inp["language"])
        captions = session.get("x_captions_interval_ms", self.captions_interval_ms)
        if not isinstance(captions, int) or isinstance(captions, bool) or captions < 0:
            raise InvalidInput("x_captions_interval_ms must be a whole number of milliseconds (0: no live captions)")
        self.captions_interval_ms = captions
        step = session.get("x_simultaneous_step_ms", self.simultaneous_step_ms)
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise InvalidInput(
                "x_simultaneous_step_ms must be a whole number of milliseconds (0: off, a segment's "
                "translation once a pause ends it)"
            )
        self.simultaneous_step_ms = step
        speech = session.get("x_speech", self.speech)
        if not isinstance(speech, bool):
            raise InvalidInput("x_speech must be true or false (false: translated text only, no speech)")
        self.speech = speech
        if not languages:  # nothing to start with yet
            await self.send(wire_event("session.updated", session=self.session()))
            return None
        targets = tuple(guess_model_code(x) for x in languages)
        problem = self._text_only(languages, targets)
        if problem is not None:
            raise InvalidInput(problem)
        self.languages, self.targets = list(languages), targets
        self.tag_of.update(zip(self.targets, self.languages, strict=True))
        self.configured = True
        out_rate = RATE if self.speak is None else self.input_rate  # a track plays at its own rate
        transcript = self.transcription is not None
        output = OutputOptions(text=True, speech=self.speech, transcript=transcript, speech_sample_rate_hz=out_rate)
        source, detect = source_or_detection(self.source)
        if transcript and not source and detect is None:  # the transcript needs its language
            if self.card is not None and self.card.identifier is not None:
                detect = ()  # the server's identifier names each segment's language
            else:
                await self.send(
                    error_event(
                        "input transcription needs the spoken language, and this server has no language "
                        'identifier to find it: set audio.input.language (e.g. "en"); this session goes on '
                        "without a transcript",
                        "invalid_request_error",
                        "missing_input_language",
                        event_id=event_id,
                    )
                )
        return StreamConfig(
            format=AudioFormat(AudioEncoding.LINEAR16, self.input_rate, 1),
            source_language=source,
            detect=detect,
            target_languages=self.targets,
            output=output,
            vad=self.vad,
            interim_interval_ms=self.captions_interval_ms,
            simultaneous=(
                SimultaneousOptions(self.simultaneous_step_ms, SIMULTANEOUS_AGREEMENT)
                if self.simultaneous_step_ms
                else None
            ),
        )

    def _text_only(self, tags: list[str], targets: tuple[str, ...]) -> str | None:
        """Why speech cannot be had for these output languages (None: it can, or speech is off)."""
        if not self.speech or self.card is None:
            return None
        for tag, code in zip(tags, targets, strict=True):
            if code in self.card.text_codes and code not in self.card.speech_codes:
                return (
                    f'output language {tag[:MAX_TAG_CHARS]!r} has text output only: set "x_speech": false in '
                    "session.update for translated text without speech (this server's extension), or pick a "
                    "language with speech output"
                )
        return None

    def _checked(self, session: Any) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """``session``, ``audio.input`` and the output languages of a ``session.update``, their
        shapes, counts and lengths checked before anything is converted (``InvalidInput``; the
        messages name no client value)."""
        session = _object(session, "session")
        audio = _object(session.get("audio"), "session.audio")
        out = _object(audio.get("output"), "session.audio.output")
        inp = _object(audio.get("input"), "session.audio.input")
        languages = out.get("languages") or ([out["language"]] if out.get("language") else [])
        if not isinstance(languages, list):
            raise InvalidInput('audio.output.languages must be a list of language tags such as ["es", "fr"]')
        if len(languages) > self.max_languages:
            raise InvalidInput(
                f"{len(languages)} output languages requested; this server allows at most "
                f"{self.max_languages} per session (ServerLimits.max_target_languages)"
            )
        for n, tag in enumerate(languages):
            if not isinstance(tag, str) or not 0 < len(tag) <= MAX_TAG_CHARS:
                raise InvalidInput(
                    f'audio.output language {n} must be a language tag such as "es" '
                    f"(at most {MAX_TAG_CHARS} characters)"
                )
        source = inp.get("language")
        if source and (not isinstance(source, str) or len(source) > MAX_SOURCE_CHARS):
            raise InvalidInput(
                f'audio.input.language must be a language tag such as "en", or "auto" (at most {MAX_SOURCE_CHARS} '
                "characters)"
            )
        transcription = inp.get("transcription")
        if transcription is not None and (
            not isinstance(transcription, dict)
            or len(transcription) > 16
            or len(json.dumps(transcription)) > MAX_TRANSCRIPTION_CHARS
        ):
            raise InvalidInput(
                'audio.input.transcription must be an object such as {} or {"model": "whisper-1"} '
                f"(at most {MAX_TRANSCRIPTION_CHARS} characters of JSON), or null for no transcript"
            )
        return session, inp, languages

    # -- the server's side ------------------------------------------------------------------------

    async def updated(self, u: Updated) -> None:
        """The stream core's answer to a ``session.update`` that changed the output languages:
        ``session.updated`` with them (segments from ``x_first_segment_id`` on are in them), or an
        ``error`` (the session goes on in the languages it had)."""
        asked = self._asked.popleft()  # answers come in the order the updates went in
        if u.error is not None:
            await self.send(error_event(u.error.message, "invalid_request_error", "invalid_value"))
            return
        self.languages, self.targets = asked, u.stream.task.target_languages
        self.tag_of.update(zip(self.targets, self.languages, strict=True))
        await self.send(wire_event("session.updated", session=self.session(), x_first_segment_id=u.first_segment_id))

    async def result(self, r: SegmentResult) -> None:
        span = {"segment_id": r.segment_id, "start_ms": r.start_ms, "end_ms": r.end_ms}
        if r.error is not None:  # this segment failed; the session goes on
            await self.send(_coded_error_event(ErrorCode(r.error.code), r.error.message, x_segment=span))
            return
        timing = {"latency_ms": round(r.timing.total_ms, 1), "model_ms": round(r.timing.model_ms, 1)}
        detected: dict[str, Any] = {}
        if r.detected is not None:
            detected["x_detected"] = {"language": r.detected.language, "scores": dict(r.detected.scores)}
        if self.transcription is not None and r.transcript is not None and r.transcript.text:
            await self.send(
                wire_event(
                    "session.input_transcript.delta",
                    delta=self._spaced("transcript", r.transcript.text),
                    elapsed_ms=r.end_ms,
                    x_segment=span,
                    x_language=r.transcript.language,
                    **detected,
                )
            )
        for t in r.translations:
            tag = self.tag_of.get(t.target_language, t.target_language)
            if r.speech_in_commits:  # the text and speech went out in the commits: only say it is done
                await self.send(
                    wire_event(
                        "session.output_transcript.delta",
                        delta="",
                        elapsed_ms=r.end_ms,
                        x_segment=span,
                        x_language=tag,
                        x_timing=timing,
                        x_done={"text": t.text},
                    )
                )
                continue
            if t.text:
                await self.send(
                    wire_event(
                        "session.output_transcript.delta",
                        delta=self._spaced(t.target_language, t.text),
                        elapsed_ms=r.end_ms,
                        x_segment=span,
                        x_language=tag,
                        x_timing=timing,
                    )
                )
            if t.audio is not None and len(t.audio):
                await self._speech(tag, t.audio, t.sample_rate_hz, elapsed_ms=r.end_ms, x_segment=span, x_language=tag)

    async def commit(self, c: Commit) -> None:
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
            delta = self._spaced(t.target_language, t.text.lstrip()) if first else t.text
            await self.send(wire_event("session.output_transcript.delta", delta=delta, elapsed_ms=c.source_ms, **extra))
        if t.audio is not None and len(t.audio):
            await self._speech(tag, t.audio, t.sample_rate_hz, elapsed_ms=c.source_ms, **extra)

    async def _speech(self, tag: str, audio: np.ndarray, rate: int, **fields: Any) -> None:
        """Speech onto ``tag``'s track (WebRTC), or as ``session.output_audio.delta`` events with
        ``fields``."""
        if self.speak is not None:
            self.speak(tag, audio, rate)
            return
        pcm = float_to_pcm16(audio)
        for at in range(0, len(pcm), AUDIO_DELTA_SAMPLES):
            chunk = pcm[at : at + AUDIO_DELTA_SAMPLES].astype("<i2").tobytes()
            await self.send(
                wire_event(
                    "session.output_audio.delta",
                    delta=base64.b64encode(chunk).decode("ascii"),
                    format="pcm16",
                    sample_rate=rate,
                    channels=1,
                    **fields,
                )
            )

    async def caption(self, r: InterimResult) -> None:
        """A live caption (our extension): an empty transcript delta, the caption in ``x_interim``
        (superseded by the segment's own deltas)."""
        caption = {
            "segment_id": r.segment_id,
            "start_ms": r.start_ms,
            "end_ms": r.end_ms,
            "transcript": r.transcript.text if r.transcript is not None else None,
            "translations": {self.tag_of.get(t.target_language, t.target_language): t.text for t in r.translations},
        }
        await self.send(wire_event("session.input_transcript.delta", delta="", elapsed_ms=r.end_ms, x_interim=caption))

    def _spaced(self, key: str, text: str) -> str:
        """Deltas are appended as they come: a space before every segment's text but the first."""
        first = key not in self._spoken_before
        self._spoken_before.add(key)
        return text if first else " " + text


class RealtimeDoor:
    """The HTTP port's application; ``start`` and ``stop`` run on the gRPC server's event loop."""

    def __init__(
        self,
        manager: SessionManager,
        tokens: TokenStore | None,
        secrets: ClientSecrets,
        revocation: Revocation | None = None,
    ) -> None:
        self._m = manager
        self._tokens = tokens
        #: the host's, shared by every door: a token removed from the tokens file ends the sessions
        #: it opened (client secrets expire)
        self._revocation = revocation
        self.secrets = secrets
        self.app = web.Application()
        self.app.router.add_get(PATH, self._connect)
        self.app.router.add_post(PATH + "/client_secrets", self._mint)
        self._runner: web.AppRunner | None = None
        #: the listening site (``start``), with its count of open and refused connections
        self.site: CappedSite | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.port = 0

    async def start(self, host: str, port: int, *, reuse_port: bool = False, tls: ssl.SSLContext | None = None) -> int:
        """Listen, bounded (docs/security.md): aiohttp's own limits on what a request's head may
        hold and how long it may take (its keep-alive timer runs from accept, so it is the header
        timeout), and at most ``limits.http_max_connections`` connections open (``CappedSite``)."""
        limits = self._m.limits
        timeout = limits.http_header_timeout_s
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            keepalive_timeout=timeout,
            lingering_time=timeout,  # an unread body is drained this long at most, then the connection closes
            max_line_size=HTTP_MAX_LINE_BYTES,
            max_field_size=HTTP_MAX_FIELD_BYTES,
            max_headers=HTTP_MAX_HEADERS,
        )
        await self._runner.setup()
        self.site = CappedSite(
            self._runner,
            host,
            port,
            max_connections=connection_cap(limits.http_max_connections),
            handshake_timeout_s=timeout,
            ssl_context=tls,
            reuse_port=reuse_port or None,
        )
        await self.site.start()
        self.port = int(self._runner.addresses[0][1])  # the port bound (port 0: a free one)
        return self.port

    async def stop(self) -> None:
        """After the drain: close what is still open, stop listening."""
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def authorize(self, request: web.Request, *, secret_ok: bool = True) -> Caller | web.Response:
        """Who may open a session (``secret_ok``: a client secret will do), or the HTTP error to
        answer with. A browser page of another site is refused first (``origin_allowed``)."""
        if not origin_allowed(
            request.headers.get("Origin"), request.headers.get("Host"), self._m.limits.http_allowed_origins
        ):
            return _http_error(403, ORIGIN_REFUSED, "origin_not_allowed")
        token = bearer(request.headers.get("Authorization")) or ""
        if secret_ok and token.startswith(SECRET_PREFIX):
            tenant = self.secrets.tenant(token)
            if tenant is None:
                return _http_error(
                    401, "the client secret is not valid or has expired: mint a new one", "invalid_api_key"
                )
            known = self._tokens.secret_tenant(tenant) if self._tokens is not None else Tenant(tenant)
            if known is None and tenant == DEMO_TENANT and self._tokens is not None:
                known = self._tokens.tenant(tenant) or Tenant(tenant)  # minted by the server's demo page
            if known is None:  # no token of its tenant may stream any more (docs/security.md)
                return _http_error(401, "the client secret's tenant was removed: mint a new one", "invalid_api_key")
            return Caller(known)  # a session opened with it runs on until it ends
        if self._tokens is None:
            return Caller(DEFAULT_TENANT)
        if not token:
            message = "this server requires a token: send `Authorization: Bearer <token>` (api_key)"
            return _http_error(401, message, "missing_api_key")
        grant = self._tokens.lookup(token)
        if grant is None:
            return _http_error(401, "the token is not valid; send a current token of this server", "invalid_api_key")
        if Permission.STREAM not in grant.permissions:
            message = 'the token lacks the permission "stream" that a realtime session needs'
            return _http_error(403, message, "insufficient_permissions")
        return Caller(grant.tenant, TokenDigest.of(token), self._revocation)

    async def _mint(self, request: web.Request) -> web.Response:
        """A short-lived client secret for a browser (a server token with ``stream`` mints it;
        a client secret cannot mint another)."""
        caller = self.authorize(request, secret_ok=False)
        if isinstance(caller, web.Response):
            return caller
        timeout_s = self._m.limits.http_header_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                body = await request.json()
        except ValueError:  # not JSON (nor UTF-8)
            body = None
        except TimeoutError:
            message = f"the request's body did not come within {timeout_s:g} s (limits.http_header_timeout_s)"
            return _http_error(408, message, "request_timeout")
        try:
            asked, session = parse_mint_request(body)
        except BadRequest as e:
            return _http_error(400, str(e), "invalid_value")
        value, expires = self.secrets.mint(asked, tenant=caller.tenant.name)
        return web.json_response({"value": value, "expires_at": expires, "session": {"type": "translation", **session}})

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        caller = self.authorize(request)
        if isinstance(caller, web.Response):
            return caller
        limits = self._m.limits
        call = CallInfo(new_request_id(request.headers.get("X-Request-Id")), "realtime", request.remote or "")
        # the stream's slots before the upgrade (issue 34 N3): a tenant at its cap, a full or a
        # draining server answers with an HTTP status and opens no WebSocket; an open socket holds
        # its slots, and the stream core ends it if no config comes (limits.config_timeout_ms)
        try:
            admission = self._m.admit_stream(caller.tenant)
        except ServiceError as e:
            return admission_refused(e)
        try:
            # one event at most: an audio append of ws_max_append_bytes (base64) and its JSON; what an
            # unconfigured socket can make the server hold is a few of these
            max_msg = ws_message_bytes(limits.ws_max_append_bytes)
            ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=max_msg)
            ws.headers["X-Request-Id"] = call.request_id
            await ws.prepare(request)
            _fix_buffers(request, limits)
        except BaseException:
            admission.release()
            raise
        self._sockets.add(ws)

        async def send(text: str) -> None:
            if not ws.closed:
                await ws.send_str(text)

        conn = RealtimeSession(
            send,
            request.query.get("model", ""),
            request.query.get("source_language"),
            self._m.vad_defaults,
            max_languages=limits.max_target_languages,
            max_append_bytes=limits.ws_max_append_bytes,
            chunk_bytes=limits.max_chunk_bytes,
            card=_card(self._m),
        )
        try:
            await conn.send(wire_event("session.created", session=conn.session()))
            # a client back from a drained server resumes its stream at once (x_resume, from the
            # last session.closed): its appends go on with no session.update first
            resume = request.query.get("x_resume")
            first = await conn.resumed(resume) if resume else None
            await serve_session(self._m, conn, conn.requests(_texts(ws), first), caller, call, admission=admission)
        finally:
            admission.release()  # the session's own once it started (then this does nothing)
            self._sockets.discard(ws)
            if not ws.closed:
                await ws.close(code=conn.close_code)
            await _disarm_heartbeat(ws)
        return ws


async def _disarm_heartbeat(ws: web.WebSocketResponse) -> None:
    """aiohttp (3.14) re-arms a socket's heartbeat when data arrives during ``close()`` (the
    client's close frame), after ``close()`` disarmed it: the timer then holds the closed socket's
    response, request handler and zlib state (about 300 KB) for 45 s more (issue 53: a soak's
    sessions). The re-arm runs on the next turn of the loop; after it, disarm for good."""
    await asyncio.sleep(0)
    ws._cancel_heartbeat()


def _fix_buffers(request: web.Request, limits: LimitsSettings) -> None:
    """Fixed kernel buffers for the socket (issue 34), as the gRPC door fixes its HTTP/2 windows;
    Linux would grow each to MBs. Sending: what a client that does not read lets the server push
    (results computed for nobody, held in the kernel). Receiving: the audio a client sends ahead
    of a session that stopped reading (``limits.stream_window_bytes``)."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.ws_send_buffer_bytes)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, limits.stream_window_bytes)


@dataclass(frozen=True)
class Caller:
    """Who opened a session: their tenant, and (opened with a token) how it is revoked."""

    tenant: Tenant
    #: the token that opened it, as its digest only: a session may live for hours
    token: TokenDigest | None = None
    revocation: Revocation | None = None


async def serve_session(
    manager: SessionManager,
    conn: RealtimeSession,
    requests: AsyncIterator[StreamRequest],
    caller: Caller,
    call: CallInfo | None = None,
    *,
    admission: Admission | None = None,
) -> None:
    """Run one session of ``caller`` through the stream core until it ends; every event goes to the
    client. A session opened with a token ends if the token is removed from the tokens file.
    ``call``: for the access log. ``admission``: the stream's slots, when the door took them
    before it upgraded the connection (``SessionManager.admit_stream``); the driver owns them."""
    # error_drain_s 0: no half-closed write to wait for (unlike gRPC)
    driver = StreamDriver(manager, error_drain_s=0.0, tenant=caller.tenant, call=call, admission=admission)
    revocation = caller.revocation
    watching = contextlib.nullcontext() if revocation is None else revocation.watching(driver, caller.token)
    method = call.method if call is not None else "realtime"
    request_id = {"translate_svc.request_id": call.request_id} if call is not None else {}
    with tracing.call_span(f"{method} session", **request_id):  # no instrumentation covers these doors
        try:
            with watching:
                await _drive(driver, conn, requests)
        except ServiceError as e:
            await conn.send(service_error_event(e))


async def _drive(driver: StreamDriver, conn: RealtimeSession, requests: AsyncIterator[StreamRequest]) -> None:
    """The driver's events as OpenAI's, until the stream ends."""
    async with contextlib.aclosing(driver.run(requests)) as events:
        async for ev in events:
            if isinstance(ev, StreamStarted):
                conn.resume_token = ev.resume_token
                await conn.send(wire_event("session.updated", session=conn.session(), x_session_id=ev.session_id))
            elif isinstance(ev, SegmentResult):
                await conn.result(ev)
            elif isinstance(ev, Commit):
                await conn.commit(ev)
            elif isinstance(ev, Updated):
                await conn.updated(ev)
            elif isinstance(ev, InterimResult):
                await conn.caption(ev)
            elif isinstance(ev, Draining):
                await conn.send(
                    error_event(
                        f"this server is shutting down: the session ends in {ev.remaining_ms} ms; "
                        "reconnect (to another server) to go on",
                        "server_error",
                        "server_shutting_down",
                        x_deadline_unix_ms=ev.deadline_unix_ms,
                    )
                )
            elif isinstance(ev, StreamEnded):
                closed: dict[str, Any] = {
                    "x_segments_total": ev.segments_total,
                    "x_audio_received_ms": ev.audio_received_ms,
                    "x_reason": ev.reason or "closed",
                }
                if isinstance(ev.limit, ShuttingDown):
                    at = ev.resume_offset_ms
                    closed["x_resume"] = conn.resume_state(ev)
                    closed["x_resume_offset_ms"] = at  # the audio from here on was not translated
                    conn.close_code = RESTART_CLOSE_CODE
                    message = (
                        f"this server shut down: the audio up to {at} ms was translated and every "
                        "result sent; reconnect with the x_resume query parameter to go on (the socket "
                        f"closes with {RESTART_CLOSE_CODE}, which the openai SDK reconnects on)"
                    )
                    await conn.send(
                        error_event(message, "server_error", "server_shutting_down", x_resume=closed["x_resume"])
                    )
                elif ev.limit is not None:
                    await conn.send(service_error_event(ev.limit))
                await conn.send(wire_event("session.closed", **closed))
                break  # the stream is over: nothing is held open for a WebSocket


async def _texts(ws: web.WebSocketResponse) -> AsyncIterator[str | None]:
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            yield msg.data
        elif msg.type == WSMsgType.BINARY:
            yield None


def _shown_type(kind: Any) -> str:
    """A client's event ``type`` for an error message: at most ``SHOWN_TYPE_CHARS`` of it."""
    if not isinstance(kind, str):
        return "(not a string)"
    return repr(kind[:SHOWN_TYPE_CHARS]) + ("..." if len(kind) > SHOWN_TYPE_CHARS else "")


def _object(value: Any, field: str) -> dict[str, Any]:
    """``value`` as a JSON object (null or absent: an empty one), or ``InvalidInput``."""
    if not value:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object")
    return value


def ws_message_bytes(max_append_bytes: int) -> int:
    """The largest WebSocket message the door reads: one append of ``max_append_bytes`` of audio as
    base64, and its JSON (what one socket can make the server buffer at once)."""
    return 4 * (max_append_bytes + 2) // 3 + WS_MESSAGE_SLACK_BYTES


def _card(manager: SessionManager) -> ModelCard | None:
    try:
        return manager.card
    except NotReady:
        return None


def admission_refused(e: ServiceError) -> web.Response:
    """A stream refused at the handshake (a WebSocket's or a WebRTC call's), as an HTTP status: 503
    while the server drains (Retry-After 1), 429 at a cap (with Retry-After where the error has a
    retry hint); the body is the error event the session would have sent."""
    kind, code = _ERROR_TYPES.get(e.code, ("server_error", "internal_error"))
    if e.code == ErrorCode.UNAVAILABLE:
        status, code = 503, "server_shutting_down"
    else:
        status, code = (429, e.reason or code) if e.code == ErrorCode.RESOURCE_EXHAUSTED else (500, code)
    headers = {}
    error: dict[str, Any] = {"message": e.message, "type": kind, "code": code, "param": None}
    if e.retry_after_ms is not None:
        headers["Retry-After"] = str(max(1, math.ceil(e.retry_after_ms / 1000)))
        error["x_retry_after_ms"] = e.retry_after_ms
    elif status == 503:  # draining: another replica takes it now
        headers["Retry-After"] = "1"
    return web.json_response({"error": error}, status=status, headers=headers)


def _http_error(status: int, message: str, code: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code, "param": None}}
    return web.json_response(body, status=status)


def connection_cap(setting: int) -> int:
    """``limits.http_max_connections``, but never more than half this process's file descriptors
    (RLIMIT_NOFILE; a shell's default is 1024): the other half stays for the other doors, the model's
    files and the engine (a warning says when the setting was lowered)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or setting <= soft // 2:
        return setting
    cap = max(1, soft // 2)
    logger.warning(
        "limits.http_max_connections=%d is more than half of this process's %d file descriptors (ulimit -n): "
        "the HTTP port takes at most %d connections",
        setting,
        soft,
        cap,
    )
    return cap


_REFUSAL_BODY = json.dumps(
    {
        "error": {
            "message": "this server has as many connections open on its HTTP port as it takes "
            "(limits.http_max_connections); retry shortly",
            "type": "server_error",
            "code": "server_overloaded",
            "param": None,
        }
    }
).encode()
#: what a plaintext connection over the cap gets before it is closed
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_REFUSAL_BODY), _REFUSAL_BODY)
)


class CappedSite(web.BaseSite):
    """``web.TCPSite`` with a cap on the connections open at once, which aiohttp lacks (3.14: its
    ``Server`` counts connections but never refuses one; asyncio accepts until the process is out
    of file descriptors, and then logs every failed accept). A connection over ``max_connections``
    is closed as soon as it is accepted (a plaintext one after a 503), so its descriptor is free
    again at once, and one warning per ``REFUSED_LOG_EVERY_S`` says how many were. Counted: aiohttp's
    connections, and TLS handshakes under way (from accept; ``handshake_timeout_s`` at most, not
    asyncio's 60 s). Everything else (parsing, timeouts, keep-alive) is aiohttp's. Event loop only."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        max_connections: int,
        handshake_timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
        reuse_port: bool | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self.max_connections = max_connections
        self._handshake_timeout_s = handshake_timeout_s
        self._handshakes: set[asyncio.Task[None]] = set()
        #: connections refused at the cap since the site started
        self.refused = 0
        self._unlogged = 0  # refused since the last line logged
        self._log_timer: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    @property
    def open_connections(self) -> int:
        server = self._runner.server
        return (len(server.connections) if server is not None else 0) + len(self._handshakes)

    async def start(self) -> None:
        await super().start()
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Accepted(self), self._host, self._port, backlog=self._backlog, reuse_port=self._reuse_port
        )

    async def stop(self) -> None:
        await super().stop()
        if self._log_timer is not None:
            self._log_timer.cancel()
            self._log_refused(again=False)
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)

    def accepted(self, transport: asyncio.Transport) -> None:
        """A connection was accepted: refused over the cap, else handed to aiohttp's protocol
        (after the TLS handshake, with TLS)."""
        server = self._runner.server
        if server is None or self.open_connections >= self.max_connections:
            self._refuse(transport)
            return
        handler = server()  # aiohttp's RequestHandler, with the runner's limits
        if self._ssl_context is None:
            transport.set_protocol(handler)
            handler.connection_made(transport)
            return
        transport.pause_reading()  # the handshake reads first
        task = asyncio.get_running_loop().create_task(self._handshake(transport, handler, self._ssl_context))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, transport: asyncio.Transport, handler: asyncio.Protocol, tls: ssl.SSLContext) -> None:
        early = _Early()
        try:
            wrapped = await asyncio.get_running_loop().start_tls(
                transport, early, tls, server_side=True, ssl_handshake_timeout=self._handshake_timeout_s
            )
        except Exception:  # failed, too slow, or the client left: nothing to serve
            transport.abort()
            return
        if wrapped is None:
            transport.abort()
            return
        wrapped.set_protocol(handler)
        handler.connection_made(wrapped)
        early.replay(handler)

    def _refuse(self, transport: asyncio.Transport) -> None:
        self.refused += 1
        if self._ssl_context is None:
            transport.write(_REFUSAL)
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()
        if self._log_timer is not None:  # said already: counted, and said within REFUSED_LOG_EVERY_S
            self._unlogged += 1
            return
        logger.warning(
            "the HTTP port has %d connections open, its cap (limits.http_max_connections): refusing new ones",
            self.max_connections,
        )
        self._log_timer = asyncio.get_running_loop().call_later(REFUSED_LOG_EVERY_S, self._log_refused)

    def _log_refused(self, *, again: bool = True) -> None:
        """How many more were refused since the last line (nothing if none: the next refusal says
        it again at once)."""
        self._log_timer = None
        if not self._unlogged:
            return
        logger.warning(
            "the HTTP port refused %d more connections at its cap of %d (limits.http_max_connections)",
            self._unlogged,
            self.max_connections,
        )
        self._unlogged = 0
        if again:
            self._log_timer = asyncio.get_running_loop().call_later(REFUSED_LOG_EVERY_S, self._log_refused)


class _Accepted(asyncio.Protocol):
    """A connection as accepted, until ``CappedSite`` refuses it or hands it to aiohttp."""

    def __init__(self, site: CappedSite) -> None:
        self._site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._site.accepted(transport)

    def data_received(self, data: bytes) -> None:  # a refused connection's request: dropped
        pass


class _Early(asyncio.Protocol):
    """A TLS connection's protocol from its handshake's end until aiohttp's takes over: what came
    in that moment is kept for it, in order."""

    def __init__(self) -> None:
        self._events: list[Callable[[asyncio.Protocol], object]] = []

    def data_received(self, data: bytes) -> None:
        self._events.append(lambda p: p.data_received(data))

    def eof_received(self) -> bool:
        self._events.append(lambda p: p.eof_received())
        return True  # aiohttp's protocol decides once it has it

    def connection_lost(self, exc: Exception | None) -> None:
        self._events.append(lambda p: p.connection_lost(exc))

    def replay(self, protocol: asyncio.Protocol) -> None:
        for event in self._events:
            event(protocol)
        self._events.clear()


def tls_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """The gRPC port's TLS (and mTLS) for the HTTP port too (read at start: a rotated certificate
    needs a restart here, unlike on the gRPC port)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx
