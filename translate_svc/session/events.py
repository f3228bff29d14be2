"""The stream protocol's typed vocabulary: what a door sends into a stream and what comes back.

Every door parses its wire format into these requests and renders these events; no protobuf or
JSON crosses into ``session/``. All are frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass

from translate_svc.errors import InvalidInput, LimitReached, ServiceError
from translate_svc.settings import LimitsSettings
from translate_svc.types import (
    NO_EAR,
    NO_PARTIES,
    AudioFormat,
    Commit,
    EarOptions,
    InterimResult,
    ModelCard,
    OutputOptions,
    PartySpeech,
    SegmentResult,
    SimultaneousOptions,
    Term,
    TranslationTask,
)
from translate_svc.vad.segmenter import SegmenterConfig

# -- requests (door -> driver) ------------------------------------------------------------------


#: the longest lead-in a resumed call may send again (ResumeFrom.lead_in_ms)
MAX_LEAD_IN_MS = 10_000


@dataclass(frozen=True)
class Resume:
    """Where a resumed stream continues (``StreamingConfig.resume``)."""

    token: str
    next_segment_id: int
    offset_ms: int
    #: the first ``lead_in_ms`` of the audio were translated by the call this one resumes: only
    #: listened to, so the VAD enters the resume point with the state that call had
    lead_in_ms: int = 0


@dataclass(frozen=True)
class StreamConfig:
    """The first request of a stream: what the client asks for, not yet checked against the model."""

    format: AudioFormat
    source_language: str
    target_languages: tuple[str, ...]
    output: OutputOptions
    vad: SegmenterConfig
    interim_interval_ms: int = 0
    resume: Resume | None = None
    #: language detection among these candidates (empty: any); None: off
    detect: tuple[str, ...] | None = None
    terms: tuple[Term, ...] = ()
    #: simultaneous mode (commits while speech is open); None: segment mode
    simultaneous: SimultaneousOptions | None = None
    #: speak into this room (``session/rooms/``); None: an ordinary stream
    room: RoomJoin | None = None
    #: noise suppression and speaker labels
    ear: EarOptions = NO_EAR
    #: stored glossaries named by id (``glossaries/``): their entries for its targets join ``terms``
    glossaries: tuple[str, ...] = ()
    #: a conversation's languages, in place of targets, source and detection
    #: (``session/task/conversation.py``); None: not a conversation
    conversation: tuple[str, ...] | None = None
    #: the conversation's language stated for the coming audio (``TranslationTask.stated_language``)
    stated_language: str | None = None
    #: the conversation's voice and rate per party (``TranslationTask.parties``)
    parties: PartySpeech = NO_PARTIES
    #: each channel of 2-channel PCM heard on its own, a party per channel, the events labelled
    #: with their channel (``session/calls/channels.py``)
    separate_channels: bool = False
    #: the door renders ``EagerEndOfTurn`` and ``TurnResumed`` (gRPC, OpenAI's transcription
    #: sessions); other doors' streams speculate on an eager end all the same, unsaid
    turn_events: bool = False


@dataclass(frozen=True)
class RoomJoin:
    """A stream's room: its name, and who speaks (a participant who also listens in the room is not
    sent its own speech; empty: nobody in particular)."""

    name: str
    participant: str = ""


@dataclass(frozen=True)
class AudioIn:
    """One audio message in the stream's format (OPUS: one packet). ``timestamp``: where its first
    sample belongs on the timeline, in input samples (None: right after the previous one)."""

    data: bytes
    timestamp: int | None = None
    #: the request field it came in, for error messages ("audio", "packet")
    field: str = "audio"


@dataclass(frozen=True)
class Flush:
    """Close the open speech now (end of a turn), without ending the stream."""


@dataclass(frozen=True)
class Invalid:
    """A message the door could not turn into a request (unparsable, empty, an unknown control), or
    could not serve now (a phone call's two-party leg while the cluster store is away: UNAVAILABLE;
    an option whose library this server lacks: FAILED_PRECONDITION): the stream ends with ``error``
    if it is still open. Doors pass it on instead of raising, so that reading (and dropping) what
    the client still sends can go on after the stream has ended: a door's request iterator that
    raised would be over, and a client still writing would see its writes fail (INTERNAL) instead
    of the status."""

    error: ServiceError


@dataclass(frozen=True)
class Update:
    """Change a running stream's targets (or a conversation's languages), voice or speaking rate (None:
    keep). Segments that close after it use the new task; the driver answers with ``Updated`` in
    order with the stream's events. ``speed`` is checked with the update (``task/change.py``
    ``change``): out of range, it is answered, not fatal."""

    target_languages: tuple[str, ...] | None = None
    speaker_id: int | None = None
    speed: float | None = None
    #: a conversation's languages from now on (the whole new list)
    conversation: tuple[str, ...] | None = None
    #: with ``conversation``: its stated language from now on (None: none, each segment identified)
    stated_language: str | None = None
    #: with ``conversation``: its voice and rate per party from now on (none named: the output's)
    parties: PartySpeech = NO_PARTIES


@dataclass(frozen=True)
class Gone:
    """The client went away mid-stream: its connection closed without a half-close. A door whose
    transport does not cancel the call itself (a WebSocket) says so; the stream then ends as a
    cancelled call does (``CANCELLED``; nothing more is computed or sent)."""


StreamRequest = StreamConfig | AudioIn | Flush | Update | Invalid | Gone


def request_name(req: StreamRequest) -> str:
    """The request's name in error messages (the wire's field names)."""
    if isinstance(req, StreamConfig):
        return "config"
    if isinstance(req, AudioIn):
        return req.field
    if isinstance(req, Flush):
        return "control"
    if isinstance(req, Update):
        return "update"
    if isinstance(req, Gone):
        return "end of connection"
    return "invalid message"


# -- events (driver -> door) ---------------------------------------------------------------------


@dataclass(frozen=True)
class StreamStarted:
    """The stream is admitted: its id, the configuration in force, the model and the limits."""

    session_id: str
    resume_token: str
    format: AudioFormat
    task: TranslationTask
    vad: SegmenterConfig
    interim_interval_ms: int
    resume: Resume | None
    card: ModelCard
    limits: LimitsSettings
    #: what the stream gets otherwise than it asked, in words (a semantic end of turn this server
    #: does not run: the silence rule ends its segments)
    notices: tuple[str, ...] = ()
    #: each channel heard on its own (``StreamConfig.separate_channels``)
    separate_channels: bool = False


@dataclass(frozen=True)
class SpeechEvent:
    started: bool  # True: speech started; False: speech ended
    offset_ms: int
    #: the id the stream's next segment gets, as the event is made: at a start, its speech's first
    #: segment; at an end, one past its speech's last (a region the length cap split has several).
    #: A door that names items by segment (OpenAI's transcription sessions) knows them exactly
    next_segment_id: int = 0
    #: the channel it was heard on, 1.., in a stream of separate channels; 0: the channels mixed
    channel: int = 0


@dataclass(frozen=True)
class Draining:
    """The server is shutting down: the stream is translated until ``deadline_unix_ms``, then ends
    with StreamEnded(limit=ShuttingDown) so that the client resumes on another server."""

    deadline_unix_ms: int
    remaining_ms: int


@dataclass(frozen=True)
class StreamEnded:
    segments_total: int
    audio_received_ms: int
    #: None: the client half-closed; else what closed the stream (raised after this event): a
    #: limit, or an error in the client's input (its open speech was translated first)
    limit: ServiceError | None = None
    #: of ``audio_received_ms``, the time skipped by packet timestamps (lost packets, a mute),
    #: concealed by the Opus decoder or filled with silence
    audio_filled_ms: int = 0
    #: audio from here on (the stream's timeline) was not translated: a resumed call starts here
    resume_offset_ms: int = 0
    #: packets the reorder window put back in order, dropped as duplicates, dropped as late
    packets_reordered: int = 0
    packets_duplicate: int = 0
    packets_late: int = 0
    #: of ``audio_filled_ms``, lost Opus packets' time concealed by libopus (PLC, in-band FEC)
    audio_concealed_ms: int = 0

    @property
    def reason(self) -> str | None:
        """Why the stream ended: None (half-close), a limit's reason, or "error"."""
        if self.limit is None:
            return None
        return self.limit.reason if isinstance(self.limit, LimitReached) else "error"


