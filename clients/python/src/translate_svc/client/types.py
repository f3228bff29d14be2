"""What the SDK hands back and takes in: frozen dataclasses, no protobuf.

Every result type is immutable and safe to pass between threads. Audio is numpy (float32 mono in
``[-1, 1]``) or, for Opus speech, the packets as the server sent them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Literal, TypedDict, get_args

import grpc
import numpy as np

#: Raw encodings of audio sent to a stream (``opus``: one Opus packet per ``send``).
StreamEncoding = Literal["linear16", "float32", "mulaw", "alaw", "opus"]
#: Encodings of ``translate`` input; ``container`` is a WAV/FLAC/OGG/MP3/WebM file's bytes.
ClipEncoding = Literal["linear16", "float32", "mulaw", "alaw", "container"]
#: How translated speech comes back.
SpeechEncoding = Literal["linear16", "opus"]
#: the profanity filter (docs/api.md, "Profanity filter"); None: the tenant's default
Profanity = Literal["off", "mask", "remove"]
#: bytes per sample (one channel) of the raw encodings
SAMPLE_BYTES: dict[str, int] = {"linear16": 2, "float32": 4, "mulaw": 1, "alaw": 1}


# -- options ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsOptions:
    """TLS to the server: a CA bundle to trust, and a client certificate for mTLS.

    ``server_name`` overrides the name checked in the server's certificate (and sent as SNI), for
    servers reached by an address their certificate does not name (an IP, a port-forward).
    """

    ca_file: Path | str | None = None
    cert_file: Path | str | None = None
    key_file: Path | str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("TlsOptions: cert_file and key_file go together (a client certificate needs its key)")


@dataclass(frozen=True)
class Conversation:
    """A conversation's languages (2..4 model codes or tags) and, optionally, the language the
    coming audio is in as the client states it (``stated``: one of them; a push-to-talk button per
    party): while stated, no identification runs and each segment is translated from it into the
    others (``Segment.language_source`` ``"stated"``). ``voices`` and ``speeds``, keyed by a
    language: the voice (as ``speaker_id``) and speaking rate (as ``speed``) of the speech made in
    that language, the speech its party hears (e.g. ``voices={"eng": 0, "spa": 2}, speeds={"spa":
    0.85}``); a language not named takes the call's. ``conversation=`` takes one wherever it takes
    the languages alone (``translate``, ``stream``, ``Stream.update``: an update states or clears
    the stated language and sets the voices and speeds anew)."""

    languages: tuple[str, ...]
    stated: str | None = None
    voices: Mapping[str, int] = field(default_factory=dict)
    speeds: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Term:
    """A phrase to get right (a name, jargon): ``keep=True`` carries it verbatim into the
    translations where it was said (do not translate); ``translation`` (with ``target_language``,
    one of the call's targets) makes it a glossary entry: where the source says ``phrase`` (in its
    case, unless ``ignore_case``), the translation into that language says ``translation``;
    otherwise it is boosted by ``weight`` in (0, 10] (0: the server's default, 3). A plain ``str``
    in ``terms=`` is a boost."""

    phrase: str
    keep: bool = False
    weight: float = 0.0
    translation: str = ""
    target_language: str = ""
    ignore_case: bool = False

    @property
    def glossary(self) -> bool:
        """A glossary entry (kind TRANSLATE): ``translation`` or ``target_language`` is set."""
        return bool(self.translation or self.target_language)

    def __post_init__(self) -> None:
        if self.glossary and self.keep:
            raise ValueError("Term: keep=True and a translation go not together (a kept phrase is not translated)")
        if self.ignore_case and not self.glossary:
            raise ValueError("Term: ignore_case is for a glossary entry (set translation and target_language)")


@dataclass(frozen=True)
class VadOptions:
    """Per-request segmentation overrides; ``None`` keeps the server's default (see docs/api.md)."""

    threshold: float | None = None
    min_silence_ms: int | None = None
    speech_pad_ms: int | None = None
    min_speech_ms: int | None = None
    max_segment_ms: int | None = None
    #: a semantic end of turn: "low", "medium", "high" or "auto" (docs/api.md, "Turns that end on
    #: meaning"); "" the silence rule; None the server's default
    eagerness: str | None = None
    #: an eager end of turn (with an eagerness): a pause the model reads at least this likely
    #: complete, below the eagerness's own threshold, starts its segment's translation at once;
    #: the stream then yields ``EagerEndOfTurn`` and, if speech resumes, ``TurnResumed``
    eager_threshold: float | None = None


@dataclass(frozen=True)
class AudioFormat:
    """How the audio sent is encoded: ``translate(format=...)`` and ``stream(format=...)``.

    ``linear16``/``float32``/``mulaw``/``alaw``: headerless samples at ``sample_rate``, ``channels``
    interleaved. ``container`` (``translate`` only): a WAV/FLAC/OGG/MP3/WebM file's bytes, which
    carry their own rate. ``opus`` (streams only): one packet per ``send``, on a 48 kHz timeline.
    """

    encoding: StreamEncoding | ClipEncoding = "linear16"
    sample_rate: int = 16000
    channels: int = 1

    def __post_init__(self) -> None:
        known = (*get_args(StreamEncoding), "container")
        if self.encoding not in known:
            raise ValueError(f"AudioFormat: unknown encoding {self.encoding!r}: use one of {', '.join(known)}")
        if self.channels not in (1, 2):
            raise ValueError(f"AudioFormat: channels must be 1 or 2, not {self.channels}")

    @property
    def frame_bytes(self) -> int | None:
        """Bytes per frame (all channels) of headerless samples; None for ``opus`` and ``container``."""
        size = SAMPLE_BYTES.get(self.encoding)
        return None if size is None else size * self.channels


@dataclass(frozen=True)
class OutputOptions:
    """What each segment's result carries (docs/api.md, ``OutputOptions``).

    ``transcript`` needs the call's ``source`` language. ``speech_sample_rate``: 8000..48000, 0 for
    the model's own (16 kHz). ``speaker_id``: the vocoder's voice, None for the server's default.
    ``translate`` and ``stream`` take one as ``output=``, or its fields as keyword arguments
    (``speech=False``), which win over ``output``'s. ``word_timings``: each word's start and end in
    final results (``Segment.transcript_words``, ``Translation.words``, a ``Commit``'s words); off
    by default, as the transcript's alignment costs the server one more decoder pass per segment.
    ``profanity``: listed words masked or removed in the transcript and translations, and never
    spoken; None: the tenant's default (off unless its token's line says). ``speed``: the speaking
    rate of the translated speech, 0.5..2.0 (1: the model's own; 1.5 speaks in 1/1.5 of the time,
    at the same pitch); the server refuses a rate out of range (``TranslateError``,
    INVALID_ARGUMENT). A server from before rates (issue 90) ignores it.
    """

    text: bool = True
    speech: bool = True
    transcript: bool = True
    speech_sample_rate: int = 0
    speaker_id: int | None = None
    speech_encoding: SpeechEncoding = "linear16"
    word_timings: bool = False
    profanity: Profanity | None = None
    speed: float = 1.0

    def __post_init__(self) -> None:
        if self.speech_encoding not in get_args(SpeechEncoding):
            raise ValueError(f"unknown speech encoding {self.speech_encoding!r}: use 'linear16' or 'opus'")
        if self.profanity is not None and self.profanity not in get_args(Profanity):
            raise ValueError(f"unknown profanity filter {self.profanity!r}: use 'off', 'mask' or 'remove'")


@dataclass(frozen=True)
class SimultaneousOptions:
    """Simultaneous interpretation (``stream(simultaneous=...)``; docs/api.md, "Simultaneous mode"):
    while the speaker talks, the speech so far is translated again every ``step_ms`` of new audio,
    and the words the last ``agreement`` translations agree on come as ``Commit`` events (with
    their speech), never retracted. 0 takes the server's default (1000 ms, 2); the server's range
    is in ``ServerLimits`` (``min_simultaneous_step_ms``...). ``simultaneous=True`` is
    ``SimultaneousOptions()``."""

    step_ms: int = 0
    agreement: int = 0

    def __post_init__(self) -> None:
        if self.step_ms < 0 or self.agreement < 0:
            raise ValueError(
                f"SimultaneousOptions: step_ms ({self.step_ms}) and agreement ({self.agreement}) must not be "
                "negative (0: the server's default)"
            )


class OutputFields(TypedDict, total=False):
    """``OutputOptions``' fields as keyword arguments of ``translate`` and ``stream``."""

    text: bool
    speech: bool
    transcript: bool
    speech_sample_rate: int
    speaker_id: int | None
    speech_encoding: SpeechEncoding
    word_timings: bool
    profanity: Profanity | None
    speed: float


# -- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpusPacket:
    data: bytes
    duration_samples: int  # at 48 kHz (960 = 20 ms)


@dataclass(frozen=True)
class WordTiming:
    """One word and where it is (``OutputOptions.word_timings``): a transcript's word on the
    stream's timeline, a translated word in its own speech (ms from its first sample)."""

    word: str
    start_ms: int
    end_ms: int
    #: with ``speakers``: a transcript word's speaker (its segment's; 0: not labelled)
    speaker: int = 0
    #: confidence: the mean log-probability (<= 0) of the word's tokens; None: not sent
    avg_logprob: float | None = None


@dataclass(frozen=True, eq=False)
class Translation:
    """One target language of a segment (or of a live caption, which has no audio).

    Speech comes as ``audio`` (float32 mono at ``sample_rate``) with ``speech_encoding="linear16"``,
    or as ``opus_packets`` (48 kHz mono, 20 ms each) with ``"opus"``: decoded in order they give
    ``opus_pre_skip`` samples of encoder delay, then the ``num_samples`` of speech.
    """

    target: str
    text: str
    audio: np.ndarray | None = None
    sample_rate: int = 0
    num_samples: int = 0
    opus_packets: tuple[OpusPacket, ...] = ()
    opus_pre_skip: int = 0
    #: with ``word_timings`` and speech: each word of ``text`` in this speech (a commit's: in its chunk)
    words: tuple[WordTiming, ...] = ()
    #: confidence: the mean log-probability (<= 0) of the tokens the model chose for ``text``;
    #: None: not sent (captions, commits, simultaneous mode)
    avg_logprob: float | None = None
    #: the rate the speech was spoken at (the ``speed`` asked for, or the one dubbing chose);
    #: None: no speech, or a server that does not say
    speech_rate: float | None = None

    @property
    def has_speech(self) -> bool:
        return self.audio is not None or bool(self.opus_packets)

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate if self.sample_rate else 0.0

    def pcm16(self) -> np.ndarray:
        """The speech as int16 samples (the SDK's one scale, ``translate_svc.wire.pcm``); empty
        without linear16 speech. Wire bytes: ``.astype("<i2").tobytes()``."""
        from translate_svc.wire.pcm import float_to_pcm16  # numpy only: the server's own scale

        if self.audio is None:
            return np.zeros(0, np.int16)
        return float_to_pcm16(self.audio)


@dataclass(frozen=True)
class Timing:
    queue_ms: float = 0.0  # waiting for the model
    model_ms: float = 0.0  # the model batch that carried the segment
    total_ms: float = 0.0  # segment closed by the VAD -> result ready
    vad_wait_ms: float = 0.0  # audio the VAD took past end_ms before closing the segment
    speech_ms: float = 0.0  # of model_ms: text-to-unit and vocoder (0: no speech in the batch)
    language_id_ms: float = 0.0  # of model_ms: spoken-language identification


@dataclass(frozen=True)
class SegmentError:
    """Why one segment failed while the others went on (``INTERNAL`` or ``RESOURCE_EXHAUSTED``)."""

    code: str  # a gRPC status code name
    message: str


@dataclass(frozen=True, eq=False)
class Segment:
    """One translated span ``[start_ms, end_ms)`` of the input, on the stream's original timeline."""

    segment_id: int
    start_ms: int
    end_ms: int
    transcript: str | None
    translations: tuple[Translation, ...]
    timing: Timing
    error: SegmentError | None = None
    #: the transcript's language (the source language; with detection, the one detected)
    transcript_language: str | None = None
    #: with ``detect``: each candidate's probability, highest first (outside a conversation the
    #: first is the one chosen; in one, ``chosen_language`` says, as the prior may keep another)
    language_scores: tuple[tuple[str, float], ...] = ()
    #: simultaneous mode: this segment's speech already came, in chunks, in its ``Commit`` events;
    #: ``translations[].audio`` is the same speech whole (for saving): do not play it again
    speech_in_commits: bool = False
    #: with ``word_timings``: each transcript word on the stream's timeline (ms, as ``start_ms``)
    transcript_words: tuple[WordTiming, ...] = ()
    #: with ``speakers``: who spoke it, 1, 2, ... in order of first appearance (0: not labelled)
    speaker: int = 0
    #: confidence: the transcript's mean token log-probability (<= 0); None: not sent
    transcript_avg_logprob: float | None = None
    #: streams with ``speakers``: earlier segments' labels this one revised, each (segment id, its
    #: label from now on)
    speakers_revised: tuple[tuple[int, int], ...] = ()
    #: with ``detect`` or a conversation: the language chosen for the segment, and what chose it:
    #: ``"identified"`` (the identifier's top score), ``"previous_turn"`` (a conversation's short or
    #: unsure turn kept the previous turn's language) or ``"stated"`` (the client stated it; no
    #: identification ran, ``language_scores`` is empty); None: an older server, or no detection
    chosen_language: str | None = None
    language_source: str | None = None
    #: ``translate(separate_channels=True)`` and ``stream(separate_channels=True)``: the channel it
    #: was spoken on (1, 2; also its ``speaker``); 0: the channels mixed
    channel: int = 0

    @property
    def detected_language(self) -> str | None:
        """The language chosen for the segment (``chosen_language``; from an older server, the
        top score)."""
        if self.chosen_language is not None:
            return self.chosen_language
        return self.language_scores[0][0] if self.language_scores else None

    @property
    def ok(self) -> bool:
        return self.error is None

    def translation(self, target: str) -> Translation:
        for t in self.translations:
            if t.target == target:
                return t
        raise KeyError(f"segment {self.segment_id} has no translation into {target!r}")


@dataclass(frozen=True, eq=False)
class Interim:
    """A live caption of open speech (text only); its segment's final ``Segment`` supersedes it."""

    segment_id: int
    start_ms: int
    end_ms: int
    transcript: str | None
    translations: tuple[Translation, ...]
    timing: Timing
    #: ``stream(separate_channels=True)``: the channel it is heard on (1, 2); 0: the channels mixed
    channel: int = 0


@dataclass(frozen=True, eq=False)
class Commit:
    """Simultaneous mode: words committed for one target of a segment while it is spoken, with the
    speech of those words. Never retracted: a segment's commits for a target, ``text`` appended
    and the speech chunks played back to back, are its final ``Segment``'s translation into it.

    ``translation``: ``target``, ``text`` (the newly committed words: a delta to append; may be
    empty) and the speech chunk (``audio`` or ``opus_packets``, as a ``Translation``'s; none when
    ``has_speech`` is false). ``source_ms``: the stream's audio the server had received when it
    committed them. ``final``: the segment closed; its ``Segment`` follows (with
    ``speech_in_commits``). ``restart``: the first commit of this segment and target on a resumed
    call after some came on the lost call: the segment is translated again from its beginning
    here, so this and the following commits start its text over (docs/client.md, "Simultaneous
    mode").
    """

    segment_id: int
    translation: Translation
    source_ms: int
    final: bool = False
    restart: bool = False
    #: ``stream(separate_channels=True)``: the channel it is heard on (1, 2); 0: the channels mixed
    channel: int = 0

    @property
    def target(self) -> str:
        return self.translation.target

    @property
    def text(self) -> str:
        return self.translation.text

    @property
    def has_speech(self) -> bool:
        return self.translation.has_speech


class SpeechEventType(str, Enum):
    STARTED = "started"
    ENDED = "ended"


@dataclass(frozen=True)
class SpeechEvent:
    type: SpeechEventType
    offset_ms: int
    #: ``stream(separate_channels=True)``: the channel it was heard on (1, 2); 0: the channels mixed
    channel: int = 0


@dataclass(frozen=True)
class EagerEndOfTurn:
    """``VadOptions.eager_threshold``: the turn paused at ``end_ms`` may be complete; segment
    ``segment_id`` ([start_ms, end_ms)) is translated now. Its ``Segment`` follows if the pause
    closes it there, or ``TurnResumed`` if speech resumes first."""

    segment_id: int
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class TurnResumed:
    """Speech resumed at ``offset_ms`` after an ``EagerEndOfTurn``: segment ``segment_id`` goes on."""

    segment_id: int
    offset_ms: int


@dataclass(frozen=True)
class Draining:
    """The server the stream is on is shutting down; the SDK moves the stream (informational)."""

    deadline_unix_ms: int
    remaining_ms: int


class EndReason(str, Enum):
    """Why a stream ended. Only HALF_CLOSE is clean; every other reason the SDK does not resume
    raises ``StreamEndedError`` after its ``StreamEnd``."""

    HALF_CLOSE = "half_close"  # you called close(); the call ends OK
    IDLE_TIMEOUT = "idle_timeout"  # no message for limits.idle_timeout_s; then OUT_OF_RANGE
    MAX_STREAM_DURATION = "max_stream_duration"  # audio after the limit was not taken; OUT_OF_RANGE
    DRAINING = "draining"  # never seen by SDK users: the SDK resumes elsewhere
    REVOKED = "revoked"  # the stream's token was revoked; the call then fails with UNAUTHENTICATED
    QUOTA = "quota"  # the tenant's audio seconds per minute are spent; then RESOURCE_EXHAUSTED
    ERROR = "error"  # a message the server could not use; the call then fails with its status
    #: the server's model worker died; never seen by SDK users: the SDK resumes elsewhere, and the
    #: spans that came back UNAVAILABLE are translated again there
    ENGINE_FAILED = "engine_failed"
    UNSPECIFIED = "unspecified"


@dataclass(frozen=True)
class StreamEnd:
    """The last event of a stream: every result was delivered; how the stream ended.

    ``reason`` says why; ``code`` and ``message`` are the status the server ended the call with
    (read after ``ended``): OK and "" for a clean end (``HALF_CLOSE``: you called ``close()``),
    else e.g. ``QUOTA`` / RESOURCE_EXHAUSTED / "tenant 'x' has used its ...". ``request_id`` is
    the stream's ``x-request-id`` (the server's access log has a line with it). Only a clean end
    (``clean``) ends the iteration quietly: after any other, the next step raises
    ``StreamEndedError`` (docs/client.md, "How a stream ends").
    """

    reason: EndReason
    segments_total: int
    audio_received_ms: int
    resume_offset_ms: int = 0
    audio_filled_ms: int = 0
    #: AudioPackets the server's reorder window put back in order / dropped as duplicate / as late
    packets_reordered: int = 0
    packets_duplicate: int = 0
    packets_late: int = 0
    audio_concealed_ms: int = 0  # of audio_filled_ms, lost Opus packets concealed by libopus
    code: grpc.StatusCode = grpc.StatusCode.OK
    message: str = ""
    request_id: str | None = None

    @property
    def clean(self) -> bool:
        """The caller half-closed and the server ended the call OK: nothing was cut short."""
        return self.reason is EndReason.HALF_CLOSE and self.code is grpc.StatusCode.OK


#: What iterating a stream yields.
@dataclass(frozen=True)
class StreamUpdated:
    """The server's answer to ``update()``: the stream's targets, voice and speaking rate for the
    segments from ``first_segment_id`` on (earlier ones keep theirs). ``error``: why the update was
    refused (the stream goes on as it was, and these fields say how)."""

    target_languages: tuple[str, ...]
    speaker_id: int
    first_segment_id: int
    error: str | None = None
    speed: float = 1.0
    #: a conversation's languages (a stream opened with ``conversation``); empty: fixed targets
    conversation: tuple[str, ...] = ()


StreamEvent = (
    Segment | Commit | Interim | SpeechEvent | Draining | StreamUpdated | StreamEnd | EagerEndOfTurn | TurnResumed
)


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    speech_input: bool
    text_output: bool
    speech_output: bool
    detectable: bool = False  # the language identifier can pick it (a ``detect`` candidate)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    revision: str
    is_test_model: bool
    num_speakers: int


@dataclass(frozen=True)
class ServerLimits:
    max_target_languages: int
    max_message_bytes: int
    max_chunk_bytes: int
    max_clip_seconds: float
    max_streams: int
    idle_timeout_seconds: float
    max_stream_seconds: float
    max_unread_results: int
    min_interim_interval_ms: int
    max_candidate_languages: int = 0
    max_terms: int = 0
    max_term_chars: int = 0
    max_calls_per_connection: int = 0
    max_calls: int = 0
    connection_idle_seconds: float = 0.0
    connection_max_age_seconds: float = 0.0
    max_translate_calls: int = 0
    max_stream_message_bytes: int = 0
    reorder_window_ms: int = 0
    #: open speech of a sender that stops sending is closed after this long (0: off)
    stall_close_ms: int = 0
    config_timeout_ms: int = 0
    clip_read_timeout_ms: int = 0
    #: ``SimultaneousOptions``: step_ms in [min, max], agreement in [1, max] (0: an older server)
    min_simultaneous_step_ms: int = 0
    max_simultaneous_step_ms: int = 0
    max_simultaneous_agreement: int = 0
    simultaneous_min_chunk_ms: int = 0
    #: ``translate_text``: texts per call, characters of one text and of all (0: an older server)
    max_texts: int = 0
    max_text_chars: int = 0
    max_text_request_chars: int = 0
    #: the largest request message the port takes in (a ``translate`` clip goes in chunks, so any
    #: clip up to ``max_message_bytes`` fits), and how soon a unary call's request must have come;
    #: unary calls at once per token and per tenant, Translate calls per tenant still sending
    #: their clip (0: an older server)
    max_receive_message_bytes: int = 0
    request_read_timeout_ms: int = 0
    max_unary_calls_per_token: int = 0
    max_unary_calls_per_tenant: int = 0
    #: glossary entries (``Term`` with a translation) per call, apart from ``max_terms`` (0: an older server)
    max_glossary_entries: int = 0
    max_clip_reads_per_tenant: int = 0
    #: a simultaneous stream's segments are cut at this length (0: an older server)
    simultaneous_max_segment_ms: int = 0
    #: ``detect_synthetic``'s longest clip (0: an older server, without DetectSynthetic)
    max_detect_seconds: float = 0.0


@dataclass(frozen=True)
class Languages:
    languages: tuple[Language, ...]
    model: ModelInfo
    limits: ServerLimits
    #: the spoken-language identifier (``detect``); None when the server has none
    identifier: ModelInfo | None = None

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(lang.code for lang in self.languages)


@dataclass(frozen=True)
class TranslateResult:
    segments: tuple[Segment, ...]
    model: ModelInfo
    audio_duration_ms: int


@dataclass(frozen=True, eq=False)
class TextResult:
    """One text's translations (``translate_text``), in the call's target order; ``error`` when
    the model failed on this text while the others went on."""

    text: str
    translations: tuple[Translation, ...]
    timing: Timing
    error: SegmentError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def translation(self, target: str) -> Translation:
        for t in self.translations:
            if t.target == target:
                return t
        raise KeyError(f"no translation into {target!r}")


@dataclass(frozen=True)
class TranslateTextResult:
    """``translate_text``'s answer: one ``TextResult`` per text, in the order sent."""

    results: tuple[TextResult, ...]
    model: ModelInfo


@dataclass(frozen=True)
class StreamInfo:
    """What the server said when the stream (or its latest resumed call) started."""

    session_id: str
    resume_token: str
    model: ModelInfo
    limits: ServerLimits
    address: str  # the target the call went to
    #: simultaneous mode as in force (the server's defaults filled in); None: off
    simultaneous: SimultaneousOptions | None = None
    #: the end of a turn in force ("": the silence rule), and what the stream gets otherwise than
    #: it asked, in words (e.g. a semantic end of turn the server does not run)
    eagerness: str = ""
    notices: tuple[str, ...] = ()
