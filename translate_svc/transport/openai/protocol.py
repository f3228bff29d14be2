"""OpenAI's realtime translation protocol, sans I/O: the client's events in, the stream core's
requests out; the core's events in, OpenAI's wire events out (docs/openai-compat.md has the whole
mapping). No socket and no web framework here (DESIGN.md pitfall 25): the session loop
(``loop.py``) reads the client's messages, feeds them to ``RealtimeProtocol``, sends what it gives
back and drives the stream core with its requests; the WebSocket and WebRTC's data channel carry
the same protocol.

- ``session.update`` (the first one that names ``audio.output.language``) is the stream's config:
  24 kHz PCM16 mono in, that language out (an ISO 639-1 tag, mapped like the CLI's ``--to``),
  the source transcript when ``audio.input.transcription`` is set. Extensions their clients
  ignore: ``audio.output.languages`` (several targets), ``audio.input.language`` (the source
  language; also the ``source_language`` query parameter), ``x_captions_interval_ms`` (live
  captions: the open speech as text every this many ms, as ``session.input_transcript.delta``
  events with an empty ``delta`` and the caption in ``x_interim``), ``x_terms`` (the term list:
  ``x_terms.py``), ``x_profanity`` (the profanity filter: ``session_update.profanity_of``).
  ``audio.output.speed`` (or the beta sessions' ``speed``) is the speaking rate
  (``session_update.speed_of``). ``x_conversation`` (``x_conversation.py``): a conversation's
  languages in place of output languages. Once the stream runs, an update may change the output
  languages (or a conversation's) and the rate only (an ``Update``: from the segment that closes
  next; ``running.py``); one that changes the terms is refused (they are fixed, as on the gRPC door).
- ``session.input_audio_buffer.append`` is audio; ``session.close`` half-closes: the open speech is
  translated, every result sent, then ``session.closed``.
- Simultaneous by default (OpenAI's protocol is continuous): the stream runs in simultaneous mode
  (``SimultaneousOptions``: a step every 1000 ms of audio, agreement 2), and each ``Commit``
  becomes a ``session.output_transcript.delta`` (the committed words) and
  ``session.output_audio.delta`` chunks (their speech), with ``elapsed_ms`` = the commit's
  ``source_ms`` and ``x_commit``. The segment's result (``speech_in_commits``) then sends its
  transcript delta and, per target, one empty ``session.output_transcript.delta`` whose
  ``x_done`` holds the whole text, and no speech again. Extension ``x_simultaneous_step_ms``: the
  step (0: off, segment mode).
- A segment's result with nothing committed (segment mode, or speech too short for a step) becomes
  one ``session.input_transcript.delta`` (its whole transcript), one
  ``session.output_transcript.delta`` per target and ``session.output_audio.delta`` chunks of
  24 kHz PCM16, each with ``elapsed_ms`` = the segment's end on the stream's timeline and our exact
  span and timing as extra fields.
- Every segment ends with its done events (``finals.py``: ``session.output_transcript.done``,
  ``session.output_audio.done``, ``session.input_transcript.done``; ``x_done_events: false``: none).
- Results, commits and done events are rendered by ``results.py`` (``ResultEvents``), which also
  puts each text's confidence in ``x_avg_logprob`` (the protocol has no field for it).
- Errors are ``error`` events; an error that ends the stream is followed by the socket's close.
  Reports that end no session are events of their own (``finals.py``): the drain's notice, a
  failed segment.

Every method is a generator of what to send (JSON text, or ``Speech`` for WebRTC's tracks) and what
to request, in order: nothing is converted before the loop asks for it, so an append's audio is cut
into chunks one at a time, and a result's speech into deltas. Event loop only (one per session).
"""

from __future__ import annotations

import base64
import binascii
import collections
import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

