"""OpenAI's realtime transcription sessions, sans I/O: the client's events in, the stream core's
requests out; the core's events in, OpenAI's wire events out (docs/openai-compat.md,
"Realtime transcription sessions"). The session loop (``loop.py``) carries it as it carries the
translation protocol (``protocol.py``): the same admission, limits, idle timeout, drain and
access line. The settings and their checks are ``transcription_config.py``.

- The stream is ASR only (no targets: the transcript alone), configured by the first
  ``session.update`` (GA, ``session.type: "transcription"``) or ``transcription_session.update``
  (beta), or by the first ``input_audio_buffer.append`` (the defaults ``session.created`` showed).
  Once it runs, an update may only repeat what is in force (else an ``error``; the session goes on).
- **An item is a segment** of the stream core. Each gets ``input_audio_buffer.committed {item_id,
  previous_item_id}`` once its segment has closed, then, when the model has it,
  ``conversation.item.input_audio_transcription.delta`` (its whole transcript; none when empty) and
  ``…completed {transcript, usage}`` with our span and timing as ``x_`` fields, or ``…failed`` (a
  failed segment: not an ``error``, the session goes on).
- ``turn_detection: server_vad`` (the default): the stream core's VAD cuts the turns.
  ``input_audio_buffer.speech_started``/``speech_stopped`` bracket each speech region (their
  ``item_id`` is its first segment's: ``SpeechEvent.next_segment_id``); a region's segments are
  committed when it stops (or, a region the length cap split, each at the latest before its result).
- ``turn_detection: semantic_vad`` with its ``eagerness``: the same events, the turns ended by the
  end-of-turn model at each pause (``vad/segmenter.py``). Where this server does not run the
  model, the stream keeps server VAD: ``session.updated`` says so, its ``turn_detection`` the
  ``server_vad`` in force and ``x_notices`` the reason.
- ``turn_detection: null``: the client commits its turns. The VAD still cuts at pauses (the model
  wants segments), but nothing is said of a segment until a commit: then every segment closed
  since the last is committed and its transcript follows (beyond ``MAX_HELD`` transcripts waiting,
  the oldest is committed as if the client had).
- ``input_audio_buffer.commit`` closes the open speech (``Flush``), between two asks for the id
  of the next segment, each an update that keeps the task as it is (``Update(())``): the core
  answers every update in order with the stream's events (``Updated.first_segment_id``), so the
  two answers say exactly which segments closed while the commit was applied. At the second,
  every segment closed so far is committed; a commit that closed none and found none waiting is
  answered with an empty item (``committed``, then ``completed`` with an empty transcript and
  ``x_no_speech``), so every commit is answered. ``input_audio_buffer.clear`` does the same, then
  drops every segment not yet committed (the model's work on them is not sent) and answers
  ``input_audio_buffer.cleared``.
- The drain's notice is ``session.x_draining`` (not an ``error``: strict clients close on any);
  the session is served to the deadline, then closed with 1012 (service restart). A limit that
  ends the session (idle, duration, revocation, quota, the engine) is an ``error`` named after it,
  then the close.

Every method is a generator of what to send (JSON text) and what to request, in order. Event loop
only (one per session).
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

from translate_svc.errors import ErrorCode, InvalidInput, ShuttingDown
from translate_svc.session.events import (
    AudioIn,
    Draining,
    EagerEndOfTurn,
    Flush,
    Invalid,
    SpeechEvent,
    StreamEnded,
    StreamEvent,
    StreamStarted,
    TurnResumed,
    Update,
    Updated,
)
from translate_svc.settings import LimitsSettings
from translate_svc.transport.http.errors import error_type
from translate_svc.transport.openai.asr_options import TurnDetection
from translate_svc.transport.openai.audio_formats import token_logprobs
from translate_svc.transport.openai.protocol import RESTART_CLOSE_CODE
from translate_svc.transport.openai.transcription_config import (
    FORMATS,
    ParamError,
    TranscriptionSettings,
    beta_session,
    ga_session,
    stream_config,
    update_beta,
    update_ga,
)
from translate_svc.transport.openai.wire import BadEnvelope, Reply, envelope, shown_type, wire_event
from translate_svc.types import AudioEncoding, ModelCard, SegmentResult
from translate_svc.vad.segmenter import SegmenterConfig

COMMITTED = "input_audio_buffer.committed"
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"
DRAINING = "session.x_draining"
#: semantic_vad's ``x_eager_threshold``: the turn may have ended (its transcription started), and
#: speech resumed after it (the item goes on)
EAGER_END = "input_audio_buffer.x_eager_end_of_turn"
TURN_RESUMED = "input_audio_buffer.x_turn_resumed"
#: results held for a client that commits its turns (``turn_detection: null``) and has not: beyond
#: this many the oldest are committed as if it had (what a session holds stays bounded; the stream
#: core's unread bound no longer counts a result the protocol has taken)
MAX_HELD = 64


class TranscriptionProtocol:
    """One transcription session. ``beta``: the client spoke the beta protocol from its first
    message on (``OpenAI-Beta: realtime=v1``): the first event is ``transcription_session.created``."""

    def __init__(
        self,
        model: str,
        vad: SegmenterConfig,
        limits: LimitsSettings,
        *,
        card: ModelCard | None = None,
        beta: bool = False,
    ) -> None:
        self.vad = vad
        self.limits = limits
        self.card = card
        self.beta = beta
        self.session_id = f"sess_{uuid.uuid4().hex[:16]}"
        self._items = f"item_{uuid.uuid4().hex[:12]}"
        self.settings = TranscriptionSettings(TurnDetection.of(vad), model=model[:128], beta=beta)
        self.started = False  # the stream's config went to the core
        #: the update that started the stream answers when the core admits it (beta or GA shape)
        self._answer: bool | None = None
        #: what the stream runs otherwise than asked (``StreamStarted.notices``), in session objects
        self._notices: tuple[str, ...] = ()
        self._eagerness = ""  # the semantic end of turn in force, where notices say it is not the one asked
        self.close_code = 1000  # 1012 (service restart) after a drain
        self.closed = False  # the protocol has no half-close: the loop ends with the socket
        # -- items: segment ids below ``_settled`` are committed or dropped, in order
        self._settled = 0
        self._last_item: str | None = None
        self._held: dict[int, SegmentResult] = {}  # results of segments not yet committed
        self._dropped: set[int] = set()  # segments a clear dropped whose results are still to come
        #: the asks of commits and clears not answered yet, in order: "begin", then "commit" or "clear"
        self._markers: collections.deque[str] = collections.deque()
        self._opened = 0  # the next segment's id when the last commit or clear began
        self._speech_item: str | None = None
        self._empty = 0

    # -- the client's side ------------------------------------------------------------------------

    def created(self) -> str:
        if self.beta:
            return wire_event("transcription_session.created", session=self._session(beta=True))
        return wire_event("session.created", session=self._session(beta=False))

    def resume(self, value: str) -> Iterator[Reply]:
        """Transcription sessions are not resumed (no ``x_resume``): a new connection is a new session."""
        yield Invalid(InvalidInput("x_resume is for translation sessions: connect without it"))

    def receive(self, text: str | None) -> Iterator[Reply]:
        read = envelope(text)
        if isinstance(read, BadEnvelope):  # nothing of it is used
            yield _error(read.message, read.code, param=read.param)
            return
        kind, event_id, event = read.kind, read.event_id, read.event
        if kind in ("session.update", "transcription_session.update"):
            yield from self._update(event.get("session"), beta=kind != "session.update", event_id=event_id)
        elif kind == "input_audio_buffer.append":
            yield from self._append(event, event_id)
        elif kind in ("input_audio_buffer.commit", "input_audio_buffer.clear"):
            yield from self._mark(kind.rpartition(".")[2], event_id)
        else:
            yield _error(f"unknown event type {shown_type(kind)}", "unknown_event", event_id=event_id)

    def _update(self, session: Any, *, beta: bool, event_id: str | None) -> Iterator[Reply]:
        """A settings update: checked whole, then applied (not started: it starts the stream)."""
        try:
            parse = update_beta if beta else update_ga
            new = parse(session, self.settings, self.vad, self.limits)
            if self.started:
                if not new.same_stream(self.settings):
                    raise ParamError(
                        "this session's audio format, language, prompt, turn detection, noise reduction and x_terms "
                        "are fixed once it has started (its first update or audio): open a new session for others",
                        "session",
                    )
                self.settings = new
                yield self._updated(beta)
                return
            config = stream_config(new, self.card, self.vad, self.limits)
        except ParamError as e:
            yield _error(e.message, "invalid_value", param=e.param, event_id=event_id)
            return
        self.settings, self.started, self._answer = new, True, beta
        yield config

    def _append(self, event: dict[str, Any], event_id: str | None) -> Iterator[Reply]:
        if not self.started:  # the defaults session.created showed
            try:
                config = stream_config(self.settings, self.card, self.vad, self.limits)
            except ParamError as e:
                yield _error(
                    f"{e.message} (send a session.update first; this audio was not used)",
                    "invalid_value",
                    param=e.param,
                    event_id=event_id,
                )
                return
            self.started = True
            yield config
        fmt = FORMATS[self.settings.audio_format]
        width = 2 if fmt.encoding is AudioEncoding.LINEAR16 else 1
        try:
            data = base64.b64decode(event.get("audio", ""), validate=True)
        except (binascii.Error, ValueError, TypeError):
            data = None
        if data is None or len(data) % width:
            yield Invalid(
                ParamError(
                    f"`audio` must be base64 of {self.settings.audio_format} audio (PCM16: 24 kHz mono "
                    "little-endian samples, an even number of bytes)",
                    "audio",
                )
            )
            return
        limit = self.limits.ws_max_append_bytes
        if len(data) > limit:  # within the message's slack: refused, not fatal
            yield _error(
                f"this append carries {len(data)} bytes of audio, over this server's {limit} "
                "(x_limits.max_append_bytes): this audio was not used; send it again in smaller appends",
                "append_too_large",
                event_id=event_id,
            )
            return
        chunk = self.limits.max_chunk_bytes // width * width
        for at in range(0, len(data), chunk):
            yield AudioIn(data[at : at + chunk])

    def _mark(self, kind: str, event_id: str | None) -> Iterator[Reply]:
        """A commit or a clear: the open speech closed, then the core's next segment id asked."""
        if not self.started:
            if kind == "clear":
                yield wire_event("input_audio_buffer.cleared")
            else:
                yield _error(
                    "the input audio buffer is empty: append audio before committing",
                    "input_audio_buffer_commit_empty",
                    event_id=event_id,
                )
            return
        self._markers.extend(("begin", kind))
        yield Update(target_languages=())  # the task as it is: answered in order, with the next id
        yield Flush()
        yield Update(target_languages=())

    # -- the server's side ------------------------------------------------------------------------

    def render(self, ev: StreamStarted | StreamEvent) -> Iterator[str]:
        """One of the stream core's events as OpenAI's."""
        if isinstance(ev, StreamStarted):
            if ev.notices:  # not what was asked: the session as it runs, and why
                self._notices, self._eagerness = ev.notices, ev.vad.eagerness
                yield self._updated(bool(self._answer))
            elif self._answer is not None:
                yield self._updated(self._answer)
        elif isinstance(ev, SegmentResult):
            yield from self._result(ev)
        elif isinstance(ev, Updated):
            yield from self._marked(ev.first_segment_id)
        elif isinstance(ev, Draining):
            yield wire_event(
                DRAINING,
                code="server_shutting_down",
                message=(
                    f"this server is shutting down: the session ends in {ev.remaining_ms} ms; reconnect "
                    "(to another server) to go on"
                ),
                remaining_ms=ev.remaining_ms,
                deadline_unix_ms=ev.deadline_unix_ms,
            )
        elif isinstance(ev, StreamEnded):
            yield from self._ended(ev)
        elif isinstance(ev, SpeechEvent) and ev.started:
            yield from self._speech_started(ev.offset_ms, ev.next_segment_id)
        elif isinstance(ev, SpeechEvent):
            yield from self._speech_stopped(ev.offset_ms, ev.next_segment_id)
        elif isinstance(ev, EagerEndOfTurn):  # semantic_vad's x_eager_threshold only
            yield wire_event(
                EAGER_END,
                item_id=self._item(ev.segment_id),
                audio_start_ms=ev.start_ms,
                audio_end_ms=ev.end_ms,
            )
        elif isinstance(ev, TurnResumed):
            yield wire_event(TURN_RESUMED, item_id=self._item(ev.segment_id), audio_resumed_ms=ev.offset_ms)
        # captions and commits: an ASR-only stream without captions has none

    def _speech_started(self, offset_ms: int, first: int) -> Iterator[str]:
        if self.settings.turn_detection is None:
            return
        self._speech_item = self._item(first)
        yield wire_event("input_audio_buffer.speech_started", audio_start_ms=offset_ms, item_id=self._speech_item)

    def _speech_stopped(self, offset_ms: int, after: int) -> Iterator[str]:
        if self.settings.turn_detection is None:
            return
        item = self._speech_item or self._item(after - 1)
        self._speech_item = None
        yield wire_event("input_audio_buffer.speech_stopped", audio_end_ms=offset_ms, item_id=item)
        if not self._clearing:
            yield from self._settle(after)

    def _result(self, r: SegmentResult) -> Iterator[str]:
        if r.segment_id in self._dropped:  # cleared
            self._dropped.discard(r.segment_id)
            return
        if r.segment_id < self._settled:
            yield from self._item_events(r)
        elif self.settings.turn_detection is not None and not self._clearing:
            yield from self._settle(r.segment_id + 1)  # a region split by the cap: committed before its result
            yield from self._item_events(r)
        else:  # not committed yet: the client commits (or a clear is on its way)
            self._held[r.segment_id] = r
            if len(self._held) > MAX_HELD and not self._clearing:
                yield from self._settle(min(self._held) + 1)

    def _marked(self, next_id: int) -> Iterator[str]:
        """The core's answer to a commit's or a clear's marker: the segments before ``next_id``."""
        if not self._markers:  # (only markers ask for updates)
            return
        kind = self._markers.popleft()
        if kind == "begin":
            self._opened = next_id
            return
        if kind == "clear":
            for n in range(self._settled, next_id):
                if self._held.pop(n, None) is None:
                    self._dropped.add(n)
            self._settled = max(self._settled, next_id)
            yield wire_event("input_audio_buffer.cleared")
            yield from self._release()
            return
        before = self._settled
        yield from self._settle(next_id)
        if self._settled == before and next_id == self._opened:  # no speech closed, none waited: an empty item
            self._empty += 1
            item = f"{self._items}_x{self._empty}"
            yield wire_event(COMMITTED, item_id=item, previous_item_id=self._last_item)
            self._last_item = item
            yield wire_event(
                COMPLETED,
                item_id=item,
                content_index=0,
                transcript="",
                usage={"type": "duration", "seconds": 0.0},
                x_no_speech=True,
            )

    def _settle(self, next_id: int) -> Iterator[str]:
        """Commit every segment before ``next_id`` not yet committed, each followed by its result
        if it came already."""
        for n in range(self._settled, next_id):
            item = self._item(n)
            yield wire_event(COMMITTED, item_id=item, previous_item_id=self._last_item)
            self._last_item = item
            self._settled = n + 1
            held = self._held.pop(n, None)
            if held is not None:
                yield from self._item_events(held)

    def _release(self) -> Iterator[str]:
        """After a clear: results held only because it was on its way."""
        if self.settings.turn_detection is not None and not self._clearing and self._held:
            yield from self._settle(max(self._held) + 1)

    @property
    def _clearing(self) -> bool:
        return "clear" in self._markers

    def _item_events(self, r: SegmentResult) -> Iterator[str]:
        item = self._item(r.segment_id)
        span = {"segment_id": r.segment_id, "start_ms": r.start_ms, "end_ms": r.end_ms}
        if r.error is not None:
            kind, code = error_type(ErrorCode(r.error.code))
            error = {"type": kind, "code": code, "message": r.error.message, "param": None}
            yield wire_event(FAILED, item_id=item, content_index=0, error=error, x_segment=span)
            return
        text = r.transcript.text if r.transcript is not None else ""
        extra: dict[str, Any] = {"x_segment": span}
        if r.transcript is not None:
            extra["x_language"] = r.transcript.language
        if r.detected is not None:
            extra["x_detected"] = {"language": r.detected.language, "scores": dict(r.detected.scores)}
        logprobs: dict[str, Any] = {}
        if self.settings.logprobs:  # include: ["item.input_audio_transcription.logprobs"]
            logprobs["logprobs"] = token_logprobs(r.transcript.tokens if r.transcript is not None else ())
        if text:
            yield wire_event(DELTA, item_id=item, content_index=0, delta=text, **logprobs)
        yield wire_event(
            COMPLETED,
            item_id=item,
            content_index=0,
            transcript=text,
            usage={"type": "duration", "seconds": round((r.end_ms - r.start_ms) / 1000, 3)},
            x_timing={"latency_ms": round(r.timing.total_ms, 1), "model_ms": round(r.timing.model_ms, 1)},
            **logprobs,
            **extra,
        )

    def _ended(self, ev: StreamEnded) -> Iterator[str]:
        if self._held:  # the session ends: what was transcribed is sent, as at a last commit
            yield from self._settle(max(self._held) + 1)
        if isinstance(ev.limit, ShuttingDown):  # the close (1012) says it: no error for strict clients
            self.close_code = RESTART_CLOSE_CODE
        elif ev.limit is not None:
            kind, code = error_type(ev.limit.code)
            yield wire_event(
                "error",
                error={"type": kind, "code": ev.reason or code, "message": ev.limit.message, "param": None},
            )

    def _updated(self, beta: bool) -> str:
        if beta:
            return wire_event("transcription_session.updated", session=self._session(beta=True))
        return wire_event("session.updated", session=self._session(beta=False))

    def _session(self, *, beta: bool) -> dict[str, Any]:
        extra: dict[str, Any] = {"x_limits": {"max_append_bytes": self.limits.ws_max_append_bytes}}
        if self._notices:
            extra["x_notices"] = list(self._notices)
        render = beta_session if beta else ga_session
        s, td = self.settings, self.settings.turn_detection
        if td is not None and self._notices and td.eagerness != self._eagerness:  # the rule in force
            s = dataclasses.replace(s, turn_detection=dataclasses.replace(td, eagerness=self._eagerness))
        return render(s, self.session_id, extra)

    def _item(self, segment_id: int) -> str:
        return f"{self._items}_{segment_id}"


def _error(message: str, code: str, *, param: str | None = None, event_id: str | None = None) -> str:
    """An ``error`` event in OpenAI's shape, with its ``param``."""
    error = {"type": "invalid_request_error", "code": code, "message": message, "param": param, "event_id": event_id}
    return wire_event("error", error=error)