@dataclass(frozen=True)
class Updated:
    """The answer to an ``Update``: the stream as it is from now on (``StreamStarted``'s fields,
    the new task among them; after an error: unchanged, and ``error`` says what to fix, the stream
    goes on), and the first segment that uses it."""

    stream: StreamStarted
    first_segment_id: int
    error: InvalidInput | None = None


@dataclass(frozen=True)
class EagerEndOfTurn:
    """An eager end of turn (``vad.eager_threshold``): the end-of-turn model called the turn paused
    at ``end_ms`` incomplete but likely enough complete that segment ``segment_id``, [start_ms,
    end_ms), is translated now, in case the pause closes it there; ``TurnResumed`` follows if
    speech resumes first, else the segment's result (sooner: its work started at the pause)."""

    segment_id: int
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class TurnResumed:
    """Speech resumed at ``offset_ms`` after an ``EagerEndOfTurn``: segment ``segment_id`` goes on
    (the translation started for it is dropped; its result comes when it closes)."""

    segment_id: int
    offset_ms: int


StreamEvent = (
    SpeechEvent
    | SegmentResult
    | InterimResult
    | Commit
    | Draining
    | Updated
    | StreamEnded
    | EagerEndOfTurn
    | TurnResumed
)


# -- the unary calls (a whole clip, texts) -------------------------------------------------------


@dataclass(frozen=True)
class TextRequest:
    """A text call (``TranslateText``) as its door parsed it: what the client asks for, not yet
    checked against the model (``TextDriver`` checks it: ``task.resolve_text``)."""

    texts: tuple[str, ...]
    source_language: str
    target_languages: tuple[str, ...]
    output: OutputOptions
    terms: tuple[Term, ...] = ()
    #: stored glossaries named by id (``glossaries/``)
    glossaries: tuple[str, ...] = ()

    @property
    def characters(self) -> int:
        return sum(len(t) for t in self.texts)


@dataclass(frozen=True)
class ClipResult:
    segments: list[SegmentResult]
    audio_duration_ms: int