from translate_svc.audio.limits import REALTIME_RATE_HZ
from translate_svc.errors import InvalidInput, ShuttingDown
from translate_svc.languages import guess_model_code
from translate_svc.session.events import (
    AudioIn,
    Draining,
    Invalid,
    Resume,
    RoomJoin,
    StreamConfig,
    StreamEnded,
    StreamEvent,
    StreamRequest,
    StreamStarted,
    Update,
    Updated,
)
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai import finals, running, x_conversation, x_terms
from translate_svc.transport.openai.results import ResultEvents
from translate_svc.transport.openai.running import ROOM_FIXED as ROOM_FIXED
from translate_svc.transport.openai.session_update import (
    MAX_LANGUAGES,
    checked,
    extensions,
    noise_reduction,
    profanity_of,
    resume_lead_in,
    resume_value,
    resumed,
    room_of,
    source_or_detection,
    speed_of,
    text_only,
)
from translate_svc.transport.openai.wire import (
    BadEnvelope,
    Out,
    Reply,
    envelope,
    error_event,
    service_error_event,
    shown_type,
    wire_event,
)
from translate_svc.types import (
    AudioEncoding,
    AudioFormat,
    Commit,
    EarOptions,
    InterimResult,
    ModelCard,
    OutputOptions,
    Profanity,
    SegmentResult,
    SimultaneousOptions,
)
from translate_svc.vad.segmenter import SegmenterConfig

RATE = REALTIME_RATE_HZ  # OpenAI's realtime audio: 24 kHz PCM16 mono, in and out
#: simultaneous mode by default (``x_simultaneous_step_ms``; 0: off): OpenAI's protocol is continuous
SIMULTANEOUS_STEP_MS = 1000
SIMULTANEOUS_AGREEMENT = 2
#: the close code after a drain: "service restart", which the openai SDK treats as recoverable
RESTART_CLOSE_CODE = 1012


class RealtimeProtocol:
    """One session of the protocol, whatever carries it. ``tracks``: speech goes to WebRTC's audio
    tracks (``Speech``), not into ``session.output_audio.delta`` events, and audio comes from the
    microphone's track at ``input_rate`` (an ``input_audio_buffer.append`` is refused).
    ``limits``: the server's (term lists are checked against them; None: the defaults)."""

    def __init__(
        self,
        model: str,
        source: str | None,
        vad: SegmenterConfig,
        *,
        input_rate: int = RATE,
        tracks: bool = False,
        max_languages: int = MAX_LANGUAGES,
        max_append_bytes: int = 3 * 1024 * 1024,
        chunk_bytes: int = 1024 * 1024,
        card: ModelCard | None = None,
        limits: LimitsSettings | None = None,
        resume_lead_in: str | None = None,
    ) -> None:
        self.limits = limits if limits is not None else LimitsSettings()
        self.resume_lead_in = resume_lead_in  # the x_resume_lead_in_ms query parameter, unchecked
        self.max_append_bytes = max_append_bytes
        self.chunk_bytes = chunk_bytes // 2 * 2  # whole PCM16 samples
        #: the model as it was when the session opened (None: still loading): what it can speak, and
        #: whether it has a language identifier
        self.card = card
        self.max_languages = max_languages
        self.input_rate, self.tracks = input_rate, tracks
        self.vad, self.model = vad, model
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
        self.done_events = True  # our extension x_done_events: false for none (finals.py)
        self.conversation = False  # our extension x_conversation: the languages are a conversation's
        self.stated: str | None = None  # its stated_language (a tag of the languages): none identified
        self.voices: dict[str, int] = {}  # its voices and speeds, keyed by tags as written
        self.speeds: dict[str, float] = {}
        self.room: RoomJoin | None = None  # our extension x_room: speak into a room (docs/rooms.md)
        self.noise: str | None = None  # audio.input.noise_reduction's type: RNNoise before the VAD
        self.terms = x_terms.SessionTerms()  # our extension x_terms
        self.profanity: Profanity | None = None  # our extension x_profanity; None: the tenant's default
        self.speed = 1.0  # audio.output.speed: the speaking rate
        self.resume_token = ""  # the stream's (StreamStarted), for x_resume
        #: how the socket closes: 1000, or 1012 (service restart) after a drain (the openai SDK
        #: reconnects on it)
        self.close_code = 1000
        #: the client sent ``session.close``: its input has ended
        self.closed = False
        self.configured = False
        #: the results' side: deltas, speech and done events (``results.py``)
        self.results = ResultEvents(self.tag_of, tracks=tracks)

    def session(self) -> dict[str, Any]:
        outputs = [] if self.conversation else self.languages
        out: dict[str, Any] = {"language": outputs[0] if outputs else None, "speed": self.speed}
        if len(outputs) > 1:
            out["languages"] = outputs
        audio: dict[str, Any] = {"input": {"transcription": self.transcription}, "output": out}
        if self.source:
            audio["input"]["language"] = self.source
        audio["input"]["noise_reduction"] = {"type": self.noise} if self.noise else None
        return {
            "id": self.session_id,
            "type": "translation",
            "model": self.model,
            "expires_at": 0,
            "audio": audio,
            "x_speech": self.speech,
            "x_done_events": self.done_events,
            "x_room": dataclasses.asdict(self.room) if self.room else None,
            "x_conversation": self._conversation_wire(),
            "x_terms": self.terms.wire(),
            "x_profanity": self.profanity.value if self.profanity else None,
            "x_limits": {"max_append_bytes": self.max_append_bytes},
        }

    def _conversation_wire(self) -> dict[str, Any] | None:
        """``x_conversation`` as the session shows it (None: fixed output languages)."""
        if not self.conversation:
            return None
        return x_conversation.wire(self.languages, self.stated, self.voices, self.speeds)

    def created(self) -> str:
        """The session's first event."""
        return wire_event("session.created", session=self.session())

    # -- moving to another server (a drain) ---------------------------------------------------------

    def resume_state(self, ended: StreamEnded) -> str | None:
        """What a client gives back in the ``x_resume`` query parameter of its next connection, after
        a drain ended this session: the session's settings and where its stream was translated to
        (``session_update.resume_value``; None: too long for a URL). Nothing in it is secret or
        trusted: the new server checks it as it checks a ``session.update`` and a gRPC ``ResumeFrom``."""
        session = {
            "audio": {
                "output": {"languages": [] if self.conversation else self.languages, "speed": self.speed},
                "input": {
                    "language": self.source,
                    "transcription": self.transcription,
                    "noise_reduction": {"type": self.noise} if self.noise else None,
                },
            },
            "x_captions_interval_ms": self.captions_interval_ms,
            "x_simultaneous_step_ms": self.simultaneous_step_ms,
            "x_speech": self.speech,
            "x_done_events": self.done_events,
            "x_terms": self.terms.wire(),
            "x_profanity": self.profanity.value if self.profanity else None,
            "x_room": dataclasses.asdict(self.room) if self.room else None,
            "x_conversation": self._conversation_wire(),
        }
        return resume_value(session, self.resume_token, ended.segments_total, ended.resume_offset_ms)

    def resume(self, value: str) -> Iterator[Reply]:
        """The first request of a connection that gives back ``x_resume``: the config it holds,
        resuming the drained stream (its segment ids and timeline go on); ``Invalid`` if it cannot
        be used."""
        replies: list[str] = []
        request: StreamRequest
        try:
            session, token, next_id, offset_ms = resumed(value)
            lead_in_ms = resume_lead_in(self.resume_lead_in, offset_ms)
            config = self._update(session, None, replies)
        except (ValueError, KeyError, TypeError):
            request = Invalid(
                InvalidInput(
                    "x_resume is not what this server's session.closed gave: give it back unchanged, or "
                    "connect without it for a new session"
                )
            )
        except InvalidInput as e:
            request = Invalid(e)
        else:
            if isinstance(config, StreamConfig):
                request = dataclasses.replace(config, resume=Resume(token, next_id, offset_ms - lead_in_ms, lead_in_ms))
            else:
                request = Invalid(
                    InvalidInput("x_resume names no output language: connect without it for a new session")
                )
        yield from replies
        yield request

    # -- the client's side ------------------------------------------------------------------------

    def receive(self, text: str | None) -> Iterator[Reply]:
        """One client message (None: a binary one) as what to send back and the stream core's
        requests: the config once ``session.update`` names a language, then audio.
        ``session.close`` sets ``closed`` (nothing after it is read)."""
        read = envelope(text)
        if isinstance(read, BadEnvelope):  # nothing of it is used
            yield error_event(read.message, "invalid_request_error", read.code, param=read.param)
            return
        kind, event_id, event = read.kind, read.event_id, read.event
        if kind == "session.close":
            self.closed = True
        elif kind == "session.update":
            replies: list[str] = []
            try:
                config = self._update(event.get("session") or {}, event_id, replies)
            except InvalidInput as e:
                yield from replies
                yield Invalid(e)
                return
            yield from replies
            if config is not None:
                yield config
        elif kind == "session.input_audio_buffer.append":
            yield from self._append(event, event_id)
        else:
            yield error_event(
                f"unknown event type {shown_type(kind)}", "invalid_request_error", "unknown_event", event_id=event_id
            )

    def _append(self, event: dict[str, Any], event_id: str | None) -> Iterator[Reply]:
        if self.tracks:
            yield error_event(
                "on WebRTC the audio comes on the microphone track, not in events (this audio was not used)",
                "invalid_request_error",
                "invalid_event",
                event_id=event_id,
            )
            return
        if not self.configured:
            yield error_event(
                "audio before the output language: send session.update with "
                "audio.output.language first (this audio was not used)",
                "invalid_request_error",
                "missing_output_language",
                event_id=event_id,
            )
            return
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
            return
        if len(data) > self.max_append_bytes:  # within the message's slack: refused, not fatal
            yield error_event(
                f"this append carries {len(data)} bytes of audio, over this server's "
                f"{self.max_append_bytes} (x_limits.max_append_bytes): this audio was not used; "
                "send it again in smaller appends",
                "invalid_request_error",
                "append_too_large",
                event_id=event_id,
            )
            return
        # any size up to the limit: cut into the stream core's chunks (whole samples)
        for at in range(0, len(data), self.chunk_bytes):
            yield AudioIn(data[at : at + self.chunk_bytes])

    def _update(self, session: Any, event_id: str | None, replies: list[str]) -> StreamConfig | Update | None:
        """A ``session.update`` as the stream's config (or, once it runs, an ``Update`` of its
        targets); what to answer at once goes to ``replies``; ``InvalidInput`` if it cannot be used."""
        session, inp, languages = checked(session, self.max_languages)
        if self.configured:  # the stream runs: its targets, a conversation's languages and rate may change
            change = running.update(self, session, languages, event_id, replies)
            if change is None:
                return None
            self._asked.append(change[1])
            return change[0]
        if "transcription" in inp:
            self.transcription = inp["transcription"]
        if inp.get("language"):
            self.source = str(inp["language"])
        if "noise_reduction" in inp:
            self.noise = noise_reduction(inp["noise_reduction"])
        self.captions_interval_ms, self.simultaneous_step_ms, self.speech = extensions(
            session, self.captions_interval_ms, self.simultaneous_step_ms, self.speech
        )
        self.done_events = finals.done_setting(session, self.done_events)
        self.profanity = profanity_of(session, self.profanity)
        self.speed = speed_of(session, self.speed)
        if "x_terms" in session:
            self.terms = x_terms.parse(session["x_terms"], self.limits)
        self.room = room_of(session)
        tags = x_conversation.tags_of(session)
        if (self.room is not None or tags is not None) and "x_simultaneous_step_ms" not in session:
            # a room speaker and a conversation run in segment mode (neither carries commits yet)
            self.simultaneous_step_ms = 0
        if not languages and tags is None:  # nothing to start with yet
            replies.append(wire_event("session.updated", session=self.session()))
            return None
        targets = tuple(guess_model_code(x) for x in languages)
        talk = x_conversation.codes(tags) if tags is not None else None
        problem = text_only(self.card, self.speech, languages, targets) if talk is None else None
        if problem is not None:
            raise InvalidInput(problem)
        # a conversation's languages are its targets; beside output languages, the core refuses it
        shown, self.conversation = (tags, True) if tags is not None else (languages, False)
        self.stated = x_conversation.stated_of(session, tags)
        self.voices, self.speeds = x_conversation.parties_of(session, tags)
        outputs = talk if talk is not None else targets
        x_terms.check_session(self.terms, self.card, *source_or_detection(self.source), outputs, shown)
        self.languages, self.targets = list(shown), outputs
        self.tag_of.update(zip(self.targets, self.languages, strict=True))
        self.configured = True
        out_rate = self.input_rate if self.tracks else RATE  # a track plays at its own rate
        transcript = self.transcription is not None
        output = OutputOptions(
            text=True,
            speech=self.speech,
            transcript=transcript,
            speech_sample_rate_hz=out_rate,
            profanity=self.profanity,
            speed=self.speed,
        )
        source, detect = source_or_detection(self.source)
        if transcript and not source and detect is None and talk is None:  # the transcript needs its language
            if self.card is not None and self.card.identifier is not None:
                detect = ()  # the server's identifier names each segment's language
            else:
                replies.append(
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
            target_languages=targets,  # none beside a conversation: its languages go as its own
            output=output,
            vad=self.vad,
            interim_interval_ms=self.captions_interval_ms,
            terms=self.terms.terms,
            simultaneous=(
                SimultaneousOptions(self.simultaneous_step_ms, SIMULTANEOUS_AGREEMENT)
                if self.simultaneous_step_ms
                else None
            ),
            room=self.room,
            ear=EarOptions(noise_suppression=self.noise is not None),
            conversation=talk,
            stated_language=guess_model_code(self.stated) if self.stated else None,
            parties=x_conversation.parties(self.voices, self.speeds),
        )

    # -- the server's side ------------------------------------------------------------------------

    def render(self, ev: StreamStarted | StreamEvent) -> Iterator[Out]:
        """One of the stream core's events as OpenAI's (speech events have none). After
        ``StreamEnded`` (``session.closed``) the stream is over."""
        if isinstance(ev, StreamStarted):
            self.resume_token = ev.resume_token
            yield wire_event("session.updated", session=self.session(), x_session_id=ev.session_id)
        elif isinstance(ev, SegmentResult):
            heard = self.transcription is not None
            yield from self.results.result(
                ev, self.targets, heard=heard, speech=self.speech, done_events=self.done_events
            )
        elif isinstance(ev, Commit):
            yield from self.results.commit(ev)
        elif isinstance(ev, Updated):
            yield self._updated(ev)
        elif isinstance(ev, InterimResult):
            yield finals.caption_event(ev, self.tag_of)
        elif isinstance(ev, Draining):  # a notice, not an error: the session is served to its deadline
            yield finals.draining_notice(ev.remaining_ms, ev.deadline_unix_ms)
        elif isinstance(ev, StreamEnded):
            yield from self._ended(ev)

    def _ended(self, ev: StreamEnded) -> Iterator[str]:
        closed: dict[str, Any] = {
            "x_segments_total": ev.segments_total,
            "x_audio_received_ms": ev.audio_received_ms,
            "x_reason": ev.reason or "closed",
        }
        if isinstance(ev.limit, ShuttingDown):
            at, state = ev.resume_offset_ms, self.resume_state(ev)
            closed["x_resume_offset_ms"] = at  # the audio from here on was not translated
            self.close_code = RESTART_CLOSE_CODE
            how = (  # x_terms can make the settings too long for a URL: then a new session with them
                "reconnect with the x_resume query parameter to go on"
                if state is not None
                else "the session's settings (its x_terms) are too long to resume in a URL: open a new "
                "session with them and send the audio from there"
            )
            if state is not None:
                closed["x_resume"] = state
            closed["x_message"] = (  # no error event: a client that closes on any error would close itself
                f"this server shut down: the audio up to {at} ms was translated and every result sent; "
                f"{how} (the socket closes with {RESTART_CLOSE_CODE}, which the openai SDK reconnects on)"
            )
        elif ev.limit is not None:
            yield service_error_event(ev.limit)
        yield wire_event("session.closed", **closed)

    def _updated(self, u: Updated) -> str:
        """The stream core's answer to a ``session.update`` that changed the output languages:
        ``session.updated`` with them (segments from ``x_first_segment_id`` on are in them), or an
        ``error`` (the session goes on in the languages it had)."""
        asked = self._asked.popleft()  # answers come in the order the updates went in
        if u.error is not None:
            param = x_conversation.param_of(u.error, x_conversation.PARAM)
            return error_event(u.error.message, "invalid_request_error", "invalid_value", param=param)
        self.languages, self.targets = asked, u.stream.task.target_languages
        self.speed = u.stream.task.output.speed
        self.tag_of.update(zip(self.targets, self.languages, strict=True))
        self.stated = self.tag_of.get(code, code) if (code := u.stream.task.stated_language) else None
        parties = u.stream.task.parties
        self.voices = {self.tag_of.get(code, code): v for code, v in parties.voices}
        self.speeds = {self.tag_of.get(code, code): r for code, r in parties.speeds}
        return wire_event("session.updated", session=self.session(), x_first_segment_id=u.first_segment_id)
